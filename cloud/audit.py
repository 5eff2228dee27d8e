"""The audit trail of access to residents' health records: append-only JSON lines, locked, fsync'd.

Every API process and the CLI share one file. Each record is one `write` on an `O_APPEND`
descriptor under an exclusive `flock` of `<file>.lock`, followed by `fsync`, so records from
concurrent requests and processes never interleave and a record is on disk before the answer
leaves. Only `prune` removes anything: it rewrites the file atomically (same lock) keeping the
records younger than the retention, and records itself. Bulk access (one token reading more than
`bulk_residents` distinct residents within `bulk_window_s`) adds a `bulk_access` record and logs a
warning; the window is rebuilt from the file itself, so it counts every process's reads.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from runtime.system import replace_durably

log = logging.getLogger("gumei.audit")

DAY_S = 86_400.0
TAIL_BYTES = (
    32 << 20
)  # on start (or after a prune) the bulk window is rebuilt from at most this much of the tail
_SINCE = re.compile(r"^(\d{1,6})([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


class AuditError(ValueError):
    """The audit log cannot be written or read, or a filter is malformed."""


def utc_iso(t: float) -> str:
    """An epoch time as ISO 8601 UTC with milliseconds and a Z."""
    return (
        dt.datetime.fromtimestamp(t, dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def epoch_of(record: dict[str, Any]) -> float | None:
    """A record's time as epoch seconds, or None when it has none."""
    try:
        return dt.datetime.fromisoformat(str(record["time"])).timestamp()
    except (KeyError, ValueError):
        return None


