"""The inspectors' web form in a real headless Chromium: a check submitted through the form is then
found through the JSON route; hostile input gets the form back with one error and nothing stored."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator

import httpx
import pytest

from cloud.measurements import INSPECTION
from tests.cloud.inspections.conftest import days_ago, png
from tests.support.browser import CHROMIUM, Browser
from tests.support.common import PROJECT, count

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (scripts/setup.sh)"
)
SHOT = PROJECT / "docs" / "img" / "inspection-form.png"


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Browser]:
    root = tmp_path_factory.mktemp("chromium")
    b = Browser(root / "profile", root / "chromium.log")
    try:
        b.phone()
        yield b
    finally:
        b.close()


def fill(b: Browser, token: str, **fields: str | bool) -> None:
    """Type into the form as an inspector would (values, checkboxes, selects)."""
    b.js(f"document.getElementById('token').value = {json.dumps(token)}")
    for name, value in fields.items():
        if isinstance(value, bool):
            b.js(f"document.querySelector('[name={name}]').checked = {str(value).lower()}")
        else:
            b.js(f"document.querySelector('[name={name}]').value = {json.dumps(value)}")


def test_submit_a_check_through_the_form(
    browser, api_url, inspector_token, operator_token, tmp_path, stack
) -> None:
    photo = png(4, 3)
    (tmp_path / "bins.png").write_bytes(photo)
    when = days_ago(5, hour=8)
    browser.load(api_url + "/inspections/form")
    assert browser.js("document.title") == "分类实效检查 Sorting inspection"
    assert (
        browser.js("document.documentElement.scrollWidth") <= 390
    )  # fits a phone, no sideways scroll
    fill(
        browser,
        inspector_token,
        time=when.strftime("%Y-%m-%dT%H:%M"),
        place_kind="public_place",
        place="P-002",
        labelled=True,
        guidance=True,
        clean=True,
        records=True,
        c_wet="pure",
        c_dry="pure",
        c_recyclable="impure",
        score="88",
        notes="可回收物桶混有塑料袋 plastic bags in the recyclables bin",
    )
    browser.set_files("#photo", tmp_path / "bins.png")
    shot = tmp_path / "inspection-form.png"
    assert browser.screenshot(shot).startswith(b"\x89PNG")
    if os.environ.get("GUMEI_SAVE_SCREENSHOTS"):  # refresh the README's picture on purpose only
        shutil.copyfile(shot, SHOT)
    browser.submit("#submit")

    saved = browser.js(
        "document.getElementById('saved') && document.getElementById('saved').textContent"
    )
    assert saved and "不达标 not passed" in saved, browser.js("document.body.innerText")
    made = browser.js("document.getElementById('saved-id').textContent")
    assert "token" not in browser.js("location.href")  # the token never goes into a URL
    assert (
        browser.js("document.getElementById('token').value") == inspector_token
    )  # kept for the next check

    day = when.date().isoformat()
    r = httpx.get(
        api_url + "/api/v1/inspections",
        params={"start": day, "end": day, "place_kind": "public_place", "place": "P-002"},
        headers={"Authorization": f"Bearer {operator_token}"},
    )
    assert r.status_code == 200, r.text
    [rec] = [x for x in r.json() if x["id"] == made]
    assert rec["time"].startswith(when.strftime("%Y-%m-%dT%H:%M")) and rec["time"].endswith(
        "+08:00"
    )
    assert rec["passed"] is False and rec["score"] == 88 and rec["place_type"] == "public"
    assert rec["containers"] == [
        {"category": "wet", "pure": True},
        {"category": "dry", "pure": True},
        {"category": "recyclable", "pure": False},
    ]
    assert rec["photo"] == hashlib.sha256(photo).hexdigest()
    assert rec["notes"].startswith("可回收物桶混有塑料袋")
    logs = "".join(p.read_text(errors="replace") for p in (stack.root / "logs").glob("*.log"))
    assert inspector_token.split("_", 2)[2] not in logs  # the token's secret is never logged


def test_hostile_form_input_is_shown_back_and_not_stored(
    browser, api_url, inspector_token, influx, tmp_path
) -> None:
    before = count(influx, f"SELECT count(score) FROM {INSPECTION.name}", db=influx.records_db)
    (tmp_path / "evil.png").write_bytes(b"<html><script>alert(1)</script></html>")
    browser.load(api_url + "/inspections/form")
    base: dict[str, str | bool] = dict(
        place_kind="area", place="A03", labelled=True, c_wet="pure", score="95"
    )
    cases: list[tuple[dict[str, str | bool], str]] = [
        (dict(notes="<script>document.title='pwned'</script>"), "no markup"),
        (dict(place="Z99"), "is not an area of the registry"),
        (dict(time="2099-01-01T10:00"), "in the future"),
        (dict(c_wet=""), "judge at least one container"),
    ]
    for change, says in cases:
        browser.load(api_url + "/inspections/form")
        fill(browser, inspector_token, **{**base, **change})
        browser.submit("#submit")
        error = browser.js(
            "document.getElementById('error') && document.getElementById('error').textContent"
        )
        assert error and says in error, browser.js("document.body.innerText")
        assert browser.js("document.title") == "分类实效检查 Sorting inspection"  # no script ran
    # a file that is not a photo
    browser.load(api_url + "/inspections/form")
    fill(browser, inspector_token, **base)
    browser.set_files("#photo", tmp_path / "evil.png")
    browser.submit("#submit")
    assert "photo" in browser.js("document.getElementById('error').textContent")
    # a wrong token: the form comes back with the error, the token field empty
    browser.load(api_url + "/inspections/form")
    fill(browser, "gm_000000000000_not-a-token", **base)
    browser.submit("#submit")
    assert "invalid bearer token" in browser.js("document.getElementById('error').textContent")
    assert browser.js("document.getElementById('token').value") == ""
    assert (
        count(influx, f"SELECT count(score) FROM {INSPECTION.name}", db=influx.records_db) == before
    )
