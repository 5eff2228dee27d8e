"""The lanes of `gumei aggregate loop` (cloud/aggregate/loop.py): an InfluxDB error ends a run,
not the lane; any other error stops both lanes and reaches the caller in one piece."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from cloud.aggregate.loop import lane, run_lanes
from cloud.influx import RetryableInfluxError


def test_an_influx_error_is_reported_and_the_lane_goes_on() -> None:
    stop = threading.Event()
    calls: list[int] = []
    reported: list[Exception] = []

    def step() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise RetryableInfluxError("influxd is restarting")
        stop.set()

    lane(step, 0.0, stop, reported.append)
    assert len(calls) == 3 and [str(e) for e in reported] == ["influxd is restarting"] * 2


def test_any_other_error_stops_the_lane_and_is_raised() -> None:
    stop = threading.Event()
    with pytest.raises(ZeroDivisionError):
        lane(lambda: 1 / 0, 0.0, stop, lambda exc: None)
    assert stop.is_set()


class _Agg:
    """Stands for an Aggregator: counts the runs of each lane; the residents lane fails."""

    def __init__(self) -> None:
        self.rows = 0

    def run_incremental(self, district_residents: bool = True) -> Any:
        assert district_residents is False  # the residents have their own lane
        self.rows += 1

    def run_district_residents(self) -> int:
        raise KeyError("a bug in the residents lane")


def test_a_failing_residents_lane_stops_the_rows_lane_and_is_raised() -> None:
    agg = _Agg()
    stop = threading.Event()
    with pytest.raises(KeyError, match="residents lane"):
        run_lanes(lambda: agg, stop, lambda exc: None, 0.01, 0.01)  # type: ignore[arg-type, return-value]
    assert stop.is_set()


def test_the_follow_up_counts_are_rewritten_when_due_not_at_every_run(
    influx, registry, monkeypatch
) -> None:
    """With a run every second, today's follow-up counts (a fold of the whole worklist and a
    DELETE) are rewritten when a run touched a hut's day, on a new Shanghai day, or after
    COUNTS_EVERY_S; not at every run."""
    import datetime as dt

    from cloud.aggregate import runner

    day = [dt.date(2026, 12, 1)]
    agg = runner.Aggregator(influx, registry, today_fn=lambda: day[0])
    assert agg._counts_due([]) is True  # the first run
    assert agg._counts_due([]) is False  # the next, a second later, nothing for the huts
    assert agg._counts_due([20_000]) is True  # a hut's day touched
    day[0] = dt.date(2026, 12, 2)
    assert agg._counts_due([]) is True  # a new Shanghai day
    monkeypatch.setattr(runner, "COUNTS_EVERY_S", 0.0)
    assert agg._counts_due([]) is True  # the minute is over
