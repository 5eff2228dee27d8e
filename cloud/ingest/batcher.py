"""Received messages collected into batches: cut at `batch_readings` readings or `batch_ms` after the first.

The batch size counts readings, estimated from payload size (a JSON waste reading is 110-190
bytes), so one 100-reading message weighs as much as a hundred 1-reading ones. QoS 0 messages are
bounded here: QoS 1 is bounded by the MQTT v5 Receive Maximum, QoS 0 has no flow control.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from cloud.ingest.handler import Message
from cloud.ingest.options import WorkerOptions

ENTRY_BYTES_ESTIMATE = 150  # a JSON waste reading is 110-190 bytes: payload size / this ~ entries
POLL_S = 0.5  # how long next_batch waits for a first message before returning an empty batch


def entries_estimate(payload: bytes) -> int:
    """How many readings a payload of this size holds, about (at least 1)."""
    return max(1, len(payload) // ENTRY_BYTES_ESTIMATE)


class Batcher:
    """A queue of received messages, taken out in batches.

    Threading: `put` is called by the MQTT network thread and never blocks; `next_batch` by one
    consumer (the planner thread); `depth` from any thread. `clock` is the monotonic clock the
    `batch_ms` deadline is measured on.
    """

    def __init__(
        self,
        batch_readings: int,
        batch_ms: int,
        qos0_limit: int,
        *,
        poll_s: float = POLL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.batch_readings = batch_readings
        self.batch_s = batch_ms / 1000
        self.poll_s = poll_s
        self._clock = clock
        self._queue: queue.Queue[Message] = queue.Queue()
        self._qos0_slots = threading.BoundedSemaphore(qos0_limit)

    @classmethod
    def for_worker(cls, options: WorkerOptions) -> Batcher:
        """The batcher a worker with these options uses."""
        return cls(options.batch_readings, options.batch_ms, options.qos0_inbox)

    def put(self, msg: Message) -> bool:
        """Queue a message; False if it is QoS 0 and the QoS 0 limit already waits (dropped: at
        most once may drop, never stall the network thread)."""
        if msg.qos == 0 and not self._qos0_slots.acquire(blocking=False):
            return False
        self._queue.put(msg)
        return True

    def depth(self) -> int:
        """Messages waiting (approximate, as `queue.Queue.qsize`)."""
        return self._queue.qsize()

    def next_batch(self) -> list[Message]:
        """The next batch in arrival order; [] when nothing arrived within `poll_s`.

        Waits for a first message, then takes what is queued until the batch holds
        `batch_readings` readings or `batch_ms` have passed since the first was taken.
        """
        try:
            first = self._queue.get(timeout=self.poll_s)
        except queue.Empty:
            return []
        batch = [first]
        size = entries_estimate(first.payload)
        clock = self._clock
        deadline = clock() + self.batch_s
        get = self._queue.get
        while size < self.batch_readings:
            try:
                msg = get(block=False)
            except queue.Empty:
                remaining = deadline - clock()
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
