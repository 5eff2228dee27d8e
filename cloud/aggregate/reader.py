"""Read stored waste readings and rows from InfluxDB into NumPy columns (the aggregator's input).

No scheduling and no line encoding here: the queries, and the turning of series into `Readings`.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from cloud import measurements as m
from cloud.aggregate.official import KINDS, SUBCATEGORIES, Tickets
from cloud.aggregate.pseudonyms import PseudonymCoder, Pseudonyms
from cloud.aggregate.tonnage import F64, I64, Mask, Readings, kg_to_mg
from cloud.days import DAY_MS, day_number, day_start_ms
from cloud.influx import InfluxClient, quote
from contract import CATEGORIES

SITES_PER_QUERY = 200  # sites named in one WHERE (site = … OR …): keeps a query short
AREAS_PER_QUERY = 200  # areas named in one WHERE; more are read whole and picked out


Row = tuple[
    int, float, int, str | None
]  # time (ms), net_kg, seq, resident: readings_query's columns


def day_window(day: int, part: int = 0, parts: int = 1) -> str:
    """The InfluxQL time condition of one Shanghai day, or of its `part`-th of `parts` equal
    slices (whole milliseconds; together they cover the day once)."""
    start = day_start_ms(day)
    lo, hi = start + DAY_MS * part // parts, start + DAY_MS * (part + 1) // parts
    return f"time >= {lo}ms AND time < {hi}ms"


def tag_condition(tag: str, values: Sequence[str]) -> str:
    """`(tag = 'a' OR tag = 'b' …)` for a WHERE clause."""
    return "(" + " OR ".join(f"{tag} = {quote(v)}" for v in values) + ")"


def site_condition(sites: Sequence[str]) -> str:
    """`(site = 'a' OR site = 'b' …)` for a WHERE clause."""
    return tag_condition("site", sites)


def area_condition(areas: Sequence[str] | None) -> str:
    """The areas' rows (not the district's): every area, or `(area = 'a' OR …)` for at most
    AREAS_PER_QUERY of them (more are read whole: `wanted_areas` picks them out)."""
    if areas is None or len(areas) > AREAS_PER_QUERY:
        return "area != 'all'"
    return tag_condition("area", areas)


def wanted_areas(area_idx: dict[str, int], only: Sequence[str] | None) -> dict[str, int]:
    """The area table a read fills: every area, or those of `only`."""
    return area_idx if only is None else {a: area_idx[a] for a in only if a in area_idx}


def readings_query(
    day: int, sites: Sequence[str] | None = None, part: int = 0, parts: int = 1
) -> str:
    """The InfluxQL the aggregator reads a day with (or a time slice of it: day_window): series by
    series (GROUP BY the tags), so each device's readings arrive together and in time order — the
    layout of daily_totals' one-pass proof — and the tags travel once per series instead of once
    per reading."""
    where = day_window(day, part, parts) + (
        f" AND {site_condition(sites)}" if sites is not None else ""
    )
    return (
        f"SELECT net_kg, seq, resident FROM {m.WASTE_READING.name} "
        f"WHERE {where} GROUP BY device, site, category"
    )


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while rows are decoded into columns: the row tuples hold no
    cycles and die within a batch, but the collections their allocation triggers cost ~15 % of
    the client's CPU (the pattern msgspec's documentation suggests for large decodes). Process
    wide for the duration of one read; cyclic garbage of other threads waits until it ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


TIME_PARTS = 2  # a whole day is read as this many time slices at once (influxd: a core each)
BATCH_ROWS = 1024  # rows turned into columns at a time: the batch's tuples stay in cache


class _Columns:
    """Series rows turned into NumPy columns a batch at a time (no list of every value is kept):
    a batch gathers a few series (one at the sub-district's size, a dozen at the city's), so the
    per-series NumPy calls are paid per batch; tags are coded once per series, residents by
    `PseudonymCoder` (NumPy over the batch: no Python-level step per reading)."""

    def __init__(self, batch_rows: int = BATCH_ROWS) -> None:
        self.batch_rows = batch_rows
        self.parts: dict[str, list[I64]] = {k: [] for k in ("ts", "seq", "site", "cat", "dev")}
        self.net: list[F64] = []
        self.devices: dict[str, int] = {}
        self.pseudonyms = PseudonymCoder()
        self.rows: list[Row] = []
        self.counts: list[int] = []
        self.tags: list[tuple[int, int, int]] = []  # (site, category, device) of each series

    def add(self, tags: dict[str, str], values: list[Row], site: int, category: int) -> None:
        dev = self.devices.setdefault(tags.get("device", ""), len(self.devices))
        self.rows += values
        self.counts.append(len(values))
        self.tags.append((site, category, dev))
        if len(self.rows) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        ts, kg, seq, res = zip(*self.rows, strict=True)
        p = self.parts
        p["ts"].append(np.array(ts, dtype=np.int64))
        self.net.append(np.array(kg, dtype=np.float64))
        p["seq"].append(np.array(seq, dtype=np.int64))
        self.pseudonyms.add(res)
        counts = np.array(self.counts, dtype=np.int64)
        for key, column in zip(("site", "cat", "dev"), zip(*self.tags, strict=True), strict=True):
            p[key].append(np.repeat(np.array(column, dtype=np.int64), counts))
        self.rows, self.counts, self.tags = [], [], []

    def extend(self, other: _Columns) -> None:
        """Append another read's columns (its device and pseudonym codes made this read's)."""
        self.flush()
        other.flush()
        remap = np.array(
            [self.devices.setdefault(d, len(self.devices)) for d in other.devices], dtype=np.int64
        )
        for key, parts in other.parts.items():
            self.parts[key] += [remap[x] for x in parts] if key == "dev" else parts
        self.net += other.net
        self.pseudonyms.extend(other.pseudonyms)

    def readings(self) -> tuple[Readings, Pseudonyms]:
        self.flush()
        resident, table = self.pseudonyms.codes()
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
            resident=resident,
        )
        return r, table


@dataclass
class ReadingsReader:
    """Turns stored waste readings into `Readings` columns against the registry's site and
    category tables. Holds no state between calls; thread-safe as the InfluxClient is."""

    influx: InfluxClient
    site_idx: dict[str, int]
    cat_idx: dict[str, int]
    chunk_size: int = 50_000
    sites_per_query: int = SITES_PER_QUERY
    batch_rows: int = BATCH_ROWS
    time_parts: int = TIME_PARTS

    def read(self, day: int, sites: Sequence[str] | None = None) -> tuple[Readings, Pseudonyms]:
        """All stored readings of one Shanghai day (of these sites only, if given) as columns,
        and the table of resident pseudonyms the resident column indexes.

        One chunked MessagePack stream per query (InfluxClient.query_rows). A whole day is read
        as `time_parts` slices of the day at once, one query and one thread each (influxd answers
        each query on one core; two slices keep both busy), their columns joined and put back in
        series order by one stable sort on the device (each device's earlier slice first, so
        still in time order: the one-pass proof holds). Given sites are asked sites_per_query at
        a time, in one stream. Memory is bounded by the columns either way."""
        with gc_paused():
            if sites is None and self.time_parts > 1:
                return self._read_parts(day)
            cols = _Columns(self.batch_rows)
            names = list(sites) if sites is not None else None
            step = self.sites_per_query
            groups = (
                [None]
                if names is None
                else [names[i : i + step] for i in range(0, len(names), step)]
            )
            for group in groups:
                self._stream(cols, readings_query(day, group))
            return cols.readings()

    def _stream(self, cols: _Columns, q: str) -> _Columns:
        for tags, values in self.influx.query_rows(q, Row, self.chunk_size):
            self._add(cols, tags, values)
        return cols

    def _read_parts(self, day: int) -> tuple[Readings, Pseudonyms]:
        n = self.time_parts
        with ThreadPoolExecutor(n, thread_name_prefix="aggregate-read") as pool:
            parts = list(
                pool.map(
                    lambda k: self._stream(
                        _Columns(self.batch_rows), readings_query(day, None, k, n)
                    ),
                    range(n),
                )
            )
        cols = parts[0]
        for other in parts[1:]:
            cols.extend(other)
        r, table = cols.readings()
        return r.take(np.argsort(r.device, kind="stable")), table

    def _add(self, cols: _Columns, tags: dict[str, str], values: list[Row]) -> None:
        site = self.site_idx.get(tags.get("site", ""), -1)
        if values and site >= 0:  # a site no longer in the registry is left out
            cols.add(tags, values, site, self.cat_idx.get(tags.get("category", ""), -1))

    def area_rows(
        self, day: int, area_idx: dict[str, int], only: Sequence[str] | None = None
    ) -> tuple[I64, I64]:
        """The stored per-area rows of one day (category rows, not "all"): dense (area, category)
        net_mg and deposits; with `only`, of those areas alone (the others stay zero)."""
        net = np.zeros((len(area_idx), len(self.cat_idx)), dtype=np.int64)
        dep = np.zeros_like(net)
        q = (
            f"SELECT net_mg, deposits FROM {m.WASTE_AREA_DAILY.name} WHERE {area_condition(only)} "
            f"AND category != 'all' AND {day_window(day)} GROUP BY area, category"
        )
        wanted = wanted_areas(area_idx, only)
        for s in self.influx.query(q):
            a, c = (
                wanted.get(s.tags.get("area", "")),
                self.cat_idx.get(s.tags.get("category", "")),
            )
            if a is None or c is None or not s.values:
                continue
            net[a, c], dep[a, c] = int(s.values[-1][1]), int(s.values[-1][2])
        return net, dep

    def district_sums(self, day: int) -> tuple[I64, I64]:
        """Per category, the sums of the stored area rows of one day (net_mg, deposits), summed
        by influxd: integer fields, so exact; four numbers cross the wire instead of a row per
        area and category (a city has 2,500 areas)."""
        net = np.zeros(len(self.cat_idx), dtype=np.int64)
        dep = np.zeros_like(net)
        q = (
            f"SELECT sum(net_mg), sum(deposits) FROM {m.WASTE_AREA_DAILY.name} WHERE area != 'all' "
            f"AND category != 'all' AND {day_window(day)} GROUP BY category"
        )
        for s in self.influx.query(q):
            c = self.cat_idx.get(s.tags.get("category", ""))
            if c is None or not s.values:
                continue
            net[c], dep[c] = int(s.values[0][1] or 0), int(s.values[0][2] or 0)
        return net, dep

    def area_standard(
        self, day: int, area_idx: dict[str, int], only: Sequence[str] | None = None
    ) -> tuple[Mask, Mask]:
        """Per area of one day: whether it has a stored "all" row, and whether that row meets
        the weight-based sorting standard (meets_standard); with `only`, of those areas alone."""
        has = np.zeros(len(area_idx), dtype=np.bool_)
        meets = np.zeros(len(area_idx), dtype=np.bool_)
        q = (
            f"SELECT meets_standard FROM {m.WASTE_AREA_DAILY.name} WHERE {area_condition(only)} "
            f"AND category = 'all' AND {day_window(day)} GROUP BY area"
        )
        wanted = wanted_areas(area_idx, only)
        for s in self.influx.query(q):
            a = wanted.get(s.tags.get("area", ""))
            if a is None or not s.values:
                continue
            has[a], meets[a] = True, bool(s.values[-1][1])
        return has, meets

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


# -- weighbridge tickets and the rows made from them (issue 15) ---------------------------------

TicketRow = tuple[
    int, int, int, int, str | None, str | None
]  # time, ticket, net_g, gross_ts, plate, destination


def read_tickets(
    influx: InfluxClient, first_day: int, last_day: int, area_idx: dict[str, int]
) -> Tickets:
    """Stored weighbridge tickets closed on days first_day..last_day as columns: places (sites and
    destinations), plates and devices coded by first appearance; a ticket of an area not in the
    registry is left out (ingestion refuses those)."""
    q = (
        f"SELECT ticket, net_g, gross_ts, plate, destination FROM {m.WEIGHBRIDGE_TICKET.name} "
        f"WHERE time >= {day_start_ms(first_day)}ms AND time < {day_start_ms(last_day + 1)}ms "
        "GROUP BY site, device, source_area, category, subcategory"
    )
    cats = {c: i for i, c in enumerate(CATEGORIES)}
    subs = {s: i for i, s in enumerate(SUBCATEGORIES)}
    places: dict[str | None, int] = {}
    plates: dict[str | None, int] = {}
    devices: dict[str, int] = {}
    cols: dict[str, list[int]] = {k: [] for k in Tickets.__dataclass_fields__}

    def code(table: dict[str | None, int], key: str | None) -> int:
        return table.setdefault(key, len(table))

    for tags, rows in influx.query_rows(q, TicketRow):
        area = area_idx.get(tags.get("source_area", ""))
        cat = cats.get(tags.get("category", ""))
        if area is None or cat is None or not rows:
            continue
        sub = subs.get(tags.get("subcategory", ""), -1)
        site = code(places, tags.get("site", ""))
        dev = devices.setdefault(tags.get("device", ""), len(devices))
        for ts, ticket, net_g, gross_ts, plate, dest in rows:
            cols["device"].append(dev)
            cols["ticket"].append(ticket)
            cols["ts_ms"].append(ts)
            cols["gross_ts_ms"].append(gross_ts)
            cols["site"].append(site)
            cols["dest"].append(code(places, dest) if dest else -1)
            cols["plate"].append(code(plates, plate))
            cols["area"].append(area)
            cols["category"].append(cat)
            cols["sub"].append(sub if cat == cats["recyclable"] else -1)
            cols["net_g"].append(net_g)
    return Tickets(**{k: np.array(v, dtype=np.int64) for k, v in cols.items()})


def weighbridge_district(influx: InfluxClient, first_day: int, last_day: int) -> tuple[I64, I64]:
    """The district's stored weighbridge_daily rows: (day, kind) grams (KINDS: categories, then
    recyclable sub-categories) and distinct tickets per day, days first_day..last_day."""
    n_days = last_day - first_day + 1
    kinds = {k: i for i, k in enumerate(KINDS)}
    grams = np.zeros((n_days, len(KINDS)), dtype=np.int64)
    tickets = np.zeros(n_days, dtype=np.int64)
    q = (
        f"SELECT net_g, tickets FROM {m.WEIGHBRIDGE_DAILY.name} WHERE area = 'all' "
        f"AND time >= {day_start_ms(first_day)}ms AND time < {day_start_ms(last_day + 1)}ms "
        "GROUP BY category, subcategory"
    )
    for s in influx.query(q):
        cat, sub = s.tags.get("category", ""), s.tags.get("subcategory", "")
        if not s.values:
            continue
        v = np.array(s.values, dtype=np.int64)
        di = day_number(v[:, 0]) - first_day
        if cat == "all" and sub == "all":
            tickets[di] = v[:, 2]
        elif sub == "all" and cat in kinds:
            grams[di, kinds[cat]] = v[:, 1]
        elif cat == "recyclable" and sub in kinds:
            grams[di, kinds[sub]] = v[:, 1]
    return grams, tickets


def weighbridge_areas(
    influx: InfluxClient, day: int, area_idx: dict[str, int], only: Sequence[str] | None = None
) -> I64:
    """One day's stored weighbridge grams per (source area, category); with `only`, of those
    areas alone (the others stay zero)."""
    out = np.zeros((len(area_idx), len(CATEGORIES)), dtype=np.int64)
    cats = {c: i for i, c in enumerate(CATEGORIES)}
    q = (
        f"SELECT net_g FROM {m.WEIGHBRIDGE_DAILY.name} WHERE {area_condition(only)} "
        f"AND category != 'all' AND subcategory = 'all' AND {day_window(day)} GROUP BY area, category"
    )
    wanted = wanted_areas(area_idx, only)
    for s in influx.query(q):
        a, c = wanted.get(s.tags.get("area", "")), cats.get(s.tags.get("category", ""))
        if a is not None and c is not None and s.values:
            out[a, c] = int(s.values[-1][1])
    return out
