"""Prepared batches written to InfluxDB until stored: retried while InfluxDB may yet take them, bisected
down to the bad lines when it rejects them (those lines become `write_rejected` dead letters).

influxd 1.x writes the valid lines of a rejected body (a "partial write"), so rewriting them while
bisecting is harmless: a point's identity is (device, seq).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from cloud.influx import FatalInfluxError, InfluxClient, RetryableInfluxError, WriteRejected
from cloud.ingest.encode import Prepared, dead_letter_lines, plan_bodies
from cloud.ingest.handler import Message, Plan, QuarantineRecord, day_marker_lines, topic_of
from cloud.ingest.stats import Counters
from cloud.lineproto import join_lines
from cloud.redact import mask_digits
from runtime.backoff import Backoff

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.25

PlanFn = Callable[[list[Message]], Plan]


class Stopped(Exception):
    """The worker is stopping while a write still fails; leave the batch unacknowledged."""


class Committer:
    """Writes prepared batches; what `commit` returns is what was stored and quarantined.

    Threading: one thread calls `commit` (the committer thread). It blocks until the batch is
    stored, however long InfluxDB is down, and raises `Stopped` once `stop` is set meanwhile.
    `plan` re-plans a subset of a rejected batch (BatchPlanner.plan_batch); `held` says how many
    messages wait behind it (for the log line). Updates `write_errors`, `rejected_batches` and
    `dropped_dead_letters` of `counters`.
    """

    def __init__(
        self,
        influx: InfluxClient,
        plan: PlanFn,
        counters: Counters,
        *,
        worker: str,
        max_backoff_s: float,
        stop: threading.Event,
        held: Callable[[], int] = lambda: 0,
    ) -> None:
        self.influx = influx
        self.worker = worker
        self.max_backoff_s = max_backoff_s
        self.counters = counters
        self._plan = plan
        self._stop = stop
        self._held = held

    def commit(self, prepared: Prepared) -> Plan:
        """Write one prepared batch; return its plan as stored (after isolating any poison)."""
        try:
            self.write_bodies(prepared.body, prepared.health_body)
        except WriteRejected as exc:
            self.counters.rejected_batches += 1
            log.error(
                "batch of %d messages rejected by InfluxDB (%s); isolating the poison",
                len(prepared.messages),
                exc,
            )
            return self.write_isolating(prepared.messages)
        return prepared.plan

    def write_bodies(self, body: bytes, health_body: bytes) -> None:
        """Health first, then the main body with the day markers (so the aggregator never sees a
        marker before the points it marks). A waste-only batch is one request."""
        if health_body:
            self.write_until_done(health_body, db=self.influx.health_db)
        self.write_until_done(body)

    def write_until_done(self, body: bytes, db: str | None = None) -> None:
        """Retry a retryable failure until it succeeds or the worker stops (no ack meanwhile)."""
        backoff = Backoff(FIRST_BACKOFF_S, self.max_backoff_s)
        while True:
            try:
                self.influx.write_lines(body, retries=0, db=db)
                return
            except WriteRejected:
                raise
            except RetryableInfluxError as exc:
                log.warning(
                    "InfluxDB unavailable, holding %d messages unacknowledged: %s",
                    self._held(),
                    exc,
                )
            except FatalInfluxError as exc:
                log.error("InfluxDB refused the write: %s", exc)
            self.counters.write_errors += 1
            if self._stop.wait(backoff.next_delay()):
                raise Stopped

    def write_isolating(self, messages: list[Message]) -> Plan:
        """Bisect a rejected batch down to messages, then to lines; quarantine the poison lines."""
        plan = self._plan(messages)
        try:
            self.write_bodies(*plan_bodies(plan, self.worker, time.time_ns()))
            return plan
        except WriteRejected as exc:
            if len(messages) > 1:
                half = len(messages) // 2
                left = self.write_isolating(messages[:half])
                right = self.write_isolating(messages[half:])
                merged = Plan(quarantine=left.quarantine + right.quarantine)
                merged.readings = left.readings + right.readings
                merged.measurements = left.measurements + right.measurements
                return merged
            rejected_health = self.bisect_lines(
                plan.health_lines, str(exc), db=self.influx.health_db
            )
            rejected = rejected_health + self.bisect_lines(plan.lines, str(exc))
        msg = messages[0]
        topic = topic_of(msg.topic)
        poison = [
            QuarantineRecord(
                topic.site, topic.kind, "write_rejected", reason[:500], msg.topic, text[:2048]
            )
            for text, reason in rejected
        ]
        plan.quarantine.extend(poison)
        plan.measurements -= min(plan.measurements, len(rejected_health))
        plan.readings -= min(plan.readings, len(poison) - len(rejected_health))
        now = time.time_ns()
        main, health = dead_letter_lines(plan.quarantine, self.worker, now)
        rest = main + day_marker_lines(plan.days, now)
        try:
            if health:
                self.write_until_done(join_lines(health), db=self.influx.health_db)
            self.write_until_done(join_lines(rest))
        except WriteRejected as exc:
            # even a dead letter refused: keep what InfluxDB takes, log the rest
            dropped = self.bisect_lines(
                health, str(exc), db=self.influx.health_db
            ) + self.bisect_lines(rest, str(exc))
            self.counters.dropped_dead_letters += len(dropped)
            log.error(
                "%s: InfluxDB refused %d dead letter(s) of %s: %s",
                self.worker,
                len(dropped),
                topic.site,
                mask_digits(dropped[0][1])[:300],
            )
        return plan

    def bisect_lines(
        self, lines: list[str], reason: str, db: str | None = None
    ) -> list[tuple[str, str]]:
        """Write what InfluxDB accepts of these lines (into `db`); return the rejected ones with
        InfluxDB's reason."""
        if not lines:
            return []
        if len(lines) == 1:
            try:  # the line alone may be fine (the batch failed on another database's body)
                self.write_until_done(join_lines(lines), db=db)
                return []
            except WriteRejected as exc:
                return [(lines[0], str(exc) or reason)]
        half = len(lines) // 2
        out: list[tuple[str, str]] = []
        for part in (lines[:half], lines[half:]):
            try:
                self.write_until_done(join_lines(part), db=db)
            except WriteRejected as exc:
                out.extend(self.bisect_lines(part, str(exc), db))
        return out
