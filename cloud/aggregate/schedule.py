"""What the incremental aggregator has to do: dirty (site, day) markers since the watermark, and
which target days depend on a recomputed day. Reads markers, writes the watermark; computes
nothing else.

The contract with the ingestion worker: every written reading has a `dirty_site_day` marker in the
same /write request, after it, stamped with the write's wall-clock time. A run takes its new
watermark *before* reading markers, reads every marker newer than the stored watermark minus
OVERLAP_MS (clock skew between hosts, a write that lands later than the time it was stamped), and
stores the watermark only after its recompute is written. So a marker is read by at least one run
that starts after its readings are stored; with runs less than OVERLAP_MS apart, by two (which is
what heals a race between concurrent aggregators: a run that read a day just before another's late
reading was stored is followed by one that reads it again).

An aggregator need not redo a marker it has itself recomputed: its read came after the marker was
visible, so after the marked readings. Its own stale write (a concurrent reader's newer result
overwritten) can only miss readings whose markers it had not seen yet, which its next run reads.
So each aggregator remembers the markers it did within the overlap (`done`), and the overlap
costs only the markers that are new to it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from cloud import measurements as m
from cloud.aggregate.targets import YEAR_DAYS
from cloud.days import number_of
from cloud.influx import InfluxClient
from cloud.lineproto import line

OVERLAP_MS = 120_000  # re-read markers this far behind the watermark (clock skew between workers)
ROWS_WATERMARK = "watermark_ms"  # the rows lane: site, area and district tonnage, targets
RESIDENTS_WATERMARK = "residents_watermark_ms"  # the lane of the district's distinct residents


@dataclass
class DirtyWork:
    """Days to recompute: per day the sites whose readings changed, or None for the whole day
    (a marker of the previous version, which names no site)."""

    sites: dict[int, set[str] | None] = field(default_factory=dict)

    def add_site(self, day: int, site: str) -> None:
        known = self.sites.setdefault(day, set())
        if known is not None:
            known.add(site)

    def add_day(self, day: int) -> None:
        self.sites[day] = None

    @property
    def days(self) -> list[int]:
        return sorted(self.sites)

    def __len__(self) -> int:
        return len(self.sites)


def read_watermark(influx: InfluxClient, name: str = ROWS_WATERMARK) -> int:
    """The stored watermark of a lane (epoch ms; 0 before its first run)."""
    wm = 0
    for s in influx.query(f'SELECT last("{name}") FROM {m.AGGREGATOR_STATE.name}'):
        wm = int(s.values[0][1])
    return wm


Marker = tuple[int, str, str]  # (time ms, site, ISO day): one marker of dirty_site_day


def read_dirty(
    influx: InfluxClient, since_ms: int, done: set[Marker] | None = None
) -> tuple[DirtyWork, set[Marker]]:
    """Every (site, day) marked after since_ms, except markers in `done`; whole days of
    previous-version markers. Returns the work and the markers it came from."""
    work = DirtyWork()
    seen: set[Marker] = set()
    q = f'SELECT "day" FROM {m.DIRTY_SITE_DAY.name} WHERE time > {since_ms}ms GROUP BY site'
    for s in influx.query(q):
        site = s.tags.get("site", "")
        i = s.columns.index("day")
        for v in s.values:
            key = (int(v[0]), site, str(v[i]))
            if done is None or key not in done:
                seen.add(key)
    for _, site, day in seen:
        work.add_site(number_of(dt.date.fromisoformat(day)), site)
    for s in influx.query(
        f'SELECT points, "day" FROM {m.DIRTY_DAY.name} WHERE time > {since_ms}ms'
    ):
        i = s.columns.index("day")
        for day in {v[i] for v in s.values}:
            work.add_day(number_of(dt.date.fromisoformat(day)))
    return work, seen


def dirty_work(
    influx: InfluxClient, name: str = ROWS_WATERMARK, done: set[Marker] | None = None
) -> tuple[DirtyWork, int, set[Marker]]:
    """The work marked since a lane's watermark (less the markers in `done`), the new watermark to
    store after doing it, and the markers the work came from."""
    new_watermark = time.time_ns() // 1_000_000
    stored = read_watermark(influx, name) or read_watermark(influx)  # a new lane starts at rows'
    since = max(0, stored - OVERLAP_MS)
    work, markers = read_dirty(influx, since, done)
    return work, new_watermark, markers


def write_watermark(
    influx: InfluxClient, watermark_ms: int, days: int, residents: bool = True, rows: bool = True
) -> None:
    """Store where this run got to (after its results are written), for the lanes it ran. Both
    lanes' fields live in one series; a point written by both at the same ms merges."""
    fields: dict[str, int] = {"days": days}
    if rows:
        fields[ROWS_WATERMARK] = watermark_ms
    if residents:
        fields[RESIDENTS_WATERMARK] = watermark_ms
    point = line(m.AGGREGATOR_STATE.name, {}, dict(fields), watermark_ms * 1_000_000)
    influx.write_lines((point + "\n").encode())


def affected_target_days(days: Iterable[int], window_days: int, last_day: int) -> list[int]:
    """Target days whose inputs include one of `days`: the dry window after each day, and the
    same window a year later (the dry-waste comparison), up to last_day (today)."""
    out: set[int] = set()
    for d in days:
        out.update(x for x in range(d, d + window_days) if x <= last_day)
        out.update(x for x in range(d + YEAR_DAYS, d + YEAR_DAYS + window_days) if x <= last_day)
    return sorted(out)
