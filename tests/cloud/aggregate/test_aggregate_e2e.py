"""End to end, incremental: late readings for a day two days back change that day's rows in the API
and InfluxDB after the next run, and nothing else; targets and roll-ups follow."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cloud.days import date_of, day_number
from contract import WasteBatch, WasteReading, encode
from contract.topics import waste_readings
from tests.support.common import count, gumei, ms, publish, rows_of, wait_until

SITE, AREA = "WS-0301", "A03"  # S1 dry, S2 wet, S3 recyclable, S4 hazardous
D0, D1, D2 = "2025-06-10", "2025-06-11", "2025-06-12"  # D0 is "two days back" from D2
WINDOW = "time >= '2025-06-01T00:00:00Z' AND time < '2025-07-01T00:00:00Z'"
RES = ["r-" + f"{i:032x}" for i in range(1, 4)]


def rd(dev: int, seq: int, ts: int, cat: str, kg: float, res: str | None = None) -> WasteReading:
    return WasteReading(
        device=f"{SITE}-S{dev}", seq=seq, ts=ts, category=cat, net_kg=kg, resident=res
    )


FIRST = [
    rd(1, 100, ms(2025, 6, 10, 8), "dry", 2.0, RES[0]),
    rd(3, 200, ms(2025, 6, 10, 9), "recyclable", 4.5, RES[1]),
    rd(1, 101, ms(2025, 6, 11, 8), "dry", 1.5),
    rd(2, 300, ms(2025, 6, 12, 7), "wet", 3.25, RES[2]),
]
LATE = [
    rd(3, 201, ms(2025, 6, 10, 23, 59, 59, 999), "recyclable", 1.111, RES[2]),  # last ms of D0
    rd(1, 102, ms(2025, 6, 10, 0, 0, 0, 0), "dry", 0.25, RES[0]),  # first ms of D0
    FIRST[1],  # a replay of an already counted reading
]


def api(api_url: str, token: str, path: str, **params: str) -> Any:
    r = httpx.get(
        f"{api_url}/api/v1/waste/{path}",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    return r.json()


def snapshot(influx, api_url: str, token: str) -> dict[str, Any]:
    return {
        "site_rows": api(api_url, token, "daily", start="2025-06-09", end="2025-06-13", site=SITE)[
            "rows"
        ],
        "area_rows": api(
            api_url, token, "daily", start="2025-06-09", end="2025-06-13", area=AREA, group="area"
        )["rows"],
        "waste_daily": rows_of(influx, f"SELECT * FROM waste_daily WHERE {WINDOW} GROUP BY *"),
        "area_daily": rows_of(influx, f"SELECT * FROM waste_area_daily WHERE {WINDOW} GROUP BY *"),
    }


def by_date(rows: list[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        day = date_of(day_number(r[key])).isoformat() if isinstance(r[key], int) else r[key]
        out.setdefault(day, []).append(r)
    return out


def stored(influx) -> int:
    return count(
        influx, f"SELECT count(net_kg) FROM waste_reading WHERE site = '{SITE}' AND {WINDOW}"
    )


@pytest.fixture(scope="module")
def runs(stack, ingest_worker, gateway, influx, api_url, operator_token):
    client = gateway(SITE)
    config = str(stack.root / "cloud.toml")
    publish(client, waste_readings(SITE), encode(WasteBatch(site=SITE, readings=FIRST)))
    wait_until(lambda: stored(influx) == 4, what="first readings stored")
    gumei("aggregate", "run", "--config", config)
    before = snapshot(influx, api_url, operator_token)
    publish(client, waste_readings(SITE), encode(WasteBatch(site=SITE, readings=LATE)))
    wait_until(lambda: stored(influx) == 6, what="late readings stored")
    out = gumei("aggregate", "run", "--config", config).stdout
    after = snapshot(influx, api_url, operator_token)
    return before, after, out


def test_late_day_row_changes_in_api(runs) -> None:
    before, after, _ = runs
    assert [
        (r["date"], r["category"], r["tonnes"], r["deposits"]) for r in before["site_rows"]
    ] == [
        (D0, "dry", 0.002, 1),
        (D0, "recyclable", 0.0045, 1),
        (D1, "dry", 0.0015, 1),
        (D2, "wet", 0.00325, 1),
    ]
    assert [(r["date"], r["category"], r["tonnes"], r["deposits"]) for r in after["site_rows"]] == [
        (D0, "dry", 0.00225, 2),
        (D0, "recyclable", 0.005611, 2),
        (D1, "dry", 0.0015, 1),
        (D2, "wet", 0.00325, 1),
    ]


def test_nothing_else_changes(runs) -> None:
    before, after, _ = runs
    for key, col in (
        ("site_rows", "date"),
        ("area_rows", "date"),
        ("waste_daily", "time"),
        ("area_daily", "time"),
    ):
        b, a = by_date(before[key], col), by_date(after[key], col)
        changed = sorted(d for d in set(a) | set(b) if a.get(d) != b.get(d))
        assert changed == [D0], (key, changed)


def test_area_rollup_and_residents(runs) -> None:
    _, after, _ = runs
    d0 = {r["category"]: r for r in after["area_rows"] if r["date"] == D0}
    assert d0["all"]["tonnes"] == 0.007861 and d0["all"]["deposits"] == 4
    assert d0["all"]["residents"] == 3  # RES[0] twice, RES[1], RES[2]
    assert d0["recyclable"]["residents"] == 2
    assert all(r["area"] == AREA for r in after["area_rows"])


def test_targets_for_the_late_day(runs, api_url, operator_token) -> None:
    t = api(api_url, operator_token, "targets", date=D0)
    rec = t["recyclables"]
    assert {k: rec[k] for k in ("tonnes", "goal_tonnes", "met")} == {
        "tonnes": 0.005611,
        "goal_tonnes": 80.0,
        "met": False,
    }
    # no weighbridge tickets that day: the station scales are the source (issue 15, additive)
    assert rec["source"] == "station_scales" and rec["station_scales_tonnes"] == 0.005611
    assert t["dry_waste"]["source"] == "station_scales" == t["sorting"]["source"]
    assert (
        t["dry_waste"]["reference"] is None and t["dry_waste"]["met"] is None
    )  # no year-earlier data, no baseline
    assert t["sorting"]["areas"] == 40 and t["sorting"]["areas_meeting"] == 0
    assert AREA in t["sorting"]["areas_below_standard"]
    d = api(api_url, operator_token, "daily", start=D0, end=D0, group="district")["rows"]
    assert {r["category"]: r["tonnes"] for r in d} == {
        "dry": 0.00225,
        "recyclable": 0.005611,
        "all": 0.007861,
    }
    assert "site" not in d[0] and "area" not in d[0]


def test_targets_404_without_data(api_url, operator_token) -> None:
    r = httpx.get(
        f"{api_url}/api/v1/waste/targets",
        params={"date": "2001-01-01"},
        headers={"Authorization": f"Bearer {operator_token}"},
    )
    assert r.status_code == 404


def test_backfill_is_idempotent(runs, stack, influx, api_url, operator_token) -> None:
    _, after, _ = runs
    out = gumei(
        "aggregate",
        "backfill",
        "2025-06-09",
        "2025-06-13",
        "--config",
        str(stack.root / "cloud.toml"),
    ).stdout
    assert "backfilled 5 day(s)" in out
    again = snapshot(influx, api_url, operator_token)
    assert again == after


def test_late_data_touches_the_dry_window_and_the_year_after(influx, registry) -> None:
    import datetime as dt

    from cloud.aggregate.runner import Aggregator
    from cloud.aggregate.targets import TargetRules
    from cloud.days import number_of

    agg = Aggregator(
        influx, registry, TargetRules(dry_window_days=3), today_fn=lambda: dt.date(2026, 6, 11)
    )
    d = number_of(dt.date(2025, 6, 10))
    assert agg.affected_target_days([d]) == [d, d + 1, d + 2, d + 365, d + 366]  # capped at "today"


def test_runner_reads_series_order(runs, influx, registry) -> None:
    """read_day returns each device's readings together and in time order (GROUP BY the tags), the
    layout of daily_totals' one-pass proof; the stored replay of FIRST[1] was one point, not two."""
    import datetime as dt

    from cloud.aggregate.runner import Aggregator
    from cloud.aggregate.tonnage import _runs_increasing
    from cloud.days import number_of

    r, residents = Aggregator(influx, registry, chunk_size=2).read_day(
        number_of(dt.date(2025, 6, 10))
    )
    assert len(r) == 4 and sorted(residents) == sorted(set(RES))
    runs_of = [int(d) for i, d in enumerate(r.device.tolist()) if i == 0 or d != r.device[i - 1]]
    assert len(runs_of) == len(set(runs_of)) == 2  # S1 and S3, each one run
    assert all(r.ts_ms[i] <= r.ts_ms[i + 1] for i in range(3) if r.device[i] == r.device[i + 1])
    # LATE stamped S1 seq 102 before seq 100 (00:00 vs 08:00): not provable in one pass, so the
    # exact fallback decides (the rows above are right either way).
    assert not _runs_increasing(r.device, r.seq)
