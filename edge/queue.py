"""Durable local queue of contract readings (SQLite WAL): commit before ack, delete after PUBACK.

Acknowledged entries may be kept for a while (ack(..., retain=True)) so that a publisher can
re-send what the broker acknowledged just before a lost connection (see docs/edge.md, replay).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Self, TypeVar

from contract import HealthMeasurement, WasteReading, WeighbridgeTicket, now_ms
from edge.errors import QueueError

Entry = WasteReading | HealthMeasurement | WeighbridgeTicket
E = TypeVar("E", WasteReading, HealthMeasurement, WeighbridgeTicket)
MODELS: dict[str, type[Entry]] = {
    "waste": WasteReading,
    "health": HealthMeasurement,
    "tickets": WeighbridgeTicket,
}
# A weighbridge ticket's number is its seq here: the queue gives each device's next number.
KIND_OF: dict[type[Entry], str] = {
    WasteReading: "waste",
    HealthMeasurement: "health",
    WeighbridgeTicket: "tickets",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT NOT NULL,
    device  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    ts      INTEGER NOT NULL,
    payload TEXT NOT NULL,
    acked_at INTEGER,
    UNIQUE (device, seq)
);
CREATE TABLE IF NOT EXISTS device_seq (device TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('dropped', 0), ('bytes', 0), ('accepted', 0), ('acked', 0);
"""
# Added after the first release: files created before get the column in open().
_INDEXES = """
CREATE INDEX IF NOT EXISTS entries_pending ON entries (id) WHERE acked_at IS NULL;
CREATE INDEX IF NOT EXISTS entries_acked ON entries (acked_at) WHERE acked_at IS NOT NULL;
"""
PENDING = "acked_at IS NULL"


