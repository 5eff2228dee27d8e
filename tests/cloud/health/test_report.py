"""The report a resident takes home: pure building and rendering, the API routes (health role only,
HTML and PNG), and the page rendered by a real browser (Debian's Chromium, headless)."""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from matplotlib import image as mpimg

from cloud.health import report
from cloud.health.lines import health_line
from cloud.health.triage import RULES, TIERS, triage
from cloud.influx import InfluxClient
from contract.days import day_start_ms, number_of
from contract.models import HealthMeasurement
from firmware_sim.health import make_residents, measure
from firmware_sim.health.instruments import INSTRUMENTS
from tests.support.health import pseudonym

END = dt.date(2022, 6, 30)  # this test's own days: 2022-04-02 .. 2022-06-30
VISIT_DAYS = [END - dt.timedelta(days=d) for d in range(85, -1, -7)]  # 13 weekly visits
DOCS_IMG = Path(__file__).resolve().parents[3] / "docs" / "img" / "health-report.png"
T0 = day_start_ms(number_of(END)) + 9 * 3600 * 1000  # 09:00 Shanghai on END


def reading(type_: str, values: dict, ts: int = T0) -> report.Reading:
    t = triage(type_, values)
    return report.Reading(ts, type_, values, t.tier, t.codes)


# ---- pure ------------------------------------------------------------------------------------


def test_every_tier_and_every_triage_row_has_plain_words() -> None:
    assert set(report.TIER_WORDS) == set(report.ADVICE) == set(report.TIER_COLOURS) == set(TIERS)
    assert {r.code for r in RULES} <= set(report.FINDINGS)


def test_latest_reading_per_type_with_its_tier_and_advice() -> None:
    readings = [
        reading("blood_pressure", {"systolic_mmhg": 150, "diastolic_mmhg": 90}, T0 - 86_400_000),
        reading("blood_pressure", {"systolic_mmhg": 182, "diastolic_mmhg": 100}, T0),
        reading("blood_glucose", {"glucose_mmol_l": 7.0, "meal": "random"}, T0),
        reading("body_composition", {"weight_kg": 80.0, "height_cm": 170.0, "bmi": 27.7}, T0),
    ]
    r = report.build(
        "r-" + "a" * 32, readings, END - dt.timedelta(days=89), END, dt.datetime.now(dt.UTC)
    )
    assert [x.type for x in r.latest] == ["blood_pressure", "blood_glucose", "body_composition"]
    assert r.latest[0].values["systolic_mmhg"] == 182 and r.latest[0].tier == "urgent"
    assert r.tiers == ("urgent", "recheck", "normal")  # random 7.0 is normal, BMI 27.7 overweight
    page = report.html(r)
    assert "请今天就医" in page and "See a doctor today" in page
    assert report.ADVICE["urgent"][0] in page and report.ADVICE["refer"][0] not in page
    assert "血压很高" in page and "超重" in page
    bp = r.trends[0]
    assert [len(line.points) for line in bp.lines] == [2, 2]
    assert {v for v, _ in bp.references} == {135, 85}  # rows of the triage table
    svg = report.svg(bp, r.start, r.end)
    assert svg.count("<circle") == 4 and "<polyline" in svg


def test_an_empty_period_renders_no_data() -> None:
    r = report.build("r-" + "b" * 32, [], END, END, dt.datetime.now(dt.UTC))
    page = report.html(r)
    assert "No measurement in this period" in page and page.count("No data") == 3


def test_stored_text_is_escaped() -> None:
    hostile = reading("<script>alert(1)</script>", {"<img src=x>": 1.0})
    r = report.build("r-" + "c" * 32, [hostile], END, END, dt.datetime.now(dt.UTC))
    page = report.html(r)
    assert "<script>alert" not in page and "<img src=x>" not in page
    assert "&lt;script&gt;" in page


def test_png_is_one_page() -> None:
    r = report.build(
        "r-" + "d" * 32,
        [reading("blood_pressure", {"systolic_mmhg": 128, "diastolic_mmhg": 82})],
        END - dt.timedelta(days=89),
        END,
        dt.datetime.now(dt.UTC),
    )
    from cloud.health.report_png import png

    data = png(r)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(data[16:20]), int.from_bytes(data[20:24])) == (
        909,
        1285,
    )  # A4 at 110 dpi


# ---- the API and a real browser ----------------------------------------------------------------


def seed_simulated(influx: InfluxClient) -> tuple[str, int]:
    """A simulated resident (hypertensive, so some tiers are raised) measuring on all five
    instruments once a week for 13 weeks, stored exactly as ingestion stores them."""
    rng = random.Random(14)
    person = next(p for p in make_residents(200, seed=14) if p.hypertensive and p.age > 55)
    resident = pseudonym()
    lines, seq = [], 0
    for day in VISIT_DAYS:
        truth = measure(person, rng)
        ts = day_start_ms(number_of(day)) + 9 * 3600 * 1000
        for instrument in INSTRUMENTS:
            type_, values = instrument.expected(truth)
            seq += 1
            m = HealthMeasurement.model_validate(
                {
                    "device": f"HH-01-{instrument.suffix}",
                    "seq": 910_000 + seq,
                    "ts": ts,
                    "resident": resident,
                    "type": type_,
                    "values": values,
                }
            )
            lines.append(health_line("HH-01", m))
    influx.write_lines("\n".join(lines).encode(), precision="ns", db=influx.config.health_database)
    return resident, seq


@pytest.fixture(scope="module")
def simulated(influx) -> tuple[str, int]:
    return seed_simulated(influx)


@pytest.fixture(scope="module")
def tokens(stack) -> dict[str, str]:
    store = stack.tokens()
    return {role: store.create(f"report test {role}", role) for role in ("operator", "health")}


