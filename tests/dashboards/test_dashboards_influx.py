"""Every panel query, macros expanded, runs on a real influxd 1.6 over a small dataset, with the right numbers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cloud import measurements as m
from cloud.aggregate import encode
from cloud.aggregate.sorting_gap import area_checks, compare_sorting
from cloud.days import DAY_MS, date_of, day_number, day_start_ms
from cloud.health.daily import daily_lines
from cloud.health.followups import Event, fold, followup_id
from cloud.health.stats import StatRow, daily_stats
from cloud.health.worklist import count_lines
from cloud.influx import InfluxClient
from cloud.lineproto import line, point_time_ns
from dashboards import generate as gen
from dashboards import render, schema, verify
from dashboards.macros import Raw
from tests.support.private_influx import private_influx, sample_events

HOUR = 3_600_000
TODAY = 20419  # Shanghai day number of 2025-11-27
NOW = day_start_ms(TODAY) + 10 * HOUR  # 2025-11-27 10:00 Shanghai
START = day_start_ms(TODAY - 29)
SITES = {"WS-0101": "A01", "WS-0102": "A01", "WS-0201": "A02"}
KG = {"dry": 40.0, "wet": 55.5, "recyclable": 12.25, "hazardous": 0.5}
VARIABLES = {"area": ["A01", "A02"], "station": list(SITES), "hut": "HH-01"}


def _readings() -> list[tuple[str, str, str, int, float]]:
    """(site, area, category, ts_ms, net_kg): every day of the range, one deposit at 23:30 Shanghai."""
    out = []
    for day in range(TODAY - 29, TODAY + 1):
        for i, (site, area) in enumerate(SITES.items()):
            for category, kg in KG.items():
                out.append((site, area, category, day_start_ms(day) + (7 + i) * HOUR, kg * (1 + i)))
                if day < TODAY:
                    out.append(
                        (site, area, category, day_start_ms(day) + 23 * HOUR + 30 * 60_000, 1.0)
                    )
    return out


def _daily(
    readings: list[tuple[str, str, str, int, float]],
) -> dict[tuple[int, str, str, str], float]:
    kg: dict[tuple[int, str, str, str], float] = defaultdict(float)
    for site, area, category, ts, net in readings:
        kg[(day_number(ts), site, area, category)] += net
    return kg


def _followup_events() -> list[Event]:
    """Seven residents with a follow-up: six overdue refers, one urgent today; one more closed today."""
    t = (day_start_ms(TODAY - 20) + 2 * HOUR) * 10**6
    events = [
        Event(f"r-{i:032x}", "hyperglycaemia", "raised", t + i, "refer", "glucose_high_fasting")
        for i in range(6)
    ]
    events.append(
        Event(
            "r-" + "e" * 32, "hypertension", "raised", (NOW - HOUR) * 10**6, "urgent", "bp_severe"
        )
    )
    closer = "r-" + "c" * 32
    events.append(Event(closer, "hypoxaemia", "raised", t, "refer", "spo2_low"))
    fid = followup_id(closer, "hypoxaemia", 0)
    events.append(
        Event(closer, "hypoxaemia", "closed", NOW * 10**6, followup=fid, outcome="seen_by_doctor")
    )
    return events


def _dataset() -> str:
    readings = _readings()
    lines = []
    for seq, (site, area, category, ts, net) in enumerate(readings):
        tags = {"site": site, "area": area, "device": f"{site}-S1", "category": category}
        lines.append(
            line(
                m.WASTE_READING.name,
                tags,
                {"net_kg": net, "gross_kg": 50.0, "seq": seq},
                point_time_ns(ts, seq),
            )
        )
    for (day, site, area, category), kg in _daily(readings).items():
        fields = {"tonnes": kg / 1000, "net_g": round(kg * 1000), "deposits": 2}
        lines.append(
            line(
                m.WASTE_DAILY.name,
                {"site": site, "area": area, "category": category},
                fields,
                day_start_ms(day) * 10**6,
            )
        )
    t = schema.WASTE_TARGETS
    for day in range(TODAY - 29, TODAY + 1):
        fields = {"recyclable_tonnes": 0.1, "dry_change_pct": -12.5, "sorting_pct": 88.0}
        lines.append(
            line(
                t.name,
                {},
                {k: v for k, v in fields.items() if k in t.fields},
                day_start_ms(day) * 10**6,
            )
        )
    # waste_reconciliation as the aggregator writes it: a scale in A01 drifting low, day by day
    for k, day in enumerate(range(TODAY - 2, TODAY + 1)):
        for area in ("A01", "all"):
            for cat in ("recyclable", "all"):
                scale_g, wb_g = 1_000_000 - 100_000 * k, 1_000_000
                lines.append(
                    line(
                        m.WASTE_RECONCILIATION.name,
                        {"area": area, "category": cat},
                        {
                            "scale_g": scale_g,
                            "scale_tonnes": scale_g / 1e6,
                            "weighbridge_g": wb_g,
                            "weighbridge_tonnes": wb_g / 1e6,
                            "diff_g": wb_g - scale_g,
                            "diff_tonnes": (wb_g - scale_g) / 1e6,
                            "diff_pct": 100 * (wb_g - scale_g) / scale_g,
                        },
                        day_start_ms(day) * 10**6,
                    )
                )
    # waste_sorting_comparison as the aggregator writes it (encode): today A01's scales meet the
    # standard but its inspection failed (disagree), A02 agrees, A03 was not inspected
    checks = area_checks(
        ["A01", "A02", "A03"],
        [("A01", NOW - 2 * DAY_MS, "i-01", False), ("A02", NOW - DAY_MS, "i-02", True)],
    )
    cmp = compare_sorting(
        np.array([True, True, False]),
        np.array([True, True, False]),
        checks,
        day_start_ms(TODAY - 29),
        day_start_ms(TODAY + 1),
    )
    lines += encode.sorting_comparison_lines(TODAY, cmp, ["A01", "A02", "A03"], range(3))
    # health_daily as the aggregator writes it for operators: today shown (k = 2), yesterday suppressed (k = 5)
    rows = [
        StatRow("HH-01", NOW - (i + 1) * HOUR, kind, f"r-{i:032x}", abnormal)
        for i, (kind, abnormal) in enumerate(
            [
                ("blood_pressure", True),
                ("blood_pressure", False),
                ("blood_glucose", False),
                ("blood_glucose", False),
            ]
        )
    ]
    rows[3] = StatRow(
        "HH-01", rows[3].ts, "blood_glucose", rows[0].resident, False
    )  # 2 residents each type
    (shown,) = daily_stats(rows)
    lines += daily_lines(shown, k=2)
    (hidden,) = daily_stats(
        [StatRow("HH-01", r.ts - DAY_MS, r.type, r.resident, r.abnormal) for r in rows]
    )
    lines += daily_lines(hidden, k=5)
    # follow-up counts as the aggregator writes them for operators: 7 open (6 overdue), 1 closed
    lines += count_lines(fold(_followup_events()), date_of(TODAY), k=5)
    for j, (site, online) in enumerate([("WS-0101", True), ("WS-0102", True), ("WS-0201", False)]):
        for k in range(3):
            ts = (NOW - (3 - k) * HOUR + j) * 10**6
            lines.append(
                line(
                    m.GATEWAY_STATUS.name,
                    {"site": site, "kind": "waste"},
                    {"online": online, "buffered": 5 * k, "devices_ok": 4, "devices": 4},
                    ts,
                )
            )
            lines.append(
                line(
                    m.DEVICE_STATUS.name,
                    {"site": site, "device": f"{site}-S1"},
                    {"ok": j != 1, "fill_pct": 30.0 + 10 * k},
                    ts,
                )
            )
    for w in ("w1", "w2"):
        for k in range(6):
            fields = {
                "received": 100 * k,
                "written": 95 * k,
                "quarantined": k,
                "redelivered": 0,
                "queue_depth": k,
                "batch_latency_ms": 4.5,
            }
            lines.append(
                line(m.INGEST_STATS.name, {"worker": w}, fields, (NOW - (6 - k) * 2 * HOUR) * 10**6)
            )
    q_tags = {"site": "WS-0101", "kind": "waste", "code": "bad_schema", "worker": "w1"}
    lines.append(
        line(
            m.QUARANTINE.name,
            q_tags,
            {"reason": "not v1", "topic": "t", "payload": "{}", "entries": 3},
            (NOW - HOUR) * 10**6,
        )
    )
    lines.append(
        line(
            m.AGGREGATOR_STATE.name,
            {},
            {"watermark_ms": NOW - 60_000, "days": 30},
            (NOW - 60_000) * 10**6,
        )
    )
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def dash_influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxClient]:
    with private_influx(tmp_path_factory.mktemp("dash-influxd")) as client:
        client.write_lines(_dataset().encode())
        # operations events live in the records database (the panels name it in full)
        client.write_lines(("\n".join(sample_events(NOW)) + "\n").encode(), db=client.records_db)
        yield client


QUERIES = [
    (name, *item)
    for name, doc in gen.load().items()
    for item in verify.panel_queries(doc, VARIABLES, START, NOW)
]


@pytest.mark.parametrize(
    ("dashboard", "title", "ref", "query"),
    QUERIES,
    ids=[f"{d}:{t[:24]}:{r}" for d, t, r, _ in QUERIES],
)
def test_every_panel_query_runs_and_returns_data(
    dash_influx: InfluxClient, dashboard: str, title: str, ref: str, query: str
) -> None:
    series = dash_influx.query(query)
    assert series and any(v for s in series for v in s.values), (
        f"{title} [{ref}] returned nothing: {query}"
    )


def _panel(
    dashboard: str, title_part: str, variables: dict | None = None
) -> list[tuple[str, str, str]]:
    found = [
        x
        for x in verify.panel_queries(gen.load()[dashboard], variables or VARIABLES, START, NOW)
        if title_part in x[0]
    ]
    assert found, title_part
    return found


def test_todays_tonnes_per_category_equal_the_readings(dash_influx: InfluxClient) -> None:
    ((_, _, query),) = _panel("waste-overview", "Today's tonnes by category")
    got = {s.tags["category"]: s.values[0][1] for s in dash_influx.query(query)}
    expected: dict[str, float] = defaultdict(float)
    for _site, _area, category, ts, kg in _readings():
        if day_number(ts) == TODAY:
            expected[category] += kg / 1000
    assert got == pytest.approx(expected, abs=1e-9)
    ((_, _, query),) = _panel("waste-overview", "Recyclables today")
    assert dash_influx.query(query)[0].values[0][1] == pytest.approx(
        expected["recyclable"], abs=1e-9
    )


def test_daily_trend_buckets_are_shanghai_days(dash_influx: InfluxClient) -> None:
    ((_, _, query),) = _panel("waste-overview", "Daily tonnes per category")
    by_day: dict[tuple[int, str], float] = defaultdict(float)
    for (day, _site, _area, category), kg in _daily(_readings()).items():
        by_day[(day, category)] += kg / 1000
    for s in dash_influx.query(query):
        for ts, value in s.values:
            assert (ts + 8 * HOUR) % DAY_MS == 0  # bucket starts at Shanghai midnight
            assert value == pytest.approx(
                by_day.get((day_number(ts), s.tags["category"]), 0.0), abs=1e-9
            )
    # the same buckets as tz('Asia/Shanghai') on this influxd (needs tzdata on the server)
    tz_query = query.replace("time(1d, -8h)", "time(1d)") + " tz('Asia/Shanghai')"
    assert [s.values for s in dash_influx.query(tz_query)] == [
        s.values for s in dash_influx.query(query)
    ]


def test_raw_readings_summed_per_shanghai_day_match_waste_daily(dash_influx: InfluxClient) -> None:
    q = f'SELECT sum("net_kg") / 1000 FROM "{m.WASTE_READING.name}" WHERE time >= {START}ms and time <= {NOW}ms GROUP BY time(1d, -8h) fill(none)'
    ((_, _, daily),) = _panel("station", "Daily tonnes")
    got = {ts: v for ts, v in dash_influx.query(q)[0].values}
    totals: dict[int, float] = defaultdict(float)
    for s in dash_influx.query(daily):
        for ts, v in s.values:
            totals[ts] += v
    assert {ts: pytest.approx(v, abs=1e-9) for ts, v in got.items()} == {
        ts: v for ts, v in totals.items() if v
    }


def test_area_ranking_and_all_value(dash_influx: InfluxClient) -> None:
    ((_, _, query),) = _panel("waste-overview", "Areas ranked")
    rows = {s.tags["area"]: s.values[0][1] for s in dash_influx.query(query)}
    assert set(rows) == {"A01", "A02"} and rows["A01"] > rows["A02"]
    one = _panel(
        "station", "Category mix", {**VARIABLES, "area": Raw(".*"), "station": ["WS-0201"]}
    )[0][2]
    assert {s.tags["category"] for s in dash_influx.query(one)} == set(KG)


def test_fleet_counts(dash_influx: InfluxClient) -> None:
    def value(title: str) -> float:
        ((_, _, query),) = _panel("fleet", title)
        return dash_influx.query(query)[0].values[0][1]

    assert value("Gateways online") == 2
    assert value("Gateways offline") == 1
    assert value("Devices reporting a fault") == 1
    assert value("Quarantined entries (") == 3


def test_fleet_events_panels(dash_influx: InfluxClient) -> None:
    def value(title: str) -> float:
        ((_, _, query),) = _panel("fleet", title)
        return dash_influx.query(query)[0].values[0][1]

    assert value("Open events") == 2  # the resolved one is not counted
    assert value("Overdue events") == 1
    ((_, _, query),) = _panel("fleet", "Open and overdue events")
    rows = {
        (s.tags["rule"], s.tags["subject"]): dict(zip(s.columns, s.values[0], strict=True))
        for s in dash_influx.query(query)
    }
    assert set(rows) == {("gateway_offline", "WS-0201"), ("bin_full", "WS-0101-S1")}
    assert rows[("bin_full", "WS-0101-S1")]["state"] == "acknowledged"
    assert rows[("gateway_offline", "WS-0201")]["deadline_ms"] == NOW - HOUR
    assert rows[("gateway_offline", "WS-0201")]["time"] == NOW - 5 * HOUR  # its last change
    assert rows[("bin_full", "WS-0101-S1")]["value"] == 93.5


def test_health_abnormal_rate_inputs(dash_influx: InfluxClient) -> None:
    abnormal, measured = _panel("health-hut", "Abnormal rate by type")
    a = {s.tags["type"]: s.values[0][1] for s in dash_influx.query(abnormal[2])}
    n = {s.tags["type"]: s.values[0][1] for s in dash_influx.query(measured[2])}
    assert a == {"blood_pressure": 1, "blood_glucose": 0} and n == {
        "blood_pressure": 2,
        "blood_glucose": 2,
    }


def test_health_followup_counts(dash_influx: InfluxClient) -> None:
    ((_, _, query),) = _panel("health-hut", "Family-doctor follow-ups")
    got = {s.tags["state"]: [tuple(v[1:]) for v in s.values] for s in dash_influx.query(query)}
    # closed_week: 1 closed follow-up, fewer than k = 5 residents: suppressed, no count, hidden
    assert got == {"open": [(7, 0)], "overdue": [(6, 0)], "closed_week": [(None, 1)]}


def test_render_writes_one_png_per_dashboard(dash_influx: InfluxClient, tmp_path: Path) -> None:
    paths = render.render(dash_influx, tmp_path, VARIABLES, START, NOW)
    assert sorted(p.name for p in paths) == sorted(f"{name}.png" for name in gen.load())
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000


def test_reconciliation_panels_show_the_growing_gap(dash_influx: InfluxClient) -> None:
    [(_, _, trend)] = _panel("waste-overview", "Weighbridge minus station scales")
    [series] = dash_influx.query(trend)
    gaps = [v[1] for v in series.values if v[1] is not None]
    assert series.tags["category"] == "recyclable"
    assert gaps == pytest.approx([0.0, 0.1, 0.2])  # one point per Shanghai day, growing
    [(_, _, table)] = _panel("waste-overview", "Areas: scales vs weighbridge")
    rows = {
        s.tags["area"]: dict(zip(s.columns, s.values[0], strict=True))
        for s in dash_influx.query(table)
    }
    assert rows["A01"]["diff_tonnes"] == pytest.approx(0.2)
    assert rows["A01"]["diff_pct"] == pytest.approx(25.0)


def test_sorting_comparison_panel_shows_disagreeing_areas(dash_influx: InfluxClient) -> None:
    [(_, _, table)] = _panel("waste-overview", "scale sorting standard vs inspection")
    rows = {
        s.tags["area"]: dict(zip(s.columns, s.values[0], strict=True))
        for s in dash_influx.query(table)
    }
    assert rows["A01"]["disagree"] is True and rows["A01"]["status"] == "disagree"
    assert rows["A01"]["scale_meets"] is True and rows["A01"]["inspection_passed"] is False
    assert rows["A02"]["status"] == "agree"
    assert rows["A03"]["status"] == "not_inspected" and rows["A03"]["inspection_passed"] is None
