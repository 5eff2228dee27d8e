"""Official targets and the reconciliation on a real influxd, through the worker's planner: tickets
at two weighbridges (a load weighed at the first and re-weighed at the second, across midnight
too), station readings of the same areas, a dry-disposal day a year earlier. Checks the stored
weighbridge_daily, waste_targets (sources, exact grams, year-on-year) and waste_reconciliation
rows, a late first ticket through an incremental run, and the API's answers."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import httpx
import pytest

from cloud import measurements as m
from cloud import registry as registry_mod
from cloud.aggregate.runner import Aggregator
from cloud.aggregate.targets import YEAR_DAYS, TargetRules
from cloud.days import DAY_MS, day_start_ms, number_of
from cloud.ingest.handler import BatchPlanner, Message, day_marker_lines
from cloud.lineproto import join_lines
from contract.topics import waste_readings, weighbridge_tickets
from tests.support.common import rows_of

DAY = number_of(dt.date(2022, 3, 10))
YEAR_AGO = DAY - YEAR_DAYS
H = 3_600_000
RULES = TargetRules(dry_window_days=1, dry_year_coverage=1.0, dry_baseline_tonnes_per_day=95.0)
PLATE = "沪A12345"


def ticket(
    site: str, n: int, at: int, area: str, category: str, net_g: int, **kw: Any
) -> dict[str, Any]:
    tare = 9_870_000
    return {
        "device": f"{site}-B1",
        "ticket": n,
        "ts": at,
        "gross_ts": kw.pop("gross_ts", at - H // 4),
        "plate": kw.pop("plate", PLATE),
        "plate_source": "operator",
        "category": category,
        "source_area": area,
        "gross_g": net_g + tare,
        "tare_g": tare,
        "net_g": net_g,
        "tare_source": "weighed",
        **kw,
    }


def at(day: int, hours: float) -> int:
    return day_start_ms(day) + int(hours * H)


# WB-01 (transfer station, area A01) sends its loads on to WB-02 (sorting yard, area A02)
FIRST = ticket(
    "WB-01",
    11,
    at(DAY, 9),
    "A01",
    "recyclable",
    5_360_001,
    subcategory="paper",
    destination="WB-02",
)
TICKETS = {
    "WB-01": [
        ticket("WB-01", 12, at(DAY, 10), "A01", "dry", 8_000_003, destination="WB-02"),
        ticket("WB-01", 13, at(DAY, 23.5), "A01", "dry", 2_000_000, destination="WB-02"),
        ticket("WB-01", 1, at(YEAR_AGO, 10), "A01", "dry", 12_000_000),
    ],
    "WB-02": [
        # FIRST re-weighed at the sorting yard (written before FIRST: a late first ticket)
        ticket(
            "WB-02",
            21,
            at(DAY, 11),
            "A01",
            "recyclable",
            5_300_000,
            subcategory="paper",
            gross_ts=at(DAY, 10.5),
        ),
        ticket(
            "WB-02",
            22,
            at(DAY, 12),
            "A02",
            "recyclable",
            1_234_567,
            subcategory="metal",
            plate="沪B54321",
        ),
        # ticket 13 re-weighed after midnight: counted on DAY at WB-01, not on DAY + 1
        ticket("WB-02", 23, at(DAY + 1, 1), "A01", "dry", 1_990_000, gross_ts=at(DAY + 1, 0.5)),
        ticket("WB-02", 24, at(DAY + 1, 2), "A02", "wet", 3_000_000, plate="沪B54321"),
    ],
}


def registry() -> registry_mod.Registry:
    reg = registry_mod.load()
    for site, area in (("WB-01", "A01"), ("WB-02", "A02")):
        reg = registry_mod.add_site(reg, site, area, f"地磅 {site}", 31.15, 121.40)
        reg = registry_mod.add_device(reg, f"{site}-B1", "serial")
    return reg


def write(influx: Any, reg: registry_mod.Registry, topic: str, payload: dict[str, Any]) -> None:
    """Plan a message as the worker does (a day after its last entry) and write its points and
    markers in one request."""
    entries = payload.get("tickets") or payload["readings"]
    now = max(e["ts"] for e in entries) + DAY_MS
    plan = BatchPlanner(reg).plan_batch([Message(topic, json.dumps(payload).encode())], now_ms=now)
    assert not plan.quarantine, plan.quarantine
    influx.write_lines(join_lines(plan.lines + day_marker_lines(plan.days, time.time_ns())))


def post_tickets(influx: Any, reg: registry_mod.Registry, site: str, docs: list[dict]) -> None:
    payload = {"schema": "gumei.weighbridge.tickets.v1", "site": site, "tickets": docs}
    write(influx, reg, weighbridge_tickets(site), payload)


SCALE_G = {"recyclable": 4_100_250, "dry": 9_500_750}  # at WS-0101 (area A01), on DAY


def scale_readings() -> dict[str, Any]:
    """Deposits of at most 400 kg (the contract's limit is 500) in integer grams."""
    docs = []
    seq = 10
    for cat, scale in (("recyclable", 3), ("dry", 1)):
        grams, n = SCALE_G[cat], -(-SCALE_G[cat] // 400_000)
        for j in range(n):
            part = grams // n + (grams % n if j == n - 1 else 0)
            docs.append(
                {
                    "device": f"WS-0101-S{scale}",
                    "seq": seq,
                    "ts": at(DAY, 8 + seq / 100),
                    "category": cat,
                    "net_kg": part / 1000,
                    "resident": "r-" + f"{seq:032x}",
                }
            )
            seq += 1
    return {"schema": "gumei.waste.readings.v1", "site": "WS-0101", "readings": docs}


def targets_of(influx: Any, day: int) -> dict[str, Any]:
    [row] = rows_of(
        influx,
        f"SELECT * FROM {m.WASTE_TARGETS.name} WHERE time = {day_start_ms(day)}ms",
    )
    return row


def wb_rows(influx: Any, day: int) -> dict[tuple[str, str, str], dict[str, Any]]:
    rows = rows_of(
        influx,
        f"SELECT * FROM {m.WEIGHBRIDGE_DAILY.name} WHERE time = {day_start_ms(day)}ms "
        "GROUP BY area, category, subcategory",
    )
    return {(r["area"], r["category"], r["subcategory"]): r for r in rows}


@pytest.fixture(scope="module")
def stored(influx):
    reg = registry()
    write(influx, reg, waste_readings("WS-0101"), scale_readings())
    for site, docs in TICKETS.items():
        for doc in docs:
            post_tickets(influx, reg, site, [doc])
    agg = Aggregator(influx, reg, RULES, today_fn=lambda: dt.date(2022, 3, 12))
    agg.recompute([YEAR_AGO, DAY, DAY + 1])
    before = targets_of(influx, DAY), wb_rows(influx, DAY)
    post_tickets(influx, reg, "WB-01", [FIRST])  # the first weighbridge's ticket, late
    agg.run_incremental()
    return before, reg


def test_a_late_first_ticket_moves_the_count_to_the_first_weighbridge(influx, stored):
    (before, wb_before), _ = stored
    # before: the sorting yard's ticket 21 was the load's first sighting
    assert wb_before["A01", "recyclable", "paper"]["net_g"] == 5_300_000
    assert before["recyclable_g"] == 5_300_000 + 1_234_567
    rows = wb_rows(influx, DAY)
    paper = rows["A01", "recyclable", "paper"]
    assert (paper["net_g"], paper["loads"], paper["tickets"]) == (5_360_001, 1, 2)
    assert rows["A02", "recyclable", "metal"]["net_g"] == 1_234_567
    assert rows["all", "recyclable", "all"]["net_g"] == 5_360_001 + 1_234_567
    assert rows["all", "dry", "all"]["net_g"] == 8_000_003 + 2_000_000
    assert rows["all", "all", "all"]["tickets"] == 5  # 11, 12, 13 at WB-01; 21, 22 at WB-02


def test_targets_name_their_sources_and_are_exact(influx, stored):
    t = targets_of(influx, DAY)
    assert t["recyclable_source"] == "weighbridge" and t["dry_source"] == "weighbridge"
    assert t["sorting_source"] == "station_scales"
    assert t["recyclable_g"] == 6_594_568
    assert t["recyclable_tonnes"] == 6.594568
    assert t["recyclable_paper_tonnes"] == 5.360001 and t["recyclable_metal_tonnes"] == 1.234567
    assert t["recyclable_scale_tonnes"] == 4.10025  # the station-scale indicator beside it
    assert t["dry_disposal_g"] == 10_000_003
    assert t["dry_reference"] == "year_earlier" and t["dry_reference_tonnes_per_day"] == 12.0
    assert t["dry_change_pct"] == pytest.approx((10.000003 / 12 - 1) * 100, abs=1e-6)
    assert t["dry_met"] is False
    # the next day: only the re-weighed dry load (not counted) and a wet load; no year earlier
    n = targets_of(influx, DAY + 1)
    assert n["dry_source"] == "weighbridge" and n["dry_disposal_g"] == 0
    assert n["dry_reference"] == "baseline" and n["dry_reference_tonnes_per_day"] == 95.0
    assert wb_rows(influx, DAY + 1)["all", "dry", "all"]["tickets"] == 1


def test_reconciliation_rows(influx, stored):
    rows = rows_of(
        influx,
        f"SELECT * FROM {m.WASTE_RECONCILIATION.name} WHERE time = {day_start_ms(DAY)}ms "
        "GROUP BY area, category",
    )
    got = {(r["area"], r["category"]): r for r in rows}
    r = got["A01", "recyclable"]
    assert (r["scale_g"], r["weighbridge_g"], r["diff_g"]) == (4_100_250, 5_360_001, 1_259_751)
    assert r["diff_pct"] == pytest.approx(100 * 1_259_751 / 4_100_250, abs=1e-6)
    a02 = got["A02", "recyclable"]
    assert a02["weighbridge_g"] == 1_234_567 and a02.get("diff_pct") is None  # no scale figure
    assert got["A01", "dry"]["diff_g"] == 10_000_003 - 9_500_750
    # every area with waste stations has its rows, even with neither figure (a silent area)
    assert ("A05", "all") in got and got["A05", "all"]["diff_g"] == 0


def test_api_targets_and_reconciliation(api_url, operator_token, stored):
    auth = {"Authorization": f"Bearer {operator_token}"}
    r = httpx.get(api_url + "/api/v1/waste/targets", params={"date": "2022-03-10"}, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    rec = body["recyclables"]
    assert rec["source"] == "weighbridge" and rec["weighbridge_g"] == 6_594_568
    assert rec["station_scales_tonnes"] == 4.10025
    assert rec["gap_tonnes"] == pytest.approx(6.594568 - 4.10025, abs=1e-9)
    assert rec["subcategories_tonnes"]["paper"] == 5.360001
    assert {"tonnes", "goal_tonnes", "met"} <= rec.keys()  # the contract's fields stay
    assert body["dry_waste"]["source"] == "weighbridge"
    assert body["dry_waste"]["disposal_g"] == 10_000_003
    assert body["sorting"]["source"] == "station_scales"
    r = httpx.get(
        api_url + "/api/v1/waste/reconciliation",
        params={
            "start": "2022-03-10",
            "end": "2022-03-10",
            "area": "A01",
            "category": "recyclable",
        },
        headers=auth,
    )
    assert r.status_code == 200, r.text
    [row] = r.json()["rows"]
    assert (row["scale_g"], row["weighbridge_g"], row["diff_g"]) == (
        4_100_250,
        5_360_001,
        1_259_751,
    )


@pytest.mark.parametrize(
    "params",
    [
        {"start": "2022-03-10", "end": "2022-03-09"},
        {"start": "2022-03-10", "end": "2022-03-10", "area": "A01' OR '1'='1"},
        {"start": "2022-03-10", "end": "2022-03-10", "category": "plutonium"},
        {"start": "1969-12-31", "end": "2022-03-10"},
        {"start": "2022-03-10", "end": "2022-03-10", "area": "x" * 100},
    ],
)
def test_reconciliation_bad_params_are_422(api_url, operator_token, params):
    r = httpx.get(
        api_url + "/api/v1/waste/reconciliation",
        params=params,
        headers={"Authorization": f"Bearer {operator_token}"},
    )
    assert r.status_code == 422, r.text


def test_reconciliation_needs_an_operator(api_url):
    r = httpx.get(
        api_url + "/api/v1/waste/reconciliation",
        params={"start": "2022-03-10", "end": "2022-03-10"},
    )
    assert r.status_code == 401


@pytest.fixture(scope="module")
def inspected(influx, stored):
    """Three areas inspected in the window before DAY: A01 passes; A02 fails; A03 passed, then its
    latest check failed; A04 only before the window, A05 only after the day. Recomputes DAY."""
    _, reg = stored

    def check(area: str, day: int, hours: float, n: int, passed: bool) -> str:
        tags = f"place_type=residential,place_kind=area,place={area},area={area}"
        fields = f'id="i-{n:020x}",score={95 if passed else 70}i,passed={str(passed).lower()}'
        return f"{m.INSPECTION.name},{tags} {fields} {at(day, hours) * 1_000_000}"

    lines = [
        check("A01", DAY - 3, 10, 1, True),
        check("A02", DAY - 2, 10, 2, False),
        check("A03", DAY - 20, 10, 3, True),
        check("A03", DAY - 1, 10, 4, False),
        check("A04", DAY - 40, 10, 5, True),  # outside the 30-day window
        check("A05", DAY + 1, 10, 6, True),  # after the day
    ]
    influx.write_lines(("\n".join(lines) + "\n").encode(), db=influx.records_db)
    Aggregator(influx, reg, RULES, today_fn=lambda: dt.date(2022, 3, 12)).recompute([DAY])


def test_sorting_comes_from_inspections_when_places_were_inspected(influx, inspected):
    """实效达标率 = 1 of 3 places; the scale proxy stays beside it."""
    t = targets_of(influx, DAY)
    assert t["sorting_source"] == "inspections"
    assert (t["sorting_areas_meeting"], t["sorting_areas"]) == (1, 3)
    assert t["sorting_pct"] == pytest.approx(33.33) and t["sorting_met"] is False
    assert t["recyclable_source"] == "weighbridge"  # the other figures keep their sources


def sorting_rows(influx: Any, day: int) -> dict[str, dict[str, Any]]:
    rows = rows_of(
        influx,
        f"SELECT * FROM {m.WASTE_SORTING_COMPARISON.name} WHERE time = {day_start_ms(day)}ms "
        "GROUP BY area",
    )
    return {r["area"]: r for r in rows}


def test_scale_standard_against_inspections_per_area(influx, inspected, api_url, operator_token):
    """A01's scales (recyclable and dry only, no wet) miss the
    weight-based standard while its inspection passed — they disagree; A02 (no deposits, failed)
    and A03 (latest check failed) agree; A05's check is after the day: not inspected."""
    got = sorting_rows(influx, DAY)
    a01 = got["A01"]
    assert (a01["scale_data"], a01["scale_meets"], a01["inspected"]) == (True, False, True)
    assert (a01["inspection_passed"], a01["disagree"], a01["status"]) == (True, True, "disagree")
    assert a01["inspection_ms"] == at(DAY - 3, 10)
    assert got["A02"]["scale_data"] is False and got["A02"]["status"] == "agree"
    assert got["A03"]["inspection_passed"] is False and got["A03"]["status"] == "agree"
    assert got["A05"]["status"] == "not_inspected" and got["A05"].get("inspection_passed") is None
    assert got["A04"]["status"] == "not_inspected"  # its check is outside the 30-day window
    auth = {"Authorization": f"Bearer {operator_token}"}
    url = api_url + "/api/v1/waste/sorting-comparison"
    r = httpx.get(url, params={"start": "2022-03-10", "end": "2022-03-10"}, headers=auth)
    assert r.status_code == 200, r.text
    rows = {x["area"]: x for x in r.json()["rows"]}
    assert rows["A01"]["disagree"] is True and rows["A01"]["scale_meets"] is False
    assert rows["A01"]["inspected_at"].startswith("2022-03-07T02:00:00")  # 10:00 Shanghai
    assert rows["A05"]["inspection_passed"] is None and rows["A05"]["inspected_at"] is None
    params = {"start": "2022-03-10", "end": "2022-03-10", "disagree": "true"}
    r = httpx.get(url, params=params, headers=auth)
    assert [x["area"] for x in r.json()["rows"]] == ["A01"]
    r = httpx.get(url, params={**params, "area": "A02"}, headers=auth)
    assert r.status_code == 200 and r.json()["rows"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"start": "2022-03-10", "end": "2022-03-09"},
        {"start": "2022-03-10", "end": "2022-03-10", "area": "A01' OR '1'='1"},
        {"start": "2022-03-10", "end": "2022-03-10", "area": ""},
        {"start": "2022-03-10", "end": "2022-03-10", "disagree": "maybe"},
        {"start": "1969-12-31", "end": "2022-03-10"},
        {"start": "2022-03-10"},
        {"start": "2022-03-10", "end": "2022-03-10", "area": "x" * 100},
    ],
)
def test_sorting_comparison_bad_params_are_422(api_url, operator_token, params):
    r = httpx.get(
        api_url + "/api/v1/waste/sorting-comparison",
        params=params,
        headers={"Authorization": f"Bearer {operator_token}"},
    )
    assert r.status_code == 422, r.text
    assert isinstance(r.json()["detail"], str) and "\n" not in r.json()["detail"]  # one line


def test_sorting_comparison_needs_an_operator(api_url):
    r = httpx.get(
        api_url + "/api/v1/waste/sorting-comparison",
        params={"start": "2022-03-10", "end": "2022-03-10"},
    )
    assert r.status_code == 401
