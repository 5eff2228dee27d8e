"""The ingestion worker: shared MQTT v5 subscription in, InfluxDB out, PUBACK only after the write.

Threads: paho's network thread only enqueues; a planner thread batches, decodes and encodes; a
committer thread writes each batch and then acknowledges its messages in arrival order, so
receiving never waits on HTTP and decoding the next batch overlaps writing this one. Memory is bounded by the MQTT v5 Receive Maximum: the broker never
has more than that many unacknowledged messages in flight to us, so when InfluxDB is slow or down
we simply stop acking and the backlog waits in the broker (sized by `max_queued_messages`).

Packet ids are only meaningful on the connection that delivered them: a message received before
a reconnect is written but never acknowledged after it (the rewrite is idempotent).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from cloud import measurements as m
from cloud.influx import (
    FatalInfluxError,
    InfluxClient,
    InfluxError,
    RetryableInfluxError,
    WriteRejected,
)
from cloud.ingest.handler import (
    BatchPlanner,
    Message,
    Plan,
    QuarantineRecord,
    day_marker_lines,
    quarantine_lines,
    topic_of,
)
from cloud.ingest.options import WorkerOptions
from cloud.ingest.ready import Ready, remove_ready, write_ready
from cloud.lineproto import join_lines, line
from cloud.quarantine import DeadLetterBudget, QuarantineStore, split_health
from cloud.redact import mask_digits
from contract.topics import shared_subscription
from runtime.backoff import Backoff
from runtime.mqtt import MqttEndpoint, connect_persistent, make_client

log = logging.getLogger(__name__)

ENTRY_BYTES_ESTIMATE = 150  # a JSON waste reading is 110-190 bytes: payload size / this ~ entries
EXIT_THREAD_DIED = 70  # EX_SOFTWARE: a worker thread died; systemd restarts the process
IGNORED_LOG_INTERVAL_S = 60.0


@dataclass
class Counters:
    """Monotonic counters of one worker (read by stats and tests)."""

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


@dataclass(frozen=True)
class _Prepared:
    """A decoded batch with its InfluxDB bodies, waiting for the committer."""

    messages: list[Message]
    plan: Plan
    body: bytes
    health_body: bytes  # per-resident lines and health dead letters: empty for a waste-only batch
    started: float


class _Stopped(Exception):
    """The worker is stopping while a write still fails; leave the batch unacknowledged."""


class IngestWorker:
    """Lifecycle: start() connects and spawns the writer; stop() leaves unacked work to the broker.

    Unacknowledged messages stay with the broker and come back to this worker when it reconnects
    with the same client id (Mosquitto keeps a shared subscriber's in-flight messages in its
    persistent session rather than handing them to another member: eclipse-mosquitto#2662), so a
    supervisor must restart a dead worker under the same name.
    """

    def __init__(
        self,
        endpoint: MqttEndpoint,
        influx: InfluxClient,
        planner: BatchPlanner,
        options: WorkerOptions,
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.influx = influx
        self.planner = planner
        self.options = options
        self.counters = Counters()
        self.connected = threading.Event()
        self._inbox: queue.Queue[Message] = queue.Queue()
        self._qos0_slots = threading.BoundedSemaphore(options.qos0_inbox)
        self._budget = DeadLetterBudget()  # the planner thread's
        self._on_fatal = on_fatal or _exit_process
        self._ignored_seen: Counter[str] = Counter()
        self._ignored_logged = 0.0
        self._stop = threading.Event()
        self._connection = 0
        self._subscriptions = 0  # granted SUBACKs (network thread only)
        # Reconnect within 2 s of the broker coming back: Mosquitto 2.0 forgets shared subscriptions
        # on restart, and until a worker subscribes again its messages have nowhere to go.
        self._client = make_client(endpoint, options.name, manual_ack=True, reconnect_max_s=2)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        # Two threads so decoding the next batch overlaps writing this one; at most one batch waits.
        self._ready: queue.Queue[_Prepared] = queue.Queue(maxsize=1)
        self._writer = threading.Thread(
            target=self._guarded(self._write_loop), name=f"{options.name}-planner", daemon=True
        )
        self._committer = threading.Thread(
            target=self._guarded(self._commit_loop), name=f"{options.name}-committer", daemon=True
        )

    def _guarded(self, loop: Callable[[], None]) -> Callable[[], None]:
        """A thread body that, should it ever raise, ends the process (a live worker that acks
        nothing would stall every site) instead of dying quietly."""

        def run() -> None:
            try:
                loop()
            except BaseException as exc:
                log.critical(
                    "%s: thread %s died: %s: %s",
                    self.options.name,
                    threading.current_thread().name,
                    type(exc).__name__,
                    exc,
                    exc_info=exc,
                )
                self._on_fatal(f"{threading.current_thread().name} died: {type(exc).__name__}")

        return run

    # -- MQTT side (network thread) ------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        _u: object,
        flags: mqtt.ConnectFlags,
        reason: mqtt.ReasonCode,
        _p: object,
    ) -> None:
        if reason.is_failure:
            log.error("broker refused %s: %s", self.options.name, reason)
            return
        self._connection += 1
        log.info("%s connected (session present: %s)", self.options.name, flags.session_present)
        client.subscribe(shared_subscription(self.options.group), qos=1)
        self.connected.set()

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, _mid: int, reasons: list[mqtt.ReasonCode], _p: object
    ) -> None:
        if any(r.is_failure for r in reasons):
            log.error("%s: subscription refused: %s", self.options.name, reasons)
        else:
            log.info(
                "%s subscribed to %s", self.options.name, shared_subscription(self.options.group)
            )
            self._subscriptions += 1
            if self.options.ready_file is not None:
                write_ready(self.options.ready_file, Ready(os.getpid(), self._subscriptions))

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object
    ) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("%s disconnected (%s); reconnecting", self.options.name, reason)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        try:
            if msg.qos == 0 and not self._qos0_slots.acquire(blocking=False):
                self.counters.dropped_qos0 += (
                    1  # at most once: QoS 0 may be dropped, never stall us
                )
                return
            self._inbox.put(
                Message(
                    msg.topic,
                    bytes(msg.payload),
                    msg.mid,
                    bool(msg.dup),
                    time.time_ns(),
                    self._connection,
                    msg.qos,
                )
            )
        except BaseException as exc:
            log.critical(
                "%s: network thread failed: %s", self.options.name, type(exc).__name__, exc_info=exc
            )
            self._on_fatal(f"network thread failed: {type(exc).__name__}")

    # -- writer thread --------------------------------------------------------------

    def _next_batch(self) -> list[Message]:
        try:
            first = self._inbox.get(timeout=0.5)
        except queue.Empty:
            return []
        batch = [first]
        size = max(1, len(first.payload) // ENTRY_BYTES_ESTIMATE)
        deadline = time.monotonic() + self.options.batch_ms / 1000
        get = self._inbox.get
        while size < self.options.batch_readings:
            try:
                msg = get(block=False)
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    msg = get(timeout=remaining)
                except queue.Empty:
                    break
            batch.append(msg)
            size += max(1, len(msg.payload) // ENTRY_BYTES_ESTIMATE)
        for msg in batch:
            if msg.qos == 0:
                self._qos0_slots.release()
        return batch

    def _write_loop(self) -> None:
        """Planner thread: batch, decode and encode; hand over to the committer (one in hand at most)."""
        last_stats = last_prune = time.monotonic()
        self._stats_base = (time.monotonic(), 0, 0)
        while not self._stop.is_set():
            batch = self._next_batch()
            if batch:
                prepared = self._prepare(batch)
                while not self._stop.is_set():
                    try:
                        self._ready.put(prepared, timeout=0.5)
                        break
                    except queue.Full:
                        continue
            now = time.monotonic()
            if now - last_stats >= self.options.stats_interval_s:
                last_stats = now
                self._write_stats()
            if now - last_prune >= self.options.prune_interval_s:
                last_prune = now
                self._prune()

    def _commit_loop(self) -> None:
        """Committer thread: write each prepared batch, then acknowledge it, in arrival order."""
        while not self._stop.is_set():
            try:
                prepared = self._ready.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._commit(prepared)
            except _Stopped:
                return

    def _prepare(self, batch: list[Message]) -> _Prepared:
        # Messages from an earlier connection are written too (idempotent, and after a broker
        # restart the broker may not redeliver them) but never acknowledged on this connection.
        started = time.perf_counter()
        plan = self.planner.plan_batch(batch)
        if plan.quarantine:  # a flood of junk from one site stays a trickle of points
            plan.quarantine = self._budget.admit(plan.quarantine, time.monotonic())
        return _Prepared(batch, plan, *self._bodies(plan), started)

    def _commit(self, prepared: _Prepared) -> None:
        current, plan = prepared.messages, prepared.plan
        try:
            self._write_bodies(prepared.body, prepared.health_body)
        except WriteRejected as exc:
            self.counters.rejected_batches += 1
            log.error(
                "batch of %d messages rejected by InfluxDB (%s); isolating the poison",
                len(current),
                exc,
            )
            plan = self._write_isolating(current)
        for msg in current:
            if msg.qos == 0:
                continue  # nothing to acknowledge
            if msg.connection == self._connection:
                self._client.ack(msg.mid, msg.qos)
            else:
                self.counters.stale += (
                    1  # written, not acked: a PUBACK id means nothing on a new connection
                )
        c = self.counters
        c.received += len(current)
        c.redelivered += sum(1 for msg in current if msg.dup)
        c.written += plan.readings + plan.measurements
        quarantined = sum(r.entries for r in plan.quarantine)
        c.quarantined += quarantined
        c.entries += plan.readings + plan.measurements + quarantined
        c.internal_errors += plan.internal_errors
        if plan.ignored:
            self._note_ignored(plan.ignored)
        c.batches += 1
        c.last_batch_ms = (time.perf_counter() - prepared.started) * 1000
        c.max_batch_ms = max(c.max_batch_ms, c.last_batch_ms)

    def _note_ignored(self, ignored: Counter[str]) -> None:
        """Count fields v1 does not define; name them in a debug line at most once a minute."""
        self.counters.ignored_fields += sum(ignored.values())
        self._ignored_seen.update(ignored)
        now = time.monotonic()
        if now - self._ignored_logged >= IGNORED_LOG_INTERVAL_S:
            self._ignored_logged = now
            names = ", ".join(
                f"{mask_digits(name)[:40]} x{n}" for name, n in self._ignored_seen.most_common(10)
            )
            log.debug("%s: ignored fields v1 does not define: %s", self.options.name, names)
            self._ignored_seen.clear()

    def _bodies(self, plan: Plan) -> tuple[bytes, bytes]:
        """(main database body, health database body); day markers go last into the main one."""
        now = time.time_ns()
        main, health = self._dead_letters(plan.quarantine, now)
        return (
            join_lines(plan.lines + main + day_marker_lines(plan.days, now)),
            join_lines(plan.health_lines + health),
        )

    def _dead_letters(
        self, records: list[QuarantineRecord], now: int
    ) -> tuple[list[str], list[str]]:
        """Dead-letter lines for the main and the health database (cloud.quarantine.split_health)."""
        if not any(r.kind == "health" for r in records):
            return quarantine_lines(records, self.options.name, now), []
        main, health = split_health(records)
        return quarantine_lines(main, self.options.name, now), quarantine_lines(
            health, self.options.name, now
        )

    def _write_bodies(self, body: bytes, health_body: bytes) -> None:
        """Health first, then the main body with the day markers (so the aggregator never sees a
        marker before the points it marks). A waste-only batch is one request, as before."""
        if health_body:
            self._write_until_done(health_body, db=self.influx.health_db)
        self._write_until_done(body)

    def _write_until_done(self, body: bytes, db: str | None = None) -> None:
        """Retry a retryable failure until it succeeds or the worker stops (no ack meanwhile)."""
        backoff = Backoff(0.25, self.options.max_backoff_s)
        while True:
            try:
                self.influx.write_lines(body, retries=0, db=db)
                return
            except WriteRejected:
                raise
            except RetryableInfluxError as exc:
                log.warning(
                    "InfluxDB unavailable, holding %d messages unacknowledged: %s",
                    self._inbox.qsize(),
                    exc,
                )
            except FatalInfluxError as exc:
                log.error("InfluxDB refused the write: %s", exc)
            self.counters.write_errors += 1
            if self._stop.wait(backoff.next_delay()):
                raise _Stopped

    def _write_isolating(self, messages: list[Message]) -> Plan:
        """Bisect a rejected batch down to messages, then to lines; quarantine the poison lines.

        influxd 1.x writes the valid lines of a rejected body (a "partial write"), so rewriting
        them here is harmless: point identity is (device, seq).
        """
        plan = self.planner.plan_batch(messages)
        try:
            self._write_bodies(*self._bodies(plan))
            return plan
        except WriteRejected as exc:
            if len(messages) > 1:
                half = len(messages) // 2
                left, right = (
                    self._write_isolating(messages[:half]),
                    self._write_isolating(messages[half:]),
                )
                merged = Plan(quarantine=left.quarantine + right.quarantine)
                merged.readings, merged.measurements = (
                    left.readings + right.readings,
                    left.measurements + right.measurements,
                )
                return merged
            rejected_health = self._bisect_lines(
                plan.health_lines, str(exc), db=self.influx.health_db
            )
            rejected = rejected_health + self._bisect_lines(plan.lines, str(exc))
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
        main, health = self._dead_letters(plan.quarantine, now)
        rest = main + day_marker_lines(plan.days, now)
        try:
            if health:
                self._write_until_done(join_lines(health), db=self.influx.health_db)
            self._write_until_done(join_lines(rest))
        except (
            WriteRejected
        ) as exc:  # even a dead letter refused: keep what InfluxDB takes, log the rest
            dropped = self._bisect_lines(
                health, str(exc), db=self.influx.health_db
            ) + self._bisect_lines(rest, str(exc))
            self.counters.dropped_dead_letters += len(dropped)
            log.error(
                "%s: InfluxDB refused %d dead letter(s) of %s: %s",
                self.options.name,
                len(dropped),
                topic.site,
                mask_digits(dropped[0][1])[:300],
            )
        return plan

    def _bisect_lines(
        self, lines: list[str], reason: str, db: str | None = None
    ) -> list[tuple[str, str]]:
        """Write what InfluxDB accepts of these lines (into `db`); return the rejected ones with the reason."""
        if not lines:
            return []
        if len(lines) == 1:
            try:  # the line alone may be fine (the batch failed on another database's body)
                self._write_until_done(join_lines(lines), db=db)
                return []
            except WriteRejected as exc:
                return [(lines[0], str(exc) or reason)]
        half = len(lines) // 2
        out: list[tuple[str, str]] = []
        for part in (lines[:half], lines[half:]):
            try:
                self._write_until_done(join_lines(part), db=db)
            except WriteRejected as exc:
                out.extend(self._bisect_lines(part, str(exc), db))
        return out

    def _write_stats(self) -> None:
        c = self.counters
        now = time.monotonic()
        t0, entries0, written0 = self._stats_base
        elapsed = max(now - t0, 1e-6)
        self._stats_base = (now, c.entries, c.written)
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
            "queue_depth": self._inbox.qsize(),
            "batch_latency_ms": float(c.last_batch_ms),
            "max_batch_latency_ms": float(c.max_batch_ms),
            "entries_per_s": (c.entries - entries0) / elapsed,
            "written_per_s": (c.written - written0) / elapsed,
        }
        c.max_batch_ms = 0.0
        stats = line(m.INGEST_STATS.name, {"worker": self.options.name}, fields, time.time_ns())
        try:
            self.influx.write_lines((stats + "\n").encode(), retries=0)
        except InfluxError as exc:
            log.warning("could not write ingest stats: %s", exc)

    def _prune(self) -> None:
        try:
            keep = dt.timedelta(days=self.options.quarantine_keep_days)
            QuarantineStore(self.influx).prune(keep)
            QuarantineStore(self.influx, self.influx.health_db).prune(keep)
        except InfluxError as exc:
            log.warning("could not prune the quarantine: %s", exc)

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        self._writer.start()
        self._committer.start()
        connect_persistent(
            self._client, self.endpoint, receive_maximum=self.options.receive_maximum
        )
        self._client.loop_start()

    def stop(self) -> None:
        self._stop.set()
        self._writer.join(timeout=30)
        self._committer.join(timeout=30)
        self._client.disconnect()
        self._client.loop_stop()
        if self.options.ready_file is not None:
            remove_ready(self.options.ready_file)


def _exit_process(why: str) -> None:
    """End the whole process at once with a non-zero status (unacknowledged work stays with the
    broker and comes back to the restarted worker)."""
    logging.shutdown()
    os._exit(EXIT_THREAD_DIED)