def get(api_url: str, path: str, token: str | None, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(api_url + path, params=params, headers=headers, timeout=60)


def test_report_routes_health_role_only_and_bad_input(api_url, tokens, simulated) -> None:
    resident, _ = simulated
    base = f"/api/v1/health/residents/{resident}/report"
    assert get(api_url, base, None, end=str(END)).status_code == 401
    assert get(api_url, base, tokens["operator"], end=str(END)).status_code == 403
    assert get(api_url, base + ".png", tokens["operator"], end=str(END)).status_code == 403
    for params in ({"end": "2022-13-01"}, {"months": "0"}, {"months": "13"}, {"months": "x"}):
        r = get(api_url, base, tokens["health"], **params)
        assert r.status_code == 422, params
    bad = get(api_url, "/api/v1/health/residents/r-XYZ/report", tokens["health"])
    assert bad.status_code == 422


def test_report_of_a_simulated_resident_renders_in_chromium(
    api_url, tokens, simulated, tmp_path
) -> None:
    resident, n = simulated
    base = f"/api/v1/health/residents/{resident}/report"
    r = get(api_url, base, tokens["health"], end=str(END), months="3")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-store"
    page = r.text
    assert f"测量次数 Measurements: {n}" in page
    for words in ("血压", "Blood pressure", "血糖", "体重", "Latest measurements", "Advice"):
        assert words in page
    assert page.count("<svg") == 3 and "No data" not in page
    assert "疑似高血压" in page  # the simulated resident is hypertensive: raised on many days
    # 13 visits: 13 points of systolic and diastolic, 13 glucose, 13 weight
    assert page.count("<circle") == 13 * 4
    one = get(api_url, base, tokens["health"], end=str(END), months="1")
    assert one.text.count("<circle") == 4 * len(
        [d for d in VISIT_DAYS if d > END - dt.timedelta(days=30)]
    )

    png = get(api_url, base + ".png", tokens["health"], end=str(END))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is installed by scripts/setup.sh"
    html_file = tmp_path / "report.html"
    html_file.write_text(page, encoding="utf-8")
    shot, pdf = tmp_path / "report.png", tmp_path / "report.pdf"
    common = [
        chromium,
        "--headless",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    for extra in (
        [f"--screenshot={shot}", "--window-size=820,1500"],
        [f"--print-to-pdf={pdf}", "--no-pdf-header-footer"],
    ):
        done = subprocess.run(
            [*common, *extra, html_file.as_uri()], capture_output=True, timeout=120
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    assert pdf.read_bytes()[:5] == b"%PDF-"
    pdf_pages = len(re.findall(rb"/Type\s*/Page\b", pdf.read_bytes()))
    assert 1 <= pdf_pages <= 2  # printable: one or two A4 pages
    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (1500, 820)
    rgb = (pixels[..., :3] * 255).round().astype(int)
    # the plots were drawn: the systolic line's red and the diastolic line's blue are on the page
    assert ((abs(rgb - (0xC6, 0x28, 0x28)).sum(axis=-1)) < 30).sum() > 200
    assert ((abs(rgb - (0x15, 0x65, 0xC0)).sum(axis=-1)) < 30).sum() > 200
    if os.environ.get("GUMEI_WRITE_DOCS_IMG"):  # regenerate the README picture
        shutil.copy(shot, DOCS_IMG)


def test_latest_blood_pressure_gets_the_across_visits_row() -> None:
    day = 86_400_000
    raised = {"systolic_mmhg": 142, "diastolic_mmhg": 84}
    two = [reading("blood_pressure", raised, T0 - day), reading("blood_pressure", raised, T0)]
    first = END - dt.timedelta(days=89)
    now = dt.datetime.now(dt.UTC)
    r2 = report.build("r-" + "e" * 32, two, first, END, now)
    assert (r2.latest[0].tier, r2.latest[0].codes) == ("recheck", ("bp_raised_home",))
    three = [reading("blood_pressure", raised, T0 - 9 * day), *two]
    r3 = report.build("r-" + "e" * 32, three, first, END, now)
    assert (r3.latest[0].tier, r3.latest[0].codes) == ("refer", ("suspected_hypertension",))
    assert "疑似高血压" in report.html(r3)
    old = [reading("blood_pressure", raised, T0 - 40 * day), *two]  # outside the 30-day window
    assert report.build("r-" + "e" * 32, old, first, END, now).latest[0].tier == "recheck"
    normal_last = [
        *three[:2],
        reading("blood_pressure", {"systolic_mmhg": 120, "diastolic_mmhg": 70}),
    ]
    assert report.build("r-" + "e" * 32, normal_last, first, END, now).latest[0].tier == "normal"


def test_without_matplotlib_the_png_is_501_and_the_html_still_works(
    stack, cloud_config, tokens, simulated, tmp_path
) -> None:
    """An API installed without the [render] extra: one clear line for the PNG, nothing else lost."""
    from tests.support.api_process import api_process

    hidden = tmp_path / "hide" / "matplotlib"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'matplotlib'\", name='matplotlib')\n"
    )
    resident, _ = simulated
    base = f"/api/v1/health/residents/{resident}/report"
    with api_process(
        stack, cloud_config, "api-no-render", {"PYTHONPATH": str(tmp_path / "hide")}
    ) as url:
        png = get(url, base + ".png", tokens["health"], end=str(END))
        assert png.status_code == 501
        assert png.json()["detail"] == (
            "the PNG report needs matplotlib: install the API with the [render] extra"
        )
        page = get(url, base, tokens["health"], end=str(END))
        assert page.status_code == 200 and page.text.count("<svg") == 3
