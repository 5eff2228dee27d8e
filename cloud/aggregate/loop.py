"""The lanes of `gumei aggregate loop`, in one place for the command and the benchmark that
measures it (bench/aggregate_runner.py: a late reading's latency is this loop's).

- The rows lane: `run_incremental` without the district's distinct residents, a run every
  `interval_s` (cloud settings `aggregate_interval_s`, 1 s) from the start of the last (at once when a run took longer): a late reading waits
  at most one period and one run.
- The residents lane: `run_district_residents` every `residents_interval_s` (cloud settings
  `aggregate_residents_interval_s`, 60 s; a whole-day scan in
  influxd each, so a late reading's rows never wait for it).

An InfluxDB error ends a run, not the lane: it is reported and the next run tries again. Any
other error stops both lanes and is raised (the service manager restarts the process).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from cloud.aggregate.runner import Aggregator
from cloud.influx import InfluxError


def lane(
    step: Callable[[], object],
    every_s: float,
    stop: threading.Event,
    on_error: Callable[[InfluxError], None],
) -> None:
    """Run `step` every `every_s` seconds (start to start) until `stop` is set; any error but an
    InfluxDB one sets `stop` and is raised."""
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            step()
        except InfluxError as exc:
            on_error(exc)
        except BaseException:
            stop.set()
            raise
        stop.wait(max(0.0, every_s - (time.monotonic() - t0)))


def run_lanes(
    aggregator: Callable[[], Aggregator],
    stop: threading.Event,
    on_error: Callable[[InfluxError], None],
    interval_s: float,
    residents_interval_s: float,
) -> None:
    """Both lanes until `stop` is set: the residents lane in a thread, the rows lane in this one.
    `aggregator()` is asked at every run (a registry change gives a new Aggregator)."""
    failures: list[BaseException] = []

    def residents() -> None:
        try:
            lane(
                lambda: aggregator().run_district_residents(), residents_interval_s, stop, on_error
            )
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread below
            failures.append(exc)

    slow = threading.Thread(target=residents, name="aggregate-residents", daemon=True)
    slow.start()
    try:
        lane(
            lambda: aggregator().run_incremental(district_residents=False),
            interval_s,
            stop,
            on_error,
        )
    finally:
        stop.set()
        slow.join()
    if failures:
        raise failures[0]
