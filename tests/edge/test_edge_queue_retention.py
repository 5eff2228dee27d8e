"""Acknowledged entries kept for a replay: not pending, listed by acked_since, purged by age."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from contract import WasteReading
from edge.queue import DurableQueue

DEV = "WS-0901-S1"


def waste(net: float = 1.0):
    return lambda seq: WasteReading(
        device=DEV, seq=seq, ts=1_764_201_600_000, category="dry", net_kg=net
    )


def test_retained_acks_leave_the_pending_set_and_are_replayable_until_purged(
    tmp_path: Path,
) -> None:
    now = [1_000]
    with DurableQueue.open(tmp_path / "q.db", clock=lambda: now[0]) as q:
        for i in range(6):
            q.put(DEV, waste(1 + i))
        ids = [x.id for x in q.peek()]
        now[0] = 2_000
        assert q.ack(ids[:2], retain=True) == 2
        now[0] = 5_000
        assert q.ack(ids[2:4], retain=True) == 2
        assert q.ack(ids[2:4], retain=True) == 0  # a duplicate PUBACK changes nothing
        assert [x.id for x in q.peek()] == ids[4:] == [i for i, _ in q.peek_payloads()]
        s = q.stats()
        assert (s.buffered, s.retained, s.acked, len(q)) == (2, 4, 4, 2)
        assert s.bytes == sum(len(p) for _, p in q.peek_payloads())
        assert [i for i, _ in q.acked_since(2_000)] == ids[:4]
        assert [i for i, _ in q.acked_since(3_000)] == ids[2:4]
        assert [i for i, _ in q.acked_since(0, 1, after_id=ids[0])] == [ids[1]]
        assert q.purge_acked(3_000) == 2
        assert [i for i, _ in q.acked_since(0)] == ids[2:4]
    with DurableQueue.open(tmp_path / "q.db", clock=lambda: now[0]) as q:  # kept across restarts
        assert [i for i, _ in q.acked_since(0)] == ids[2:4] and len(q) == 2


def test_bound_counts_pending_only_and_plain_ack_deletes(tmp_path: Path) -> None:
    with DurableQueue.open(tmp_path / "q.db", max_items=3, clock=lambda: 7) as q:
        for _ in range(3):
            q.put(DEV, waste())
        q.ack([x.id for x in q.peek()], retain=True)
        for _ in range(3):
            q.put(DEV, waste())
        assert (
            q.stats().dropped == 0 and q.stats().retained == 3
        )  # retained entries never force a drop
        q.ack([x.id for x in q.peek()])
        assert q.stats().retained == 3 and len(q) == 0


def test_a_queue_file_from_before_retention_is_upgraded(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        "CREATE TABLE entries (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, device TEXT NOT NULL,"
        " seq INTEGER NOT NULL, ts INTEGER NOT NULL, payload TEXT NOT NULL, UNIQUE (device, seq));"
        "INSERT INTO entries (kind, device, seq, ts, payload) VALUES ('waste', 'WS-0901-S1', 5, 1,"
        ' \'{"device":"WS-0901-S1","seq":5,"ts":1,"category":"dry","net_kg":1.0}\');'
    )
    conn.commit()
    conn.close()
    with DurableQueue.open(db, clock=lambda: 0) as q:
        assert [x.entry.seq for x in q.peek()] == [5]
        q.ack([x.id for x in q.peek()], retain=True)
        assert len(q) == 0 and len(q.acked_since(0)) == 1


def test_meta_values_are_durable(tmp_path: Path) -> None:
    with DurableQueue.open(tmp_path / "q.db") as q:
        assert q.get_meta("replay_from_ms:waste") is None
        q.set_meta("replay_from_ms:waste", 1_764_201_600_000)
    with DurableQueue.open(tmp_path / "q.db") as q:
        assert q.get_meta("replay_from_ms:waste") == 1_764_201_600_000
        q.set_meta("replay_from_ms:waste", None)
        assert q.get_meta("replay_from_ms:waste") is None
