"""The inspection routes on the real API process and InfluxDB: record, list, photo, effectiveness,
and what a hostile inspector can try (a clear one-line error, nothing stored)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import httpx
import pytest

from cloud.inspections.effectiveness import Check, effectiveness_reference
from cloud.measurements import INSPECTION
from tests.cloud.inspections.conftest import days_ago, png, record
from tests.support.common import count, gumei


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_record_list_and_photo(api_url, inspector_token, operator_token, stack) -> None:
    photo = png()
    body = record(
        place_kind="unit",
        place="U-002",
        time=days_ago(3).isoformat(),
        notes="bin 2 lid broken; caretaker 13800138000 says fixed Friday",
        photo=base64.b64encode(photo).decode(),
    )
    r = httpx.post(api_url + "/api/v1/inspections", json=body, headers=_auth(inspector_token))
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["passed"] is True and made["pass_score"] == 90 and made["place_type"] == "unit"
    assert made["area"] == "A05" and made["by"] == "inspector Li (test)"
    assert "13800138000" not in made["notes"] and "###########" in made["notes"]
    assert made["photo"] == hashlib.sha256(photo).hexdigest()
    assert (stack.root / "inspection-photos" / f"{made['photo']}.png").read_bytes() == photo

    day = days_ago(3).date().isoformat()
    listed = httpx.get(
        api_url + "/api/v1/inspections",
        params={"start": day, "end": day, "place": "U-002"},
        headers=_auth(operator_token),
    )
    assert listed.status_code == 200, listed.text
    assert [x for x in listed.json() if x["id"] == made["id"]] == [made]
    got = httpx.get(
        api_url + f"/api/v1/inspections/photos/{made['photo']}", headers=_auth(operator_token)
    )
    assert got.status_code == 200 and got.content == photo
    assert got.headers["content-type"] == "image/png"


def test_effectiveness_counts_each_places_latest_check(api_url, inspector_token, operator_token):
    """Day 60..58 ago: A02 fails then passes, WS station passes, U-001 fails (score), P-001 passes
    then fails (item). Latest: residential 2/2, unit 0/1, public 0/1, overall 2/4."""
    plan = [
        (60, dict(place_kind="area", place="A02", score=70)),
        (59, dict(place_kind="area", place="A02", score=93)),
        (60, dict(place_kind="site", place="WS-0101", score=90)),
        (59, dict(place_kind="unit", place="U-001", score=89)),
        (60, dict(place_kind="public_place", place="P-001", score=96)),
        (58, dict(place_kind="public_place", place="P-001", score=91, clean=False)),
    ]
    for n, kw in plan:
        r = httpx.post(
            api_url + "/api/v1/inspections",
            json=record(time=days_ago(n).isoformat(), **kw),
            headers=_auth(inspector_token),
        )
        assert r.status_code == 201, r.text
    params = {"start": days_ago(60).date().isoformat(), "end": days_ago(58).date().isoformat()}
    r = httpx.get(
        api_url + "/api/v1/inspections/effectiveness", params=params, headers=_auth(operator_token)
    )
    assert r.status_code == 200, r.text
    eff = r.json()
    assert eff["source"] == "inspections"
    assert eff["overall"] == {"places": 4, "passed": 2, "pct": 50.0}
    assert eff["by_type"]["residential"] == {"places": 2, "passed": 2, "pct": 100.0}
    assert eff["by_type"]["unit"] == {"places": 1, "passed": 0, "pct": 0.0}
    assert eff["by_type"]["public"] == {"places": 1, "passed": 0, "pct": 0.0}
    # the route agrees with the plain reference over the listed records
    rows = httpx.get(api_url + "/api/v1/inspections", params=params, headers=_auth(operator_token))
    ref = effectiveness_reference(
        [
            Check(
                x["place_kind"],
                x["place"],
                int(dt.datetime.fromisoformat(x["time"]).timestamp() * 1000),
                x["id"],
                x["passed"],
            )
            for x in rows.json()
        ]
    )
    assert (
        eff["overall"]["passed"] == ref["all"].passed
        and eff["overall"]["places"] == ref["all"].places
    )
    # a period without inspections: no rate (null), not 0 %
    empty = httpx.get(
        api_url + "/api/v1/inspections/effectiveness",
        params={"start": days_ago(300).date().isoformat(), "end": days_ago(299).date().isoformat()},
        headers=_auth(inspector_token),
    ).json()
    assert empty["overall"] == {"places": 0, "passed": 0, "pct": None}


BIG = 2 * 1024 * 1024
HOSTILE = [
    ("huge photo", dict(photo=base64.b64encode(png(pad=BIG)).decode()), 422, "more than the limit"),
    (
        "gif photo",
        dict(photo=base64.b64encode(b"GIF89a" + b"\0" * 50).decode()),
        422,
        "not a JPEG or PNG",
    ),
    ("photo not base64", dict(photo="<svg onload=alert(1)>"), 422, "not valid base64"),
    ("script in notes", dict(notes="<script>alert(document.cookie)</script>"), 422, "no markup"),
    ("long notes", dict(notes="x" * 501), 422, "at most 500 characters"),
    (
        "future time",
        dict(time=(dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()),
        422,
        "in the future",
    ),
    ("ancient time", dict(time="2020-01-01T10:00:00+08:00"), 422, "days ago"),
    ("naive time", dict(time="2026-11-30T10:00:00"), 422, "UTC offset"),
    ("unknown place", dict(place="A99"), 422, "not an area of the registry"),
    (
        "unit as public place",
        dict(place_kind="public_place", place="U-001"),
        422,
        "not a public place",
    ),
    ("health hut as site", dict(place_kind="site", place="HH-01"), 422, "not a waste station"),
    ("injection in place", dict(place="A01' OR 1=1"), 422, "place"),
    ("score out of range", dict(score=101), 422, "score"),
    ("contradicting passed", dict(score=80, passed=True), 422, "contradicts"),
    ("unknown field", dict(resident="r-" + "0" * 32), 422, "resident"),
    ("no containers", dict(containers=[]), 422, "containers"),
]


def _stored(influx) -> int:
    return count(influx, f"SELECT count(score) FROM {INSPECTION.name}", db=influx.records_db)


@pytest.mark.parametrize(("what", "change", "code", "says"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_inspector_gets_one_line_and_nothing_is_stored(
    api_url, inspector_token, influx, stack, what, change, code, says
) -> None:
    before, photos = _stored(influx), set((stack.root / "inspection-photos").glob("*"))
    r = httpx.post(
        api_url + "/api/v1/inspections",
        json=record(**change),
        headers=_auth(inspector_token),
        timeout=30,
    )
    assert r.status_code == code, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and says in detail, detail
    assert _stored(influx) == before and set((stack.root / "inspection-photos").glob("*")) == photos


def test_hostile_bodies(api_url, inspector_token, operator_token, influx) -> None:
    before = _stored(influx)
    url, auth = api_url + "/api/v1/inspections", _auth(inspector_token)
    # declared too big: refused before reading
    r = httpx.post(url, content=b"{" + b" " * (4 * BIG) + b"}", headers=auth, timeout=30)
    assert r.status_code == 413 and "over the limit" in r.json()["detail"]
    # no length (chunked)
    r = httpx.post(url, content=iter([b"{}"]), headers=auth)
    assert r.status_code == 411
    r = httpx.post(url, content=b"not json", headers=auth)
    assert r.status_code == 422 and "\n" not in r.json()["detail"]
    r = httpx.post(url, json=[1, 2], headers=auth)
    assert r.status_code == 422
    # other roles may read but not record
    r = httpx.post(url, json=record(), headers=_auth(operator_token))
    assert r.status_code == 403 and "inspector" in r.json()["detail"]
    assert _stored(influx) == before
    # bad periods
    for params in (
        {"start": "2026-01-02", "end": "2026-01-01"},
        {"start": "2020-01-01", "end": "2026-01-01"},
    ):
        r = httpx.get(url + "/effectiveness", params=params, headers=auth)
        assert r.status_code == 422 and "\n" not in r.json()["detail"]
    r = httpx.get(url + "/photos/../../tokens.json", headers=auth)
    assert r.status_code in (404, 422)


def test_inspector_tokens_come_from_the_cloud_host_only(api_url, stack, cloud_config) -> None:
    admin = stack.tokens().create("admin (inspection test)", "admin")
    r = httpx.post(
        api_url + "/api/v1/admin/tokens",
        json={"name": "x", "role": "inspector"},
        headers=_auth(admin),
    )
    assert r.status_code == 403 and "operator tokens only" in r.json()["detail"]
    out = gumei(
        "token",
        "create",
        "--role",
        "inspector",
        "--name",
        "inspector Wang",
        "--config",
        str(cloud_config),
    )
    token = out.stdout.strip().splitlines()[-1].split()[-1]
    assert token.startswith("gm_")
    assert stack.tokens().verify(token).role == "inspector"


def _form(**kw: str) -> dict[str, str]:
    base = {
        "time": days_ago(2).strftime("%Y-%m-%dT%H:%M"),
        "place_kind": "area",
        "place": "A04",
        "labelled": "on",
        "guidance": "on",
        "clean": "on",
        "records": "on",
        "c_wet": "pure",
        "c_dry": "pure",
        "score": "90",
        "notes": "",
    }
    return {**base, **kw}


def test_the_form_route_without_a_browser(api_url, inspector_token, operator_token, influx) -> None:
    """What a script can send to the form route: errors come back as the page, status set."""
    url = api_url + "/inspections/form"
    page = httpx.get(url)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert "script-src" not in page.headers["content-security-policy"]  # no script at all
    assert (
        "<script" not in page.text
        and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    )
    before = _stored(influx)
    # no token, a wrong role's token: the page with the error, nothing stored
    r = httpx.post(url, data=_form())
    assert r.status_code == 401 and "invalid bearer token" in r.text and 'id="error"' in r.text
    r = httpx.post(url, data=_form(token=operator_token))
    assert r.status_code == 403 and "needs role inspector" in r.text
    assert operator_token not in r.text  # a rejected token is not echoed back
    # a declared body over the limit: refused before reading
    r = httpx.post(
        url, content=b"x" * 4_000_000, headers={"Content-Type": "multipart/form-data; boundary=x"}
    )
    assert r.status_code == 413
    # a photo part that says text/html, too many parts
    r = httpx.post(
        url,
        data=_form(token=inspector_token),
        files={"photo": ("p.png", png(), "text/html")},
    )
    assert r.status_code == 422 and "not image/jpeg or image/png" in r.text
    r = httpx.post(
        url,
        data={**_form(token=inspector_token), **{f"x{i}": "1" for i in range(50)}},
        files={"photo": ("", b"", "application/octet-stream")},
    )
    assert r.status_code == 422 and "at most 40 form fields" in r.text
    # an escaped echo of what was typed
    r = httpx.post(url, data=_form(token=inspector_token, place='"><img src=x onerror=alert(1)>'))
    assert r.status_code == 422 and "<img src=x" not in r.text and "&lt;img" in r.text
    assert _stored(influx) == before
    # urlencoded works too (a client without multipart): 达标 at exactly the pass mark
    r = httpx.post(url, data=_form(token=inspector_token))
    assert r.status_code == 201 and "达标 passed" in r.text
    assert _stored(influx) == before + 1


def test_seeded_demo_inspections_and_the_rate_command(
    api_url, operator_token, cloud_config, influx
) -> None:
    before = _stored(influx)
    out = gumei("inspections", "seed", "--days", "28", "--config", str(cloud_config)).stdout
    n = int(out.split()[1])
    assert n >= 40 and _stored(influx) == before + n  # every area at least once
    again = gumei("inspections", "seed", "--days", "28", "--config", str(cloud_config)).stdout
    assert again == out and _stored(influx) == before + n  # same seed, same day: same points
    start, end = days_ago(28).date().isoformat(), days_ago(1).date().isoformat()
    eff = httpx.get(
        api_url + "/api/v1/inspections/effectiveness",
        params={"start": start, "end": end},
        headers=_auth(operator_token),
    ).json()
    assert eff["by_type"]["residential"]["places"] >= 40 and eff["by_type"]["unit"]["places"] >= 3
    assert 50 < eff["overall"]["pct"] < 100
    printed = gumei(
        "inspections", "rate", "--start", start, "--end", end, "--config", str(cloud_config)
    )
    last = printed.stdout.strip().splitlines()[-1].split()
    assert last[:4] == ["all", str(eff["overall"]["passed"]), "/", str(eff["overall"]["places"])]
    bad = gumei(
        "inspections",
        "rate",
        "--start",
        end,
        "--end",
        start,
        "--config",
        str(cloud_config),
        check=False,
    )
    assert bad.returncode != 0 and "end is before start" in bad.stderr


def test_openapi_documents_the_record(api_url) -> None:
    doc = httpx.get(api_url + "/openapi.json").json()
    body = doc["paths"]["/api/v1/inspections"]["post"]["requestBody"]["content"]["application/json"]
    props = body["schema"]["properties"]
    assert {"time", "place_kind", "place", "containers", "score", "photo"} <= set(props)
    assert props["containers"]["items"]["properties"]["category"]["enum"] == [
        "wet",
        "dry",
        "recyclable",
        "hazardous",
    ]


def test_pass_mark_and_photo_limit_are_settings(stack, cloud_config, inspector_token) -> None:
    from tests.support.api_process import api_process

    env = {"GUMEI_INSPECTIONS__PASS_SCORE": "85", "GUMEI_INSPECTIONS__PHOTO_MAX_BYTES": "2048"}
    with api_process(stack, cloud_config, "api-inspections-85", env) as url:
        r = httpx.post(
            url + "/api/v1/inspections",
            json=record(place="A06", score=86, time=days_ago(4).isoformat()),
            headers=_auth(inspector_token),
        )
        assert r.status_code == 201 and r.json()["passed"] is True and r.json()["pass_score"] == 85
        r = httpx.post(
            url + "/api/v1/inspections",
            json=record(place="A06", photo=base64.b64encode(png(pad=3000)).decode()),
            headers=_auth(inspector_token),
        )
        assert r.status_code == 422 and "limit of 2048" in r.json()["detail"]
        assert "≤ 2 KiB" in httpx.get(url + "/inspections/form").text


def test_a_broken_places_file_is_one_line(cloud_config, tmp_path) -> None:
    bad = tmp_path / "places.yaml"
    bad.write_text("places:\n- id: 'U 1'\n  type: shop\n  area: A01\n")
    proc = gumei(
        "inspections",
        "seed",
        "--config",
        str(cloud_config),
        env={"GUMEI_INSPECTIONS__PLACES": str(bad)},
        check=False,
    )
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1
    assert "places file" in proc.stderr
