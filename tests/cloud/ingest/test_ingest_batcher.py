"""The batcher alone: batches cut by estimated readings or by time, arrival order, QoS 0 bounded."""

from __future__ import annotations

import threading
import time

from cloud.ingest.batcher import ENTRY_BYTES_ESTIMATE, Batcher, entries_estimate
from cloud.ingest.handler import Message
from cloud.ingest.options import WorkerOptions


def msg(i: int, readings: int = 1, qos: int = 1) -> Message:
    """A message whose payload size makes the batcher count `readings` readings."""
    return Message(
        "gumei/v1/waste/WS-0101/readings", b"x" * (readings * ENTRY_BYTES_ESTIMATE), i, qos=qos
    )


def test_the_estimate_counts_payload_bytes_and_at_least_one() -> None:
    assert entries_estimate(b"") == 1
    assert entries_estimate(b"x" * (ENTRY_BYTES_ESTIMATE - 1)) == 1
    assert entries_estimate(b"x" * (100 * ENTRY_BYTES_ESTIMATE)) == 100


def test_a_batch_is_cut_at_batch_readings_and_keeps_arrival_order() -> None:
    batcher = Batcher(batch_readings=5, batch_ms=60_000, qos0_limit=10)
    for i in range(12):
        assert batcher.put(msg(i))
    assert [m.mid for m in batcher.next_batch()] == [0, 1, 2, 3, 4]
    assert [m.mid for m in batcher.next_batch()] == [5, 6, 7, 8, 9]
    assert batcher.depth() == 2


def test_the_size_counts_readings_not_messages() -> None:
    """Three 10-reading messages reach 25 readings: the third closes the batch (it is not split)."""
    batcher = Batcher(batch_readings=25, batch_ms=60_000, qos0_limit=10)
    for i in range(4):
        batcher.put(msg(i, readings=10))
    assert [m.mid for m in batcher.next_batch()] == [0, 1, 2]
    assert batcher.depth() == 1


def test_a_batch_is_cut_batch_ms_after_its_first_message() -> None:
    """What arrives within batch_ms joins the batch; what comes later waits for the next one."""
    batcher = Batcher(batch_readings=1000, batch_ms=1000, qos0_limit=10)
    batcher.put(msg(0))
    soon = threading.Timer(0.05, batcher.put, (msg(1),))
    late = threading.Timer(3.0, batcher.put, (msg(2),))  # margins for a loaded 2-core machine
    soon.start()
    late.start()
    try:
        t0 = time.monotonic()
        first = batcher.next_batch()
        elapsed = time.monotonic() - t0
        assert [m.mid for m in first] == [0, 1]
        assert 0.95 <= elapsed < 2.9
        assert [m.mid for m in batcher.next_batch()] in ([], [2])  # [] if polled before it came
    finally:
        soon.cancel()
        late.cancel()


def test_the_deadline_is_on_the_injected_clock() -> None:
    """A clock already past the deadline ends the batch at once, however long batch_ms is."""
    ticks = iter([0.0, 100.0, 100.0])
    batcher = Batcher(
        batch_readings=1000, batch_ms=60_000, qos0_limit=10, clock=lambda: next(ticks)
    )
    batcher.put(msg(0))
    batcher.put(msg(1))
    t0 = time.monotonic()
    assert [m.mid for m in batcher.next_batch()] == [0, 1]
    assert time.monotonic() - t0 < 5


def test_nothing_arrives_within_poll_s_an_empty_batch() -> None:
    batcher = Batcher(batch_readings=10, batch_ms=10, qos0_limit=10, poll_s=0.05)
    assert batcher.next_batch() == []


def test_qos0_is_bounded_and_its_slots_come_back_when_batched() -> None:
    batcher = Batcher(batch_readings=100, batch_ms=0, qos0_limit=2)
    assert batcher.put(msg(0, qos=0)) and batcher.put(msg(1, qos=0))
    assert not batcher.put(msg(2, qos=0))  # dropped: at most once, never a stall
    assert all(batcher.put(msg(i, qos=1)) for i in range(3, 10))  # QoS 1 is never dropped here
    assert [m.mid for m in batcher.next_batch()] == [0, 1, 3, 4, 5, 6, 7, 8, 9]
    assert batcher.put(msg(10, qos=0)) and batcher.put(msg(11, qos=0))


def test_a_worker_s_batcher_takes_its_options() -> None:
    batcher = Batcher.for_worker(WorkerOptions(batch_readings=7, batch_ms=250, qos0_inbox=3))
    assert (batcher.batch_readings, batcher.batch_s) == (7, 0.25)
    assert sum(batcher.put(msg(i, qos=0)) for i in range(5)) == 3
