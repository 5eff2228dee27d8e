"""A worker's self-monitoring: its counters, the `ingest_stats` point written every few seconds, and
the rate-limited note of fields v1 does not define.

The counter names are the `ingest_stats` field names the Grafana fleet dashboard reads
(docs/ingestion.md, "Self-monitoring"): rename none.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cloud import measurements as m
from cloud.influx import InfluxClient, InfluxError
from cloud.ingest.handler import Message, Plan
from cloud.lineproto import line
from cloud.redact import mask_digits

log = logging.getLogger(__name__)

IGNORED_LOG_INTERVAL_S = 60.0


@dataclass
class Counters:
    """Monotonic counters of one worker (read by stats and tests).

    Threading: each counter has one writing thread (dropped_qos0: the network thread; the others:
    the committer thread); any thread may read them.
    """

    received: int = 0
    entries: int = 0
    written: int = 0
    quarantined: int = 0
    redelivered: int = 0
    stale: int = 0
    batches: int = 0
    write_errors: int = 0
    rejected_batches: int = 0
    ignored_fields: int = 0  # fields v1 does not define, accepted and ignored
    internal_errors: int = 0  # messages our own bug turned into dead letters
    dropped_qos0: int = 0  # QoS 0 messages dropped while the QoS 0 inbox was full
    dropped_dead_letters: int = 0  # dead letters InfluxDB refused even alone (logged)
    last_batch_ms: float = 0.0
    max_batch_ms: float = 0.0

    def count_batch(self, messages: Sequence[Message], plan: Plan, batch_ms: float) -> None:
        """Count a batch that was written (and acknowledged): `plan` as stored, `batch_ms` from
        preparing to stored."""
        self.received += len(messages)
        self.redelivered += sum(1 for msg in messages if msg.dup)
        self.written += plan.readings + plan.measurements
        quarantined = sum(r.entries for r in plan.quarantine)
        self.quarantined += quarantined
        self.entries += plan.readings + plan.measurements + quarantined
        self.internal_errors += plan.internal_errors
        self.batches += 1
        self.last_batch_ms = batch_ms
        self.max_batch_ms = max(self.max_batch_ms, batch_ms)


class IgnoredFields:
    """Counts fields v1 does not define; names them in a debug line at most once a minute.

    Threading: one thread (the committer thread).
    """

    def __init__(
        self,
        counters: Counters,
        worker: str,
        *,
        interval_s: float = IGNORED_LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counters = counters
        self.worker = worker
        self.interval_s = interval_s
        self._clock = clock
        self._seen: Counter[str] = Counter()
        self._logged = 0.0

    def note(self, ignored: Counter[str]) -> None:
        """Count these ignored fields (by name); log the names seen since the last line if due."""
        self.counters.ignored_fields += sum(ignored.values())
        self._seen.update(ignored)
        now = self._clock()
        if now - self._logged >= self.interval_s:
            self._logged = now
            names = ", ".join(
                f"{mask_digits(name)[:40]} x{n}" for name, n in self._seen.most_common(10)
            )
            log.debug("%s: ignored fields v1 does not define: %s", self.worker, names)
            self._seen.clear()


class StatsReporter:
    """Turns the counters into `ingest_stats` fields (with rates since the last report) and writes them.

    Threading: one thread (the planner thread) calls `begin`, `fields` and `write`.
    `queue_depth` says how many received messages wait to be batched.
    """

    def __init__(
        self,
        counters: Counters,
        worker: str,
        queue_depth: Callable[[], int],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counters = counters
        self.worker = worker
        self._queue_depth = queue_depth
        self._clock = clock
        self._base = (clock(), 0, 0)

    def begin(self) -> None:
        """Measure the first rates from now."""
        self._base = (self._clock(), 0, 0)

    def fields(self) -> dict[str, int | float]:
        """The `ingest_stats` fields now; the rates' base moves here and `max_batch_ms` restarts."""
        c = self.counters
        now = self._clock()
        t0, entries0, written0 = self._base
        elapsed = max(now - t0, 1e-6)
        self._base = (now, c.entries, c.written)
        fields: dict[str, int | float] = {
            "received": c.received,
            "entries": c.entries,
            "written": c.written,
            "quarantined": c.quarantined,
            "redelivered": c.redelivered,
            "stale": c.stale,
            "write_errors": c.write_errors,
            "rejected_batches": c.rejected_batches,
            "ignored_fields": c.ignored_fields,
            "internal_errors": c.internal_errors,
            "dropped_qos0": c.dropped_qos0,
            "dropped_dead_letters": c.dropped_dead_letters,
            "queue_depth": self._queue_depth(),
            "batch_latency_ms": float(c.last_batch_ms),
            "max_batch_latency_ms": float(c.max_batch_ms),
            "entries_per_s": (c.entries - entries0) / elapsed,
            "written_per_s": (c.written - written0) / elapsed,
        }
        c.max_batch_ms = 0.0
        return fields

    def line(self, time_ns: int) -> str:
        """The `ingest_stats` point now, as line protocol."""
        return line(m.INGEST_STATS.name, {"worker": self.worker}, self.fields(), time_ns)

    def write(self, influx: InfluxClient) -> None:
        """Write the `ingest_stats` point once (no retry: the next one comes soon); log a failure."""
        stats = self.line(time.time_ns())
        try:
            influx.write_lines((stats + "\n").encode(), retries=0)
        except InfluxError as exc:
            log.warning("could not write ingest stats: %s", exc)
