"""Read stored waste readings and rows from InfluxDB into NumPy columns (the aggregator's input).

No scheduling and no line encoding here: the queries, and the turning of series into `Readings`.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from cloud import measurements as m
from cloud.aggregate.tonnage import F64, I64, Readings, kg_to_mg
from cloud.days import DAY_MS, day_number, day_start_ms
from cloud.influx import InfluxClient

SITES_PER_QUERY = 200  # sites named in one WHERE (site = … OR …): keeps a query short


Row = tuple[
    int, float, int, str | None
]  # time (ms), net_kg, seq, resident: readings_query's columns


def day_window(day: int) -> str:
    """The InfluxQL time condition of one Shanghai day."""
    start = day_start_ms(day)
    return f"time >= {start}ms AND time < {start + DAY_MS}ms"


def site_condition(sites: Sequence[str]) -> str:
    """`(site = 'a' OR site = 'b' …)` for a WHERE clause."""
    quoted = (s.replace("\\", "\\\\").replace("'", "\\'") for s in sites)
    return "(" + " OR ".join(f"site = '{q}'" for q in quoted) + ")"


def readings_query(day: int, sites: Sequence[str] | None = None) -> str:
    """The InfluxQL the aggregator reads a day with: series by series (GROUP BY the tags), so each
    device's readings arrive together and in time order — the layout of daily_totals' one-pass
    proof — and the tags travel once per series instead of once per reading."""
    where = day_window(day) + (f" AND {site_condition(sites)}" if sites is not None else "")
    return (
        f"SELECT net_kg, seq, resident FROM {m.WASTE_READING.name} "
        f"WHERE {where} GROUP BY device, site, category"
    )


class _Columns:
    """Series rows appended chunk by chunk as NumPy arrays (no list of every value is kept):
    residents coded through one dict, tags once per series."""

    def __init__(self) -> None:
        self.parts: dict[str, list[I64]] = {
            k: [] for k in ("ts", "site", "cat", "dev", "seq", "res")
        }
        self.net: list[F64] = []
        self.devices: dict[str, int] = {}
        self.residents: dict[str | None, int] = {None: -1}

    def add(self, tags: dict[str, str], values: list[Row], site: int, category: int) -> None:
        n = len(values)
        ts, kg, seq, res = zip(*values, strict=True)
        code, residents = self.residents.setdefault, self.residents
        p = self.parts
        p["ts"].append(np.array(ts, dtype=np.int64))
        self.net.append(np.array(kg, dtype=np.float64))
        p["seq"].append(np.array(seq, dtype=np.int64))
        p["res"].append(np.array([code(x, len(residents) - 1) for x in res], dtype=np.int64))
        dev = self.devices.setdefault(tags.get("device", ""), len(self.devices))
        p["site"].append(np.full(n, site, dtype=np.int64))
        p["cat"].append(np.full(n, category, dtype=np.int64))
        p["dev"].append(np.full(n, dev, dtype=np.int64))

    def readings(self) -> tuple[Readings, list[str]]:
        col = {
            k: np.concatenate(v) if v else np.zeros(0, dtype=np.int64)
            for k, v in self.parts.items()
        }
        r = Readings(
            ts_ms=col["ts"],
            site=col["site"],
            category=col["cat"],
            device=col["dev"],
            seq=col["seq"],
            net_mg=kg_to_mg(np.concatenate(self.net)) if self.net else np.zeros(0, dtype=np.int64),
            resident=col["res"],
        )
        return r, [x for x in self.residents if x is not None]


@dataclass
class ReadingsReader:
    """Turns stored waste readings into `Readings` columns against the registry's site and
    category tables. Holds no state between calls; thread-safe as the InfluxClient is."""

    influx: InfluxClient
    site_idx: dict[str, int]
    cat_idx: dict[str, int]
    chunk_size: int = 50_000
    sites_per_query: int = SITES_PER_QUERY

    def read(self, day: int, sites: Sequence[str] | None = None) -> tuple[Readings, list[str]]:
        """All stored readings of one Shanghai day (of these sites only, if given) as columns,
        and the table of resident pseudonyms the resident column indexes.

        A whole day is one chunked JSON stream (read_chunked): no site list for influxd to match.
        Given sites are asked sites_per_query at a time in MessagePack (the cheapest answer for
        influxd to produce; unchunked, so the group bounds it), the next group fetched while this
        one is decoded. Memory is bounded by the columns either way."""
        if sites is None:
            return self.read_chunked(day)
        names = list(sites)
        step = self.sites_per_query
        groups = [names[i : i + step] for i in range(0, len(names), step)]
        cols = _Columns()
        with ThreadPoolExecutor(1) as pool:

            def fetch(k: int) -> Future[list[tuple[dict[str, str], list[Row]]]]:
                return pool.submit(
                    self.influx.query_rows_msgpack, readings_query(day, groups[k]), Row
                )

            pending = fetch(0) if groups else None
            for k in range(len(groups)):
                assert pending is not None
                answer = pending.result()
                pending = fetch(k + 1) if k + 1 < len(groups) else None
                for tags, values in answer:
                    self._add(cols, tags, values)
        return cols.readings()

    def read_chunked(self, day: int) -> tuple[Readings, list[str]]:
        """The same as read(), through the chunked JSON stream (one query for the whole day)."""
        cols = _Columns()
        for tags, values in self.influx.query_rows(readings_query(day), Row, self.chunk_size):
            self._add(cols, tags, values)
        return cols.readings()

    def _add(self, cols: _Columns, tags: dict[str, str], values: list[Row]) -> None:
        site = self.site_idx.get(tags.get("site", ""), -1)
        if values and site >= 0:  # a site no longer in the registry is left out
            cols.add(tags, values, site, self.cat_idx.get(tags.get("category", ""), -1))

    def area_rows(self, day: int, area_idx: dict[str, int]) -> tuple[I64, I64]:
        """The stored per-area rows of one day (category rows, not "all"): dense (area, category)
        net_mg and deposits — what the district roll-up sums."""
        net = np.zeros((len(area_idx), len(self.cat_idx)), dtype=np.int64)
        dep = np.zeros_like(net)
        q = (
            f"SELECT net_mg, deposits FROM {m.WASTE_AREA_DAILY.name} WHERE area != 'all' "
            f"AND category != 'all' AND {day_window(day)} GROUP BY area, category"
        )
        for s in self.influx.query(q):
            a, c = (
                area_idx.get(s.tags.get("area", "")),
                self.cat_idx.get(s.tags.get("category", "")),
            )
            if a is None or c is None or not s.values:
                continue
            net[a, c], dep[a, c] = int(s.values[-1][1]), int(s.values[-1][2])
        return net, dep

    def district_residents(self, day: int) -> tuple[I64, int]:
        """Distinct resident pseudonyms of one day in the whole district, per category and over
        all categories, counted by influxd (nothing exported). A stored duplicate names the same
        resident, so (device, seq) deduplication does not change these counts."""
        per = np.zeros(len(self.cat_idx), dtype=np.int64)
        base = (
            f"SELECT count(distinct(resident)) FROM {m.WASTE_READING.name} WHERE {day_window(day)}"
        )
        for s in self.influx.query(base + " GROUP BY category"):
            c = self.cat_idx.get(s.tags.get("category", ""))
            if c is not None and s.values:
                per[c] = int(s.values[0][1] or 0)
        total = 0
        for s in self.influx.query(base):
            if s.values:
                total = int(s.values[0][1] or 0)
        return per, total

    def district_rows(self, first_day: int, last_day: int) -> tuple[I64, I64]:
        """The district's stored (day, category) net_mg and deposits, days first_day..last_day."""
        n_days = last_day - first_day + 1
        net = np.zeros((n_days, len(self.cat_idx)), dtype=np.int64)
        dep = np.zeros_like(net)
        q = (
            f"SELECT net_mg, deposits FROM {m.WASTE_AREA_DAILY.name} WHERE area = 'all' "
            f"AND category != 'all' AND time >= {day_start_ms(first_day)}ms "
            f"AND time < {day_start_ms(last_day + 1)}ms GROUP BY category"
        )
        for s in self.influx.query(q):
            c = self.cat_idx.get(s.tags.get("category", ""))
            if c is None or not s.values:
                continue
            v = np.array(s.values, dtype=np.int64)
            di = day_number(v[:, 0]) - first_day
            net[di, c], dep[di, c] = v[:, 1], v[:, 2]
        return net, dep

    def areas_meeting(self, first_day: int, last_day: int) -> I64:
        """Per day first_day..last_day, how many areas' stored rows meet the sorting standard."""
        out = np.zeros(last_day - first_day + 1, dtype=np.int64)
        q = (
            f"SELECT count(meets_standard) FROM {m.WASTE_AREA_DAILY.name} WHERE category = 'all' "
            f"AND area != 'all' AND meets_standard = true AND time >= {day_start_ms(first_day)}ms "
            f"AND time < {day_start_ms(last_day + 1)}ms GROUP BY time(1d) fill(0) tz('Asia/Shanghai')"
        )
        for s in self.influx.query(q):
            for t, n in s.values:
                i = int(day_number(int(t))) - first_day
                if 0 <= i < out.shape[0]:
                    out[i] = int(n or 0)
        return out
