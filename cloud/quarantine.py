"""Dead letters, queryable: what was rejected, when, from which site, and why; kept for a bounded time.

Dead letters live in the `quarantine` measurement of the main database (so dashboards and the
default retention policy see them), except health ones (kind "health": their excerpts hold
measurement values and pseudonyms): those go whole to the health database, and the main database
gets a stub with the same tags and entry count but no payload or reason (`split_health`), so the
fleet dashboard still counts them and Grafana never reads them. Both are pruned by age: every worker runs `prune()` now and
then; the DELETE is idempotent, so N workers pruning is harmless. Dead letters are at-least-once:
a worker killed after writing them but before its PUBACK writes them again on redelivery.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cloud import measurements as m
from cloud.influx import InfluxClient, quote
from cloud.lineproto import FieldValue, LineProtocolError, line

DEFAULT_KEEP_DAYS = 30
PAYLOAD_EXCERPT = 2048


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    """A dead letter: a whole payload or one entry of a batch, with its reason."""

    site: str
    kind: str
    code: str
    reason: str
    topic: str
    payload: str
    entries: int = 1


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead letter as read back from InfluxDB."""

    time: dt.datetime
    site: str
    kind: str
    code: str
    worker: str
    reason: str
    topic: str
    payload: str
    entries: int


def _safe_tag(value: str) -> str:
    """A tag value that line protocol can always carry (dead letters must never be poison)."""
    cleaned = value.replace("\n", " ").replace("\r", " ").replace("\\", "/").strip()[:64]
    return cleaned or "unknown"


def quarantine_lines(records: Sequence[QuarantineRecord], worker: str, time_ns: int) -> list[str]:
    """Line protocol for dead letters; each gets its own nanosecond so none overwrites another."""
    out = []
    for i, r in enumerate(records):
        tags = {
            "site": _safe_tag(r.site),
            "kind": _safe_tag(r.kind),
            "code": _safe_tag(r.code),
            "worker": _safe_tag(worker),
        }
        fields: dict[str, FieldValue] = {
            "reason": r.reason[:500],
            "topic": r.topic[:300],
            "payload": r.payload[:PAYLOAD_EXCERPT],
            "entries": r.entries,
        }
        try:
            out.append(line(m.QUARANTINE.name, tags, fields, time_ns + i))
        except LineProtocolError:  # pragma: no cover - tags are sanitized above
            continue
    return out


HEALTH_STUB_REASON = "health dead letter: details in the health database (health role)"


def split_health(
    records: Sequence[QuarantineRecord],
) -> tuple[list[QuarantineRecord], list[QuarantineRecord]]:
    """(for the main database, for the health database): health dead letters go whole to the health
    database and leave a stub (tags and entries, no payload, no reason) in the main one."""
    main: list[QuarantineRecord] = []
    health: list[QuarantineRecord] = []
    for r in records:
        if r.kind == "health":
            health.append(r)
            main.append(
                QuarantineRecord(r.site, r.kind, r.code, HEALTH_STUB_REASON, r.topic, "", r.entries)
            )
        else:
            main.append(r)
    return main, health


class DeadLetterBudget:
    """How many dead letters one site may have stored in full per window; the rest are summed.

    A gateway flooding junk must not turn into a flood of points: beyond `per_window` dead letters
    of a site within `window_s`, a batch's further dead letters of that site are folded into one
    record per (site, kind, code), whose `entries` keeps the total (so counts stay exact) and whose
    reason says how many were folded. Per worker process (N workers: N budgets, still bounded).
    Not thread-safe: the planner thread owns it.
    """

    def __init__(
        self, per_window: int = 60, window_s: float = 60.0, max_sites: int = 10_000
    ) -> None:
        self.per_window, self.window_s, self.max_sites = per_window, window_s, max_sites
        self._used: dict[str, tuple[float, int]] = {}

    def admit(self, records: Sequence[QuarantineRecord], now_s: float) -> list[QuarantineRecord]:
        """The records to store: within budget as they are, the rest folded per (site, kind, code)."""
        if len(self._used) > self.max_sites:
            self._used.clear()
        kept: list[QuarantineRecord] = []
        folded: dict[tuple[str, str, str], list[QuarantineRecord]] = {}
        for r in records:
            start, used = self._used.get(r.site, (now_s, 0))
            if now_s - start >= self.window_s:
                start, used = now_s, 0
            self._used[r.site] = (start, used + 1)
            if used < self.per_window:
                kept.append(r)
            else:
                folded.setdefault((r.site, r.kind, r.code), []).append(r)
        for (site, kind, code), rs in folded.items():
            first = rs[0]
            kept.append(
                QuarantineRecord(
                    site,
                    kind,
                    code,
                    f"{len(rs)} dead letters folded (over {self.per_window} in {self.window_s:.0f} s from this site); first: {first.reason}"[
                        :500
                    ],
                    first.topic,
                    first.payload,
                    sum(r.entries for r in rs),
                )
            )
        return kept


class QuarantineStore:
    """Reads and prunes dead letters through the one InfluxDB client."""

    def __init__(self, influx: InfluxClient, db: str | None = None) -> None:
        self.influx = influx
        self.db = db  # None: the main database

    def recent(
        self,
        since: dt.timedelta = dt.timedelta(days=1),
        site: str | None = None,
        code: str | None = None,
        limit: int = 50,
    ) -> list[DeadLetter]:
        """Newest dead letters first, at most `limit`, received within `since`."""
        where = [f"time > now() - {int(since.total_seconds())}s"]
        if site:
            where.append(f"site = {quote(site)}")
        if code:
            where.append(f"code = {quote(code)}")
        q = (
            f"SELECT reason, topic, payload, entries, site, kind, code, worker FROM {m.QUARANTINE.name} "
            f"WHERE {' AND '.join(where)} ORDER BY time DESC LIMIT {int(limit)}"
        )
        out = []
        for s in self.influx.query(q, db=self.db):
            for row in s.values:
                v = dict(zip(s.columns, row, strict=True))
                out.append(
                    DeadLetter(
                        time=dt.datetime.fromtimestamp(v["time"] / 1000, dt.UTC),
                        site=v.get("site") or "",
                        kind=v.get("kind") or "",
                        code=v.get("code") or "",
                        worker=v.get("worker") or "",
                        reason=v.get("reason") or "",
                        topic=v.get("topic") or "",
                        payload=v.get("payload") or "",
                        entries=int(v.get("entries") or 0),
                    )
                )
        return out

    def counts(self, since: dt.timedelta = dt.timedelta(days=1)) -> dict[tuple[str, str], int]:
        """Quarantined entries per (site, code) within `since`."""
        q = (
            f"SELECT sum(entries) FROM {m.QUARANTINE.name} WHERE time > now() - {int(since.total_seconds())}s "
            "GROUP BY site, code"
        )
        return {
            (s.tags.get("site", ""), s.tags.get("code", "")): int(s.values[0][1] or 0)
            for s in self.influx.query(q, db=self.db)
            if s.values
        }

    def prune(self, keep: dt.timedelta = dt.timedelta(days=DEFAULT_KEEP_DAYS)) -> None:
        """Delete dead letters older than `keep` (idempotent; safe from every worker)."""
        self.influx.execute(
            f"DELETE FROM {m.QUARANTINE.name} WHERE time < now() - {int(keep.total_seconds())}s",
            db=self.db,
        )
