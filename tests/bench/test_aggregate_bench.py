"""Smoke test of `gumei bench aggregate` at a tiny size (figures printed, goals evaluated; no timing asserted)."""

from __future__ import annotations

from bench.aggregate import make_readings, python_loop
from cloud.aggregate.tonnage import daily_totals
from tests.support.common import gumei
from tests.support.tonnage import rows_of_totals


def test_bench_data_and_python_loop_agree_with_numpy() -> None:
    r = make_readings(5000, days=3, sites=7, seed=1)
    t = daily_totals(r, 7, 4)
    loop = python_loop(
        *(a.tolist() for a in (r.ts_ms, r.site, r.category, r.device, r.seq, r.net_mg))
    )
    assert rows_of_totals(t) == loop


def test_bench_cli_smoke() -> None:
    out = gumei(
        "bench",
        "aggregate",
        "--readings",
        "20000",
        "--days",
        "3",
        "--sites",
        "20",
        "--python-sample",
        "2000",
        "--influx-readings",
        "3000",
        "--runner-readings",
        "5000",
    ).stdout
    for name in (
        "numpy daily_totals",
        "pandas tz-aware groupby",
        "python loop",
        "InfluxQL",
        "memory-bandwidth bound",
    ):
        assert name in out, out
    assert "goal numpy ≥ 10× pandas" in out and "of bandwidth bound" in out
    for name in (
        "runner: export (read)",
        "runner: kernel",
        "runner: whole day",
        "raw export, json",
    ):
        assert name in out, out
    assert "backfill rate / influxd raw export rate" in out


def test_bench_city_smoke() -> None:
    """The city-scale path at a toy size: every figure and both goals printed (no timing asserted)."""
    out = gumei(
        "bench",
        "aggregate",
        "--city",
        "--stations",
        "16",
        "--city-readings",
        "2000",
        "--late",
        "3",
        "--late-former",
        "1",
    ).stdout
    for name in (
        "city runner: whole day",
        "late reading -> corrected daily row, per area (now)",
        "late reading -> corrected daily row, whole day (former)",
        "peak RSS during backfill",
        "city late reading -> daily row p99, per area",
        "city backfill rate / influxd raw export rate",
    ):
        assert name in out, out