@dataclass(frozen=True, slots=True)
class Queued:
    """One stored entry: its queue id (for ack) and the contract entry."""

    id: int
    entry: Entry

    @property
    def kind(self) -> str:
        """'waste', 'health' or 'tickets'."""
        return KIND_OF[type(self.entry)]


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counters of the queue; `dropped` counts entries pushed out by the bound."""

    buffered: int
    bytes: int
    accepted: int
    acked: int
    dropped: int
    retained: int = 0  # acknowledged entries kept for a replay


class DurableQueue:
    """SQLite-backed FIFO of readings with per-device seq; thread-safe; one writer process.

    put() assigns the device's next seq and commits (synchronous=FULL) before it returns,
    so a returned entry survives kill -9 and power loss. peek() reads the oldest pending entries
    without removing them; ack(ids) deletes them once the broker has acknowledged them, or with
    retain=True marks them acknowledged (no longer pending) and keeps them for acked_since()
    until purge_acked(). When full (max_items or max_bytes of pending entries), the oldest
    pending entries are dropped and counted; retained entries are bounded by purge_acked().
    """

    def __init__(
        self, conn: sqlite3.Connection, max_items: int, max_bytes: int, clock: Callable[[], int]
    ) -> None:
        self._db, self.max_items, self.max_bytes, self._clock = conn, max_items, max_bytes, clock
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        max_items: int = 1_000_000,
        max_bytes: int = 512 * 1024 * 1024,
        clock: Callable[[], int] = now_ms,
    ) -> DurableQueue:
        """Open or create the queue file in WAL mode."""
        if max_items < 1 or max_bytes < 1024:
            raise QueueError("max_items must be >= 1 and max_bytes >= 1024")
        try:
            conn = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False, timeout=10
            )
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            columns = {r[1] for r in conn.execute("PRAGMA table_info(entries)")}
            if "acked_at" not in columns:
                conn.execute("ALTER TABLE entries ADD COLUMN acked_at INTEGER")
            conn.executescript(_INDEXES)
            # `pending` is kept in step by put/ack/drop (a count(*) per put is O(n)); recount at open.
            conn.execute(
                f"INSERT OR REPLACE INTO counters VALUES ('pending', (SELECT count(*) FROM entries WHERE {PENDING}))"
            )
        except sqlite3.Error as exc:
            raise QueueError(f"cannot open queue {path}: {exc}") from exc
        if mode != "wal":
            conn.close()
            raise QueueError(f"queue {path}: WAL mode not available (got {mode})")
        return cls(conn, max_items, max_bytes, clock)

    def close(self) -> None:
        """Checkpoint and close the file."""
        with self._lock:
            # closing anyway; the WAL is replayed on the next open
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next_seq(self, device: str) -> int:
        row = self._db.execute(
            "SELECT last_seq FROM device_seq WHERE device = ?", (device,)
        ).fetchone()
        # A new device starts at clock_ms * 1000 so that seq still increases if this file is lost.
        seq = row[0] + 1 if row else max(1, self._clock() * 1000)
        self._db.execute("INSERT OR REPLACE INTO device_seq VALUES (?, ?)", (device, seq))
        return seq

    def _counter(self, name: str, delta: int) -> None:
        self._db.execute("UPDATE counters SET value = value + ? WHERE name = ?", (delta, name))

    def _make_room(self, incoming: int) -> None:
        n, size = self._db.execute(
            "SELECT (SELECT value FROM counters WHERE name='pending'), (SELECT value FROM counters WHERE name='bytes')"
        ).fetchone()
        while n and (n + 1 > self.max_items or size + incoming > self.max_bytes):
            over = max(1, n + 1 - self.max_items)
            rows = self._db.execute(
                f"SELECT id, length(payload) FROM entries WHERE {PENDING} ORDER BY id LIMIT ?",
                (over,),
            ).fetchall()
            self._db.executemany("DELETE FROM entries WHERE id = ?", [(r[0],) for r in rows])
            freed = sum(r[1] for r in rows)
            self._counter("dropped", len(rows))
            self._counter("pending", -len(rows))
            self._counter("bytes", -freed)
            n, size = n - len(rows), size - freed

    def put(self, device: str, make: Callable[[int], E]) -> E:
        """Build the entry with the device's next seq, store it durably, and return it."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    seq = self._next_seq(device)
                    entry = make(seq)
                    if entry.device != device or entry.seq != seq:
                        raise QueueError(f"entry must carry device {device!r} and seq {seq}")
                    payload = entry.model_dump_json(exclude_none=True)
                    self._make_room(len(payload))
                    self._db.execute(
                        "INSERT INTO entries (kind, device, seq, ts, payload) VALUES (?, ?, ?, ?, ?)",
                        (KIND_OF[type(entry)], device, seq, entry.ts, payload),
                    )
                    self._counter("bytes", len(payload))
                    self._counter("accepted", 1)
                    self._counter("pending", 1)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise QueueError(f"queue write failed: {exc}") from exc
        return entry

    def peek(self, limit: int = 500, *, after_id: int = 0, kind: str | None = None) -> list[Queued]:
        """Up to `limit` oldest entries with id > after_id (optionally one kind), not removed."""
        rows = self._select(f"{PENDING} AND id > ?", [after_id], kind, limit)
        return [Queued(i, MODELS[k].model_validate_json(p)) for i, k, p in rows]

    def peek_payloads(
        self, limit: int = 500, *, after_id: int = 0, kind: str | None = None
    ) -> list[tuple[int, str]]:
        """Like peek() but (id, stored JSON of the entry) without parsing: for building batches fast."""
        return [
            (i, p) for i, _, p in self._select(f"{PENDING} AND id > ?", [after_id], kind, limit)
        ]

    def acked_since(
        self, since_ms: int, limit: int = 500, *, after_id: int = 0, kind: str | None = None
    ) -> list[tuple[int, str]]:
        """Retained entries acknowledged at or after since_ms (id > after_id), oldest first, as (id, JSON)."""
        rows = self._select(
            "acked_at IS NOT NULL AND acked_at >= ? AND id > ?", [since_ms, after_id], kind, limit
        )
        return [(i, p) for i, _, p in rows]

    def _select(
        self, where: str, args: list[object], kind: str | None, limit: int
    ) -> list[tuple[int, str, str]]:
        sql = f"SELECT id, kind, payload FROM entries WHERE {where}"
        if kind is not None:
            sql += " AND kind = ?"
            args = [*args, kind]
        sql += " ORDER BY id LIMIT ?"
        with self._lock:
            try:
                return self._db.execute(sql, [*args, limit]).fetchall()
            except sqlite3.Error as exc:
                raise QueueError(f"queue read failed: {exc}") from exc

    def purge_acked(self, before_ms: int) -> int:
        """Delete retained entries acknowledged before before_ms; returns how many."""
        with self._lock:
            try:
                cur = self._db.execute(
                    "DELETE FROM entries WHERE acked_at IS NOT NULL AND acked_at < ?", (before_ms,)
                )
            except sqlite3.Error as exc:
                raise QueueError(f"queue purge failed: {exc}") from exc
        return cur.rowcount

    def ack(self, ids: Iterable[int], *, retain: bool = False) -> int:
        """Entries the broker acknowledged (PUBACK): delete them, or with retain keep them marked
        acknowledged (for a replay) until purge_acked(). Returns how many were still pending."""
        id_list = [(i,) for i in ids]
        if not id_list:
            return 0
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.execute(
                        "CREATE TEMP TABLE IF NOT EXISTS ack_ids (id INTEGER PRIMARY KEY)"
                    )
                    self._db.execute("DELETE FROM ack_ids")
                    self._db.executemany("INSERT OR IGNORE INTO ack_ids VALUES (?)", id_list)
                    pending = f"id IN (SELECT id FROM ack_ids) AND {PENDING}"
                    n, size = self._db.execute(
                        f"SELECT count(*), coalesce(sum(length(payload)), 0) FROM entries WHERE {pending}"
                    ).fetchone()
                    if retain:
                        self._db.execute(
                            f"UPDATE entries SET acked_at = ? WHERE {pending}", (self._clock(),)
                        )
                    else:
                        self._db.execute("DELETE FROM entries WHERE id IN (SELECT id FROM ack_ids)")
                    self._counter("bytes", -size)
                    self._counter("acked", n)
                    self._counter("pending", -n)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise QueueError(f"queue ack failed: {exc}") from exc
        return n

    def get_meta(self, name: str) -> int | None:
        """A small durable integer kept for the queue's users (e.g. an owed replay), or None."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else None

    def set_meta(self, name: str, value: int | None) -> None:
        """Store (or with None remove) a durable integer; committed before returning."""
        with self._lock:
            try:
                if value is None:
                    self._db.execute("DELETE FROM meta WHERE name = ?", (name,))
                else:
                    self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))
            except sqlite3.Error as exc:
                raise QueueError(f"queue write failed: {exc}") from exc

    def last_seq(self, device: str) -> int | None:
        """The last seq given to a device, or None if it never had one."""
        with self._lock:
            row = self._db.execute(
                "SELECT last_seq FROM device_seq WHERE device = ?", (device,)
            ).fetchone()
        return row[0] if row else None

    def __len__(self) -> int:
        """Pending (not yet acknowledged) entries."""
        with self._lock:
            return int(
                self._db.execute("SELECT value FROM counters WHERE name = 'pending'").fetchone()[0]
            )

    def stats(self) -> QueueStats:
        """Buffered (pending) count, retained count and the persisted counters."""
        with self._lock:
            c = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
            n = c["pending"]
            kept = self._db.execute(
                "SELECT count(*) FROM entries WHERE acked_at IS NOT NULL"
            ).fetchone()[0]
        return QueueStats(
            buffered=n,
            bytes=c["bytes"],
            accepted=c["accepted"],
            acked=c["acked"],
            dropped=c["dropped"],
            retained=kept,
        )
