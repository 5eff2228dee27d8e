"""The durable local queue: seq per device across restarts, ack after PUBACK, bound, kill -9."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from contract import HealthMeasurement, WasteReading
from edge.errors import QueueError
from edge.queue import DurableQueue

DEV = "WS-0101-S1"


def waste(device: str = DEV, net: float = 1.25, ts: int = 1_764_201_600_000):
    return lambda seq: WasteReading(
        device=device, seq=seq, ts=ts, category="wet", net_kg=net, gross_kg=20.0
    )


def open_q(path: Path, **kw: int) -> DurableQueue:
    return DurableQueue.open(path / "q.db", clock=lambda: 0, **kw)


def test_wal_mode_and_full_sync(tmp_path: Path) -> None:
    with open_q(tmp_path):
        pass
    conn = sqlite3.connect(tmp_path / "q.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_seq_per_device_strictly_increasing_and_kept_across_restarts(tmp_path: Path) -> None:
    with open_q(tmp_path) as q:
        a = [q.put(DEV, waste()).seq for _ in range(3)]
        b = q.put("WS-0101-S2", waste("WS-0101-S2")).seq
        q.ack([x.id for x in q.peek()])  # everything delivered: the table is empty
        assert len(q) == 0
    with open_q(tmp_path) as q:
        assert q.last_seq(DEV) == 3 and q.last_seq("WS-0101-S9") is None
        assert q.put(DEV, waste()).seq == 4
    assert a == [1, 2, 3] and b == 1


def test_new_device_seq_starts_from_the_clock_so_a_lost_file_cannot_repeat_seqs(
    tmp_path: Path,
) -> None:
    with DurableQueue.open(tmp_path / "a.db", clock=lambda: 1_764_201_600_000) as q:
        assert q.put(DEV, waste()).seq == 1_764_201_600_000_000
    with DurableQueue.open(
        tmp_path / "b.db", clock=lambda: 1_764_201_700_000
    ) as q:  # file lost, later
        assert q.put(DEV, waste()).seq > 1_764_201_600_000_000


def test_peek_is_oldest_first_pages_past_inflight_and_ack_deletes_only_given(
    tmp_path: Path,
) -> None:
    with open_q(tmp_path) as q:
        for i in range(10):
            q.put(DEV, waste(net=1 + i))
        first = q.peek(4)
        assert [x.entry.seq for x in first] == [1, 2, 3, 4]
        inflight_more = q.peek(4, after_id=first[-1].id)
        assert [x.entry.seq for x in inflight_more] == [5, 6, 7, 8]
        assert q.ack([first[1].id, first[3].id, 999]) == 2
        assert q.ack([first[1].id]) == 0  # a duplicate PUBACK is harmless
        assert [x.entry.seq for x in q.peek(100)] == [1, 3, 5, 6, 7, 8, 9, 10]
    with open_q(tmp_path) as q:  # unacknowledged entries survive a restart
        assert [x.entry.seq for x in q.peek(100)] == [1, 3, 5, 6, 7, 8, 9, 10]
        s = q.stats()
        assert (s.buffered, s.accepted, s.acked, s.dropped) == (8, 10, 2, 0)


def test_waste_and_health_round_trip_typed(tmp_path: Path) -> None:
    with open_q(tmp_path) as q:
        w = q.put(DEV, waste())
        h = q.put(
            "HH-01-BP",
            lambda seq: HealthMeasurement(
                device="HH-01-BP",
                seq=seq,
                ts=5,
                type="blood_pressure",
                values={"systolic_mmhg": 132, "diastolic_mmhg": 85},
            ),
        )
        got = q.peek()
        assert [x.entry for x in got] == [w, h] and [x.kind for x in got] == ["waste", "health"]
        assert [x.entry for x in q.peek(kind="health")] == [h]


def test_bound_drops_oldest_first_and_counts(tmp_path: Path) -> None:
    with open_q(tmp_path, max_items=5) as q:
        for i in range(8):
            q.put(DEV, waste(net=1 + i))
        assert [x.entry.seq for x in q.peek()] == [4, 5, 6, 7, 8]
        assert q.stats().dropped == 3
    with open_q(tmp_path, max_items=5, max_bytes=1024) as q:
        assert q.stats().dropped == 3  # the count is persisted
        for _ in range(20):
            q.put(DEV, waste())
        s = q.stats()
        assert s.bytes <= 1024 and s.buffered == len(q) < 20 and s.dropped > 3
        assert s.bytes == sum(len(x.entry.model_dump_json(exclude_none=True)) for x in q.peek(100))


def test_invalid_entries_are_refused_and_consume_no_seq(tmp_path: Path) -> None:
    with open_q(tmp_path) as q:
        with pytest.raises(ValidationError):
            q.put(DEV, waste(net=-1.0))
        with pytest.raises(QueueError, match="must carry"):
            q.put(DEV, waste(device="WS-0101-S2"))
        assert len(q) == 0 and q.last_seq(DEV) is None
        assert q.put(DEV, waste()).seq == 1
    with pytest.raises(QueueError):
        DurableQueue.open(tmp_path / "missing-dir" / "q.db")
    with pytest.raises(QueueError):
        DurableQueue.open(tmp_path / "x.db", max_items=0)


def test_ack_from_another_thread_while_putting(tmp_path: Path) -> None:
    with open_q(tmp_path) as q:
        done = threading.Event()
        acked = [0]

        def publisher() -> None:
            while not done.is_set() or len(q):
                batch = q.peek(50)
                acked[0] += q.ack(x.id for x in batch)

        t = threading.Thread(target=publisher)
        t.start()
        for _ in range(300):
            q.put(DEV, waste())
        done.set()
        t.join()
        assert acked[0] == 300 and len(q) == 0 and q.last_seq(DEV) == 300


WRITER = """
import sys
from contract import WasteReading
from edge.queue import DurableQueue
q = DurableQueue.open(sys.argv[1], clock=lambda: 0)
while True:
    e = q.put("WS-0101-S1", lambda s: WasteReading(device="WS-0101-S1", seq=s, ts=1, category="dry", net_kg=0.5))
    print(e.seq, flush=True)  # the ack to the device side, after the commit
"""


def test_every_acknowledged_put_survives_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acked = [int(proc.stdout.readline()) for _ in range(200)]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    with DurableQueue.open(db, clock=lambda: 0) as q:
        stored = [x.entry.seq for x in q.peek(100_000)]
        assert set(acked) <= set(stored)
        assert stored == list(range(1, len(stored) + 1))  # no gap, no duplicate
        assert q.put(DEV, waste()).seq == stored[-1] + 1
