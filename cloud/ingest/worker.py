"""The ingestion worker: shared MQTT v5 subscription in, InfluxDB out, PUBACK only after the write.

Threads: paho's network thread only enqueues; one writer thread decodes, writes and acks.
Memory is bounded by the MQTT v5 Receive Maximum: the broker never has more than that many
unacknowledged messages in flight to us, so when InfluxDB is down we simply stop acking.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from cloud import measurements as m
from cloud.influx import FatalInfluxError, InfluxClient, RetryableInfluxError, WriteRejected
from cloud.ingest.handler import BatchPlanner, Message, Plan, QuarantineRecord, day_marker_lines, quarantine_lines
from cloud.lineproto import line
from contract.topics import shared_subscription
from gumei.mqtt import MqttEndpoint, connect_persistent, make_client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerOptions:
    """Tuning of one worker."""

    name: str = "ingest-1"
    group: str = "ingest"
    batch_readings: int = 5000
    batch_ms: int = 200
    receive_maximum: int = 2000
    stats_interval_s: float = 5.0


@dataclass
class Counters:
    """Monotonic counters of one worker (read by stats and tests)."""

    received: int = 0
    written: int = 0
    quarantined: int = 0
    redelivered: int = 0
    batches: int = 0
    last_batch_ms: float = 0.0


class IngestWorker:
    """Lifecycle: start() connects and spawns the writer; stop() drains nothing and disconnects.

    Unacknowledged messages stay with the broker and come back to this (or another) worker.
    """

    def __init__(self, endpoint: MqttEndpoint, influx: InfluxClient, planner: BatchPlanner, options: WorkerOptions) -> None:
        self.endpoint = endpoint
        self.influx = influx
        self.planner = planner
        self.options = options
        self.counters = Counters()
        self.connected = threading.Event()
        self._inbox: queue.Queue[Message] = queue.Queue()
        self._stop = threading.Event()
        self._client = make_client(endpoint, options.name, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._writer = threading.Thread(target=self._write_loop, name=f"{options.name}-writer", daemon=True)

    # -- MQTT side (network thread) ------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object) -> None:
        if reason.is_failure:
            log.error("broker refused %s: %s", self.options.name, reason)
            return
        client.subscribe(shared_subscription(self.options.group), qos=1)
        self.connected.set()

    def _on_subscribe(self, _c: mqtt.Client, _u: object, _mid: int, reasons: list[mqtt.ReasonCode], _p: object) -> None:
        if any(r.is_failure for r in reasons):
            log.error("%s: subscription refused: %s", self.options.name, reasons)
        else:
            log.info("%s subscribed to %s", self.options.name, shared_subscription(self.options.group))

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("%s disconnected (%s); reconnecting", self.options.name, reason)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self._inbox.put(Message(msg.topic, msg.payload, msg.mid, bool(msg.dup), time.time_ns()))

    # -- writer thread --------------------------------------------------------------

    def _next_batch(self) -> list[Message]:
        try:
            first = self._inbox.get(timeout=0.5)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.options.batch_ms / 1000
        size = 0
        while size < self.options.batch_readings:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                msg = self._inbox.get(timeout=remaining)
            except queue.Empty:
                break
            batch.append(msg)
            size += max(1, len(msg.payload) // 150)  # cheap estimate of entries per payload
        return batch

    def _write_loop(self) -> None:
        last_stats = time.monotonic()
        while not self._stop.is_set():
            batch = self._next_batch()
            if batch:
                self._handle(batch)
            if time.monotonic() - last_stats >= self.options.stats_interval_s:
                last_stats = time.monotonic()
                self._write_stats()

    def _handle(self, batch: list[Message]) -> None:
        started = time.perf_counter()
        plan = self.planner.plan_batch(batch)
        body = self._body(plan)
        try:
            self._write_until_done(body)
        except WriteRejected as exc:
            log.error("batch rejected by InfluxDB (%s); writing message by message", exc)
            self._write_one_by_one(batch)
        except _Stopped:
            return
        for msg in batch:
            self._client.ack(msg.mid, 1)
        c = self.counters
        c.received += len(batch)
        c.redelivered += sum(1 for msg in batch if msg.dup)
        c.written += plan.readings + plan.measurements
        c.quarantined += sum(r.entries for r in plan.quarantine)
        c.batches += 1
        c.last_batch_ms = (time.perf_counter() - started) * 1000

    def _body(self, plan: Plan) -> bytes:
        now = time.time_ns()
        lines = plan.lines + quarantine_lines(plan.quarantine, self.options.name, now) + day_marker_lines(plan.days, now)
        return ("\n".join(lines) + "\n").encode() if lines else b""

    def _write_until_done(self, body: bytes) -> None:
        """Retry a retryable failure until it succeeds or the worker stops (no ack meanwhile)."""
        delay = 0.5
        while True:
            try:
                self.influx.write_lines(body, retries=0)
                return
            except RetryableInfluxError as exc:
                log.warning("InfluxDB unavailable, holding %d messages unacknowledged: %s", self._inbox.qsize(), exc)
            except FatalInfluxError as exc:
                if isinstance(exc, WriteRejected):
                    raise
                log.error("InfluxDB refused the write: %s", exc)
            if self._stop.wait(delay * (0.5 + random.random())):
                raise _Stopped
            delay = min(delay * 2, 15.0)

    def _write_one_by_one(self, batch: list[Message]) -> None:
        """Isolate the poison message(s) of a rejected batch and quarantine them whole."""
        for msg in batch:
            plan = self.planner.plan_batch([msg])
            try:
                self._write_until_done(self._body(plan))
            except WriteRejected as exc:
                record = QuarantineRecord("unknown", "unknown", "write_rejected", str(exc)[:500], msg.topic, msg.payload[:2048].decode("utf-8", "replace"))
                self._write_until_done(self._body(Plan(quarantine=[record])))

    def _write_stats(self) -> None:
        c = self.counters
        stats = line(
            m.INGEST_STATS.name,
            {"worker": self.options.name},
            {
                "received": c.received,
                "written": c.written,
                "quarantined": c.quarantined,
                "redelivered": c.redelivered,
                "queue_depth": self._inbox.qsize(),
                "batch_latency_ms": float(c.last_batch_ms),
            },
            time.time_ns(),
        )
        try:
            self.influx.write_lines((stats + "\n").encode(), retries=0)
        except (RetryableInfluxError, FatalInfluxError) as exc:
            log.warning("could not write ingest stats: %s", exc)

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        self._writer.start()
        connect_persistent(self._client, self.endpoint, receive_maximum=self.options.receive_maximum)
        self._client.loop_start()

    def stop(self) -> None:
        self._stop.set()
        self._writer.join(timeout=30)
        self._client.disconnect()
        self._client.loop_stop()


class _Stopped(Exception):
    """The worker is stopping while a write still fails; leave the batch unacknowledged."""
