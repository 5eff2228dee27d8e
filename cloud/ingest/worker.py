"""The ingestion worker: shared MQTT v5 subscription in, InfluxDB out, PUBACK only after the write.

A composition of small pieces, each with one concern (docs/architecture.md, "Where a reading goes"):

    MqttSession (session.py)   paho's network thread: receive, hand to the batcher; PUBACK by hand
    Batcher (batcher.py)       batches cut by readings or time; QoS 0 bounded
    BatchEncoder (encode.py)   plan (handler.BatchPlanner), fold dead-letter floods, encode bodies
    Committer (committer.py)   write with retry/back-off, bisect a rejected batch to its bad lines
    Counters, StatsReporter (stats.py), Every, prune_quarantine (housekeeping.py), guarded (guard.py)

Threads: paho's network thread only enqueues; the planner thread batches, plans and encodes (and
writes the stats point and prunes the quarantine when due); the committer thread writes each batch
and then acknowledges its messages in arrival order, so receiving never waits on HTTP and planning
the next batch overlaps writing this one. Memory is bounded by the MQTT v5 Receive Maximum: the
broker never has more than that many unacknowledged messages in flight to us, so when InfluxDB is
slow or down we simply stop acking and the backlog waits in the broker (sized by
`max_queued_messages`).

Packet ids are only meaningful on the connection that delivered them: a message received before
a reconnect is written but never acknowledged after it (the rewrite is idempotent).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from cloud.influx import InfluxClient
from cloud.ingest.batcher import Batcher
from cloud.ingest.committer import Committer, Stopped
from cloud.ingest.encode import BatchEncoder, Prepared
from cloud.ingest.guard import EXIT_THREAD_DIED, exit_process, guarded
from cloud.ingest.handler import BatchPlanner
from cloud.ingest.housekeeping import Every, prune_quarantine
from cloud.ingest.options import WorkerOptions
from cloud.ingest.session import MqttSession
from cloud.ingest.stats import Counters, IgnoredFields, StatsReporter
from runtime.mqtt import MqttEndpoint

__all__ = ["EXIT_THREAD_DIED", "Counters", "IngestWorker", "WorkerOptions"]

log = logging.getLogger(__name__)

HANDOVER_POLL_S = 0.5  # how often a waiting thread looks at the stop flag


class IngestWorker:
    """Lifecycle: start() connects and spawns the planner and committer threads; stop() leaves
    unacked work to the broker.

    Unacknowledged messages stay with the broker and come back to this worker when it reconnects
    with the same client id (Mosquitto keeps a shared subscriber's in-flight messages in its
    persistent session rather than handing them to another member: eclipse-mosquitto#2662), so a
    supervisor must restart a dead worker under the same name. If a thread ever raises, `on_fatal`
    is called (default: end the process with exit code 70).
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
        self._stop = threading.Event()
        self._on_fatal = on_fatal or exit_process
        self._batcher = Batcher.for_worker(options)
        self._encoder = BatchEncoder(planner, options.name)
        self._committer = Committer(
            influx,
            planner.plan_batch,
            self.counters,
            worker=options.name,
            max_backoff_s=options.max_backoff_s,
            stop=self._stop,
            held=self._batcher.depth,
        )
        self._stats = StatsReporter(self.counters, options.name, self._batcher.depth)
        self._ignored = IgnoredFields(self.counters, options.name)
        self._session = MqttSession(
            endpoint, options, self._batcher.put, self._dropped_qos0, self._on_fatal, self._stop
        )
        # Two threads so planning the next batch overlaps writing this one; at most one batch waits.
        self._handover: queue.Queue[Prepared] = queue.Queue(maxsize=1)
        self._planner_thread = threading.Thread(
            target=guarded(self._plan_loop, options.name, self._on_fatal),
            name=f"{options.name}-planner",
            daemon=True,
        )
        self._committer_thread = threading.Thread(
            target=guarded(self._commit_loop, options.name, self._on_fatal),
            name=f"{options.name}-committer",
            daemon=True,
        )

    @property
    def connected(self) -> threading.Event:
        """Set while the session is connected."""
        return self._session.connected

    def _dropped_qos0(self) -> None:
        """Network thread: the batcher dropped a QoS 0 message (its bound was full)."""
        self.counters.dropped_qos0 += 1

    def _plan_loop(self) -> None:
        """Planner thread: batch, plan and encode; hand over to the committer (one in hand at most)."""
        stats_due = Every(self.options.stats_interval_s)
        prune_due = Every(self.options.prune_interval_s)
        self._stats.begin()
        while not self._stop.is_set():
            batch = self._batcher.next_batch()
            if batch:
                prepared = self._encoder.prepare(batch)
                while not self._stop.is_set():
                    try:
                        self._handover.put(prepared, timeout=HANDOVER_POLL_S)
                        break
                    except queue.Full:
                        continue
            now = time.monotonic()
            if stats_due.due(now):
                self._stats.write(self.influx)
            if prune_due.due(now):
                prune_quarantine(self.influx, self.options.quarantine_keep_days)

    def _commit_loop(self) -> None:
        """Committer thread: write each prepared batch, then acknowledge it, in arrival order."""
        while not self._stop.is_set():
            try:
                prepared = self._handover.get(timeout=HANDOVER_POLL_S)
            except queue.Empty:
                continue
            try:
                plan = self._committer.commit(prepared)
            except Stopped:
                return
            self.counters.stale += self._session.acknowledge(prepared.messages)
            if plan.ignored:
                self._ignored.note(plan.ignored)
            self.counters.count_batch(
                prepared.messages, plan, (time.perf_counter() - prepared.started) * 1000
            )

    def start(self) -> None:
        self._planner_thread.start()
        self._committer_thread.start()
        self._session.start()

    def stop(self) -> None:
        self._stop.set()
        self._planner_thread.join(timeout=30)
        self._committer_thread.join(timeout=30)
        self._session.stop()
