"""Read stored waste readings and rows from InfluxDB into NumPy columns (the aggregator's input).

No scheduling and no line encoding here: the queries, and the turning of series into `Readings`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cloud import measurements as m
from cloud.aggregate.tonnage import F64, I64, Readings, kg_to_mg
from cloud.days import DAY_MS, day_start_ms
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


@dataclass
class ReadingsReader:
    """Turns stored waste readings into `Readings` columns against the registry's site and
    category tables. Holds no state between calls; thread-safe as the InfluxClient is."""

    influx: InfluxClient
    site_idx: dict[str, int]
    cat_idx: dict[str, int]
    chunk_size: int = 50_000

    def read(self, day: int, sites: Sequence[str] | None = None) -> tuple[Readings, list[str]]:
        """All stored readings of one Shanghai day (of these sites only, if given) as columns, and
        the table of resident pseudonyms the resident column indexes. Chunked: bounded memory."""
        if sites is None:
            return self._read([readings_query(day)])
        groups = [sites[i : i + SITES_PER_QUERY] for i in range(0, len(sites), SITES_PER_QUERY)]
        return self._read([readings_query(day, g) for g in groups])

    def _read(self, queries: list[str]) -> tuple[Readings, list[str]]:
        """Decode chunk by chunk straight into NumPy columns (no list of every value is kept):
        residents coded through one dict, tags once per series."""
        parts: dict[str, list[I64]] = {c: [] for c in ("ts", "site", "cat", "dev", "seq", "res")}
        net: list[F64] = []
        devices: dict[str, int] = {}
        residents: dict[str | None, int] = {None: -1}
        code = residents.setdefault
        for q in queries:
            for tags, values in self.influx.query_rows(q, Row, self.chunk_size):
                site = self.site_idx.get(tags.get("site", ""), -1)
                if not values or site < 0:  # a site no longer in the registry is left out
                    continue
                n = len(values)
                ts, kg, seq, res = zip(*values, strict=True)
                parts["ts"].append(np.array(ts, dtype=np.int64))
                net.append(np.array(kg, dtype=np.float64))
                parts["seq"].append(np.array(seq, dtype=np.int64))
                parts["res"].append(
                    np.array([code(x, len(residents) - 1) for x in res], dtype=np.int64)
                )
                dev = devices.setdefault(tags.get("device", ""), len(devices))
                parts["site"].append(np.full(n, site, dtype=np.int64))
                parts["cat"].append(
                    np.full(n, self.cat_idx.get(tags.get("category", ""), -1), dtype=np.int64)
                )
                parts["dev"].append(np.full(n, dev, dtype=np.int64))
        col = {k: np.concatenate(v) if v else np.zeros(0, dtype=np.int64) for k, v in parts.items()}
        r = Readings(
            ts_ms=col["ts"],
            site=col["site"],
            category=col["cat"],
            device=col["dev"],
            seq=col["seq"],
            net_mg=kg_to_mg(np.concatenate(net)) if net else np.zeros(0, dtype=np.int64),
            resident=col["res"],
        )
        return r, [x for x in residents if x is not None]

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
