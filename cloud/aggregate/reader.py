"""Read stored waste readings and rows from InfluxDB into NumPy columns (the aggregator's input).

No scheduling and no line encoding here: the queries, and the turning of series into `Readings`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cloud import measurements as m
from cloud.aggregate.tonnage import I64, Readings, kg_to_mg
from cloud.days import DAY_MS, day_start_ms
from cloud.influx import InfluxClient

SITES_PER_QUERY = 200  # sites named in one WHERE (site = … OR …): keeps a query short


def _codes(values: list[object]) -> tuple[np.ndarray, I64]:
    """Distinct strings (None becomes "") and each value's index into them."""
    arr = np.array(values, dtype=object)
    arr[np.equal(arr, None)] = ""
    uniq, inv = np.unique(arr.astype(str), return_inverse=True)
    return uniq, inv.reshape(-1).astype(np.int64)


def _indices(values: list[object], table: dict[str, int]) -> I64:
    """Map strings to table indices (-1 for unknown or None), one dict lookup per distinct value."""
    if not values:
        return np.zeros(0, dtype=np.int64)
    uniq, inv = _codes(values)
    lut = np.array([table.get(str(u), -1) for u in uniq], dtype=np.int64)
    return lut[inv]


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
        cols: dict[str, list[object]] = {c: [] for c in ("time", "net_kg", "seq", "resident")}
        tags: dict[str, list[object]] = {t: [] for t in ("device", "site", "category")}
        lengths: list[int] = []
        for q in queries:
            for series in self.influx.query_chunks(q, self.chunk_size):
                if not series.values:
                    continue
                columns = list(zip(*series.values, strict=True))
                for name, values in cols.items():
                    values.extend(columns[series.columns.index(name)])
                for name, values in tags.items():
                    values.append(series.tags.get(name))
                lengths.append(len(series.values))
        return self._columns(cols, tags, lengths)

    def _columns(
        self, cols: dict[str, list[object]], tags: dict[str, list[object]], lengths: list[int]
    ) -> tuple[Readings, list[str]]:
        n = len(cols["time"])
        per = np.array(lengths, dtype=np.int64)
        site = np.repeat(_indices(tags["site"], self.site_idx), per)
        ok = site >= 0  # a site retired from the registry after its data was written is left out
        device = np.repeat(_codes(tags["device"])[1], per) if n else np.zeros(0, dtype=np.int64)
        names, resident = (
            _codes(cols["resident"]) if n else (np.zeros(0, dtype=str), np.zeros(0, dtype=np.int64))
        )
        if names.shape[0] and names[0] == "":  # readings that name no resident
            names, resident = names[1:], resident - 1
        r = Readings(
            ts_ms=np.array(cols["time"], dtype=np.int64)[ok],
            site=site[ok],
            category=np.repeat(_indices(tags["category"], self.cat_idx), per)[ok],
            device=device[ok],
            seq=np.array(cols["seq"], dtype=np.int64)[ok],
            net_mg=kg_to_mg(np.array(cols["net_kg"], dtype=np.float64))[ok],
            resident=resident[ok],
        )
        return r, [str(x) for x in names]

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
