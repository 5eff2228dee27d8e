"""A worker's self-monitoring alone: counters, the `ingest_stats` fields and rates, the ignored-field
note, the periodic chores' clock; the stats point written to and read back from a real influxd."""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter

import pytest

from cloud import measurements as m
from cloud.influx import InfluxClient
from cloud.ingest.handler import Message, Plan
from cloud.ingest.housekeeping import Every
from cloud.ingest.stats import Counters, IgnoredFields, StatsReporter
from cloud.quarantine import QuarantineRecord

# What Grafana's fleet dashboard and docs/ingestion.md name: a rename here breaks a panel.
STATS_FIELDS = {
    "received",
    "entries",
    "written",
    "quarantined",
    "redelivered",
    "stale",
    "write_errors",
    "rejected_batches",
    "ignored_fields",
    "internal_errors",
    "dropped_qos0",
    "dropped_dead_letters",
    "queue_depth",
    "batch_latency_ms",
    "max_batch_latency_ms",
    "entries_per_s",
    "written_per_s",
}


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def dead(entries: int) -> QuarantineRecord:
    return QuarantineRecord("WS-0101", "waste", "invalid_entry", "r", "t", "p", entries)


def test_a_batch_is_counted_once_with_its_entries_and_latency() -> None:
    c = Counters()
    messages = [Message("t", b"", 1), Message("t", b"", 2, dup=True), Message("t", b"", 3)]
    plan = Plan(quarantine=[dead(2), dead(1)], readings=40, measurements=5, internal_errors=1)
    c.count_batch(messages, plan, 12.5)
    c.count_batch(messages[:1], Plan(readings=10), 3.0)
    assert (c.received, c.redelivered, c.batches) == (4, 1, 2)
    assert (c.written, c.quarantined, c.entries, c.internal_errors) == (55, 3, 58, 1)
    assert (c.last_batch_ms, c.max_batch_ms) == (3.0, 12.5)


def test_the_stats_fields_keep_their_names_and_rates_count_since_the_last_report() -> None:
    clock = Clock()
    c = Counters()
    stats = StatsReporter(c, "ingest-9", lambda: 17, clock=clock)
    stats.begin()
    c.entries, c.written, c.max_batch_ms, c.last_batch_ms = 100, 90, 40.0, 10.0
    clock.now += 5
    first = stats.fields()
    assert set(first) == STATS_FIELDS
    assert (first["entries_per_s"], first["written_per_s"], first["queue_depth"]) == (20, 18, 17)
    assert first["max_batch_latency_ms"] == 40.0 and c.max_batch_ms == 0.0  # a max per report
    c.entries, c.written = 130, 100
    clock.now += 10
    second = stats.fields()
    assert (second["entries_per_s"], second["written_per_s"]) == (3, 1)
    assert (second["entries"], second["written"]) == (130, 100)  # counters stay monotonic
    assert stats.line(123).startswith(f"{m.INGEST_STATS.name},worker=ingest-9 ")


def test_ignored_fields_are_counted_always_and_named_at_most_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    c = Counters()
    ignored = IgnoredFields(c, "ingest-9", interval_s=60, clock=clock)
    with caplog.at_level(logging.DEBUG, logger="cloud.ingest.stats"):
        ignored.note(Counter({"fw": 2}))
        clock.now += 30
        ignored.note(Counter({"colour": 1, "fw": 1}))
        clock.now += 31
        ignored.note(Counter({"card 6222021234567890": 1}))
    assert c.ignored_fields == 5
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "ingest-9: ignored fields v1 does not define: fw x2",
        "ingest-9: ignored fields v1 does not define: colour x1, fw x1, card ################ x1",
    ], lines


def test_a_chore_is_due_once_per_interval() -> None:
    clock = Clock()
    every = Every(5.0, clock)
    assert not every.due(clock.now + 4.9)
    assert every.due(clock.now + 5.0)
    assert not every.due(clock.now + 9.9)  # the interval restarted at the last due time
    assert every.due(clock.now + 10.0)


def test_the_stats_point_is_written_and_read_back(influx: InfluxClient) -> None:
    worker = f"stats-test-{uuid.uuid4().hex[:8]}"
    c = Counters(received=3, entries=300, written=290, quarantined=10)
    StatsReporter(c, worker, lambda: 0).write(influx)
    series = influx.query(
        f"SELECT received, entries, written, quarantined FROM {m.INGEST_STATS.name} "
        f"WHERE worker = '{worker}' AND time > now() - 1h"
    )
    assert [row[1:] for row in series[0].values] == [[3, 300, 290, 10]]


def test_a_stats_write_that_fails_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    from cloud.influx import InfluxConfig
    from devstack.services import free_port

    with InfluxClient(InfluxConfig(url=f"http://127.0.0.1:{free_port()}", timeout_s=2)) as down:
        t0 = time.monotonic()
        StatsReporter(Counters(), "ingest-9", lambda: 0).write(down)
    assert time.monotonic() - t0 < 5  # no retries: the next report comes soon
    assert any("could not write ingest stats" in r.getMessage() for r in caplog.records)
