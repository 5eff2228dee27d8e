"""Feed the tonnage functions from InfluxDB, day by day, and write `waste_daily` back."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from cloud import measurements as m
from cloud.aggregate.tonnage import Readings, daily_totals, kg_to_mg, mg_to_tonnes
from cloud.days import DAY_MS, date_of, day_start_ms, number_of
from cloud.influx import InfluxClient
from cloud.lineproto import line
from cloud.registry import Registry
from contract import CATEGORIES

log = logging.getLogger(__name__)
OVERLAP_MS = 120_000  # re-read markers this far behind the watermark (clock skew between workers)


@dataclass(frozen=True)
class RunResult:
    """What one aggregation run did."""

    days: list[dt.date]
    rows: int
    readings: int


class Aggregator:
    """Recomputes daily tonnage for given days; stateless apart from the watermark in InfluxDB.

    Several copies may run at once: recomputing a day twice writes the same points.
    """

    def __init__(self, influx: InfluxClient, registry: Registry, chunk_size: int = 50_000) -> None:
        self.influx = influx
        self.registry = registry
        self.chunk_size = chunk_size
        self._sites = [s.id for s in registry.sites]
        self._site_idx = {s: i for i, s in enumerate(self._sites)}
        self._area = registry.area_of()
        self._cat_idx = {c: i for i, c in enumerate(CATEGORIES)}

    def read_day(self, day: int) -> Readings:
        """All stored readings of one Shanghai day, as columns (chunked query, bounded memory)."""
        start = day_start_ms(day)
        q = (
            f"SELECT net_kg, seq, device, site, category FROM {m.WASTE_READING.name} "
            f"WHERE time >= {start}ms AND time < {start + DAY_MS}ms"
        )
        ts: list[int] = []
        net: list[float] = []
        seq: list[int] = []
        dev: list[str] = []
        site: list[int] = []
        cat: list[int] = []
        for series in self.influx.query_chunks(q, self.chunk_size):
            cols = {c: i for i, c in enumerate(series.columns)}
            it, inet, iseq, idev, isite, icat = (cols[c] for c in ("time", "net_kg", "seq", "device", "site", "category"))
            for row in series.values:
                s = self._site_idx.get(row[isite])
                if s is None:
                    continue  # a site retired after its data was written
                ts.append(row[it])
                net.append(row[inet])
                seq.append(row[iseq])
                dev.append(row[idev])
                site.append(s)
                cat.append(self._cat_idx[row[icat]])
        devices, dev_idx = np.unique(np.array(dev, dtype=object), return_inverse=True) if dev else (None, np.zeros(0, np.int64))
        del devices
        return Readings(
            ts_ms=np.array(ts, dtype=np.int64),
            site=np.array(site, dtype=np.int64),
            category=np.array(cat, dtype=np.int64),
            device=np.asarray(dev_idx, dtype=np.int64),
            seq=np.array(seq, dtype=np.int64),
            net_mg=kg_to_mg(np.array(net, dtype=np.float64)),
        )

    def recompute(self, days: Iterable[int], progress: Callable[[int], None] | None = None) -> RunResult:
        """Recompute and write waste_daily for each day; return what was done."""
        done: list[dt.date] = []
        rows = readings = 0
        for day in sorted(set(days)):
            r = self.read_day(day)
            totals = daily_totals(r, len(self._sites), len(CATEGORIES))
            lines = [
                line(
                    m.WASTE_DAILY.name,
                    {"site": self._sites[s], "area": self._area[self._sites[s]], "category": CATEGORIES[c]},
                    {"tonnes": mg_to_tonnes(mg), "net_g": (int(mg) + 500) // 1000, "deposits": int(n)},
                    day_start_ms(int(d)) * 1_000_000,
                )
                for d, s, c, mg, n in zip(totals.day, totals.site, totals.category, totals.net_mg, totals.deposits, strict=True)
            ]
            self.influx.write_lines(("\n".join(lines) + "\n").encode() if lines else b"")
            rows += len(lines)
            readings += len(r)
            done.append(date_of(day))
            if progress:
                progress(1)
        return RunResult(done, rows, readings)

    def backfill(self, start: dt.date, end: dt.date, progress: Callable[[int], None] | None = None) -> RunResult:
        """Recompute every day from start to end inclusive."""
        return self.recompute(range(number_of(start), number_of(end) + 1), progress)

    def dirty_days(self) -> tuple[list[int], int]:
        """Days marked dirty since the watermark, and the new watermark to store after the run."""
        new_watermark = time.time_ns() // 1_000_000
        wm = 0
        for s in self.influx.query(f"SELECT last(watermark_ms) FROM {m.AGGREGATOR_STATE.name}"):
            wm = int(s.values[0][1])
        since = max(0, wm - OVERLAP_MS)
        days: set[int] = set()
        for s in self.influx.query(f'SELECT points, "day" FROM {m.DIRTY_DAY.name} WHERE time > {since}ms'):
            i = s.columns.index("day")
            days.update(number_of(dt.date.fromisoformat(v[i])) for v in s.values)
        return sorted(days), new_watermark

    def run_incremental(self) -> RunResult:
        """Recompute only the days touched by new or late readings since the last run."""
        days, watermark = self.dirty_days()
        result = self.recompute(days)
        self.influx.write_lines(
            (line(m.AGGREGATOR_STATE.name, {}, {"watermark_ms": watermark, "days": len(days)}, watermark * 1_000_000) + "\n").encode()
        )
        if days:
            log.info("aggregated %d day(s): %d rows from %d readings", len(days), result.rows, result.readings)
        return result