def parse_since(text: str, now: float) -> float:
    """`7d`, `24h`, `30m`, `90s`, or an ISO date/time (UTC when no zone) as epoch seconds."""
    m = _SINCE.match(text.strip())
    if m:
        return now - int(m.group(1)) * _UNITS[m.group(2)]
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise AuditError(
            f"since must be like 7d, 24h, 30m or an ISO date/time, not {text[:40]!r}"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


class AuditLog:
    """One audit file. Thread-safe; several processes may share the file (flock)."""

    def __init__(
        self,
        path: Path,
        retention_days: float = 1096.0,
        bulk_residents: int = 50,
        bulk_window_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.retention_days = retention_days
        self.bulk_residents = bulk_residents
        self.bulk_window_s = bulk_window_s
        self._clock = clock
        self._mutex = threading.Lock()
        self._seen: tuple[int, int] = (
            -1,
            0,
        )  # (inode, offset) of the file read into the window so far
        self._reads: deque[tuple[float, str, str]] = (
            deque()
        )  # (time, token id, resident) of successful reads
        self._flagged: dict[str, float] = {}  # token id -> time of its last bulk_access record
        self._last_prune = clock()

    @contextlib.contextmanager
    def _locked(self, op: int = fcntl.LOCK_EX) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, op)
            yield
        finally:
            os.close(fd)

    def append(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """Write one record (an `event` key and anything JSON) and any bulk_access record it triggers.

        The time is set here (UTC). Returns what was written. Raises AuditError when the file
        cannot be written: callers must then not answer with the data.
        """
        now = self._clock()
        record = {"time": utc_iso(now), **record}
        try:
            with self._mutex:
                if now - self._last_prune > DAY_S:
                    self._prune_locked_out(now)
                with self._locked():
                    self._catch_up(now)
                    out = [record, *self._bulk(record, now)]
                    self._write(out)
        except OSError as exc:
            raise AuditError(
                f"audit log {self.path} cannot be written: {exc.strerror or exc}"
            ) from None
        for extra in out[1:]:
            log.warning(
                "bulk access: token %s (%s) read %d distinct residents within %.0f s",
                extra["token_id"],
                extra.get("token_name"),
                extra["residents"],
                self.bulk_window_s,
            )
        return out

    def _write(self, records: list[dict[str, Any]]) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            for rec in records:
                data = (json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
                if os.write(fd, data) != len(data):
                    raise OSError(28, "short write")
            os.fsync(fd)
            st = os.fstat(fd)
            self._seen = (st.st_ino, st.st_size)  # under the lock: everything up to here is read
        finally:
            os.close(fd)

    def _catch_up(self, now: float) -> None:
        """Read into the bulk window what other processes appended since this one last looked."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._seen, self._reads, self._flagged = (-1, 0), deque(), {}
            return
        ino, offset = self._seen
        partial = False
        if ino != st.st_ino or st.st_size < offset:  # first look, or pruned: rebuild from the tail
            self._reads, self._flagged = deque(), {}
            offset = max(0, st.st_size - TAIL_BYTES)
            partial = offset > 0
        if offset < st.st_size:
            with open(self.path, "rb") as f:
                f.seek(offset)
                data = f.read(st.st_size - offset)
            lines = data.split(b"\n")[1:] if partial else data.split(b"\n")  # skip a cut first line
            for line in lines:
                if line.strip():
                    try:
                        self._observe(json.loads(line))
                    except (ValueError, TypeError):
                        continue
        self._seen = (st.st_ino, st.st_size)
        self._expire(now)

    def _observe(self, rec: dict[str, Any]) -> None:
        t = epoch_of(rec)
        if t is None or not rec.get("token_id"):
            return
        if rec.get("event") == "bulk_access":
            self._flagged[rec["token_id"]] = t
        elif (
            rec.get("event") == "access"
            and rec.get("resident")
            and 200 <= int(rec.get("status", 0)) < 300
        ):
            self._reads.append((t, rec["token_id"], rec["resident"]))

    def _expire(self, now: float) -> None:
        while self._reads and self._reads[0][0] < now - self.bulk_window_s:
            self._reads.popleft()

    def _bulk(self, record: dict[str, Any], now: float) -> list[dict[str, Any]]:
        """A bulk_access record when this read takes its token past the threshold (once per window)."""
        self._observe(record)
        token = record.get("token_id")
        if (
            record.get("event") != "access"
            or not token
            or self._flagged.get(token, -1e18) >= now - self.bulk_window_s
        ):
            return []
        residents = {r for _, tok, r in self._reads if tok == token}
        if len(residents) <= self.bulk_residents:
            return []
        self._flagged[token] = now
        return [
            {
                "time": utc_iso(now),
                "event": "bulk_access",
                "token_id": token,
                "token_name": record.get("token_name"),
                "role": record.get("role"),
                "residents": len(residents),
                "threshold": self.bulk_residents,
                "window_s": self.bulk_window_s,
                "client": record.get("client"),
            }
        ]

    def prune(self) -> int:
        """Drop records older than the retention (atomic rewrite under the lock); returns how many."""
        with self._mutex:
            try:
                return self._prune_locked_out(self._clock())
            except OSError as exc:
                raise AuditError(
                    f"audit log {self.path} cannot be pruned: {exc.strerror or exc}"
                ) from None

    def _prune_locked_out(self, now: float) -> int:
        self._last_prune = now
        cutoff = now - self.retention_days * DAY_S
        with self._locked():
            if not self.path.exists():
                return 0
            kept, removed = [], 0
            with open(self.path, "rb") as f:
                for line in f:
                    try:
                        t = epoch_of(json.loads(line))
                    except (ValueError, TypeError):
                        t = None
                    if t is not None and t < cutoff:
                        removed += 1
                    elif line.strip():
                        kept.append(line if line.endswith(b"\n") else line + b"\n")
            if removed == 0:
                return 0
            replace_durably(self.path, b"".join(kept))
            self._write(
                [
                    {
                        "time": utc_iso(now),
                        "event": "prune",
                        "removed": removed,
                        "kept": len(kept),
                        "retention_days": self.retention_days,
                        "before": utc_iso(cutoff),
                        "pid": os.getpid(),
                    }
                ]
            )
        log.info("audit log pruned: %d record(s) older than %s removed", removed, utc_iso(cutoff))
        return removed

    def read(
        self,
        since: float | None = None,
        token: str | None = None,
        resident: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """The newest `limit` records matching the filters, oldest first (`token`: by or about that token)."""
        out: deque[dict[str, Any]] = deque(maxlen=max(limit, 0))
        with self._locked(fcntl.LOCK_SH):
            if not self.path.exists():
                return []
            with open(self.path, "rb") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    if since is not None and (epoch_of(rec) or 0) < since:
                        continue
                    if token is not None and token not in (
                        rec.get("token_id"),
                        rec.get("subject_token"),
                    ):
                        continue
                    if resident is not None and rec.get("resident") != resident:
                        continue
                    out.append(rec)
        return list(out)
