"""Feed the aggregation functions from InfluxDB day by day; write waste_daily, waste_area_daily and
waste_targets back, idempotently (a recomputed day overwrites the same points)."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from cloud import measurements as m
from cloud.aggregate.targets import (
    YEAR_DAYS,
    DayTargets,
    TargetRules,
    compute_targets,
    meets_standard,
)
from cloud.aggregate.tonnage import (
    GroupCube,
    Readings,
    daily_totals,
    group_cube,
    kg_to_mg,
    mg_to_grams,
    mg_to_tonnes,
    unique_mask,
)
from cloud.days import DAY_MS, date_of, day_number, day_start_ms, number_of, today
from cloud.health.daily import recompute_health_days
from cloud.health.suppress import DEFAULT_K
from cloud.influx import InfluxClient
from cloud.lineproto import line
from cloud.registry import Registry
from contract import CATEGORIES

log = logging.getLogger(__name__)
OVERLAP_MS = 120_000  # re-read markers this far behind the watermark (clock skew between workers)
ALL = "all"


@dataclass(frozen=True)
class RunResult:
    """What one aggregation run did."""

    days: list[dt.date]
    rows: int
    readings: int
    target_days: int = 0


def _codes(values: list[object]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct strings (None becomes "") and each value's index into them."""
    arr = np.array(values, dtype=object)
    arr[[v is None for v in values]] = ""
    uniq, inv = np.unique(arr.astype(str), return_inverse=True)
    return uniq, inv.reshape(-1).astype(np.int64)


def _indices(values: list[object], table: dict[str, int]) -> np.ndarray:
    """Map strings to table indices (-1 for unknown or None), one dict lookup per distinct value."""
    if not values:
        return np.zeros(0, dtype=np.int64)
    uniq, inv = _codes(values)
    lut = np.array([table.get(str(u), -1) for u in uniq], dtype=np.int64)
    return lut[inv]


class Aggregator:
    """Recomputes daily tonnage, roll-ups and targets; stateless apart from the watermark in InfluxDB.

    Several copies may run at once: recomputing a day twice writes the same points.
    """

    def __init__(
        self,
        influx: InfluxClient,
        registry: Registry,
        rules: TargetRules | None = None,
        chunk_size: int = 50_000,
        today_fn: Callable[[], dt.date] = today,
        health_k: int = DEFAULT_K,
    ) -> None:
        self.influx = influx
        self.health_k = health_k  # operator-visible health cells need this many distinct residents
        self.registry = registry
        self.rules = rules or TargetRules()
        self.chunk_size = chunk_size
        self._today = today_fn
        self._sites = [s.id for s in registry.sites]
        self._site_idx = {s: i for i, s in enumerate(self._sites)}
        self._area = registry.area_of()
        self._areas = [a.id for a in registry.areas]
        self._area_idx = {a: i for i, a in enumerate(self._areas)}
        self._group_of_site = np.array(
            [self._area_idx[s.area] for s in registry.sites], dtype=np.int64
        )
        self._cat_idx = {c: i for i, c in enumerate(CATEGORIES)}
        self.target_areas = len(
            {s.area for s in registry.sites if s.kind == "waste" and not s.retired}
        )

    # -- reading -------------------------------------------------------------------------

    def read_day(self, day: int) -> tuple[Readings, list[str]]:
        """All stored readings of one Shanghai day as columns (chunked query, bounded memory),
        and the table of resident pseudonyms the resident column indexes.

        Read series by series (GROUP BY the tags): each device's readings arrive together and in
        time order, the layout in which daily_totals proves "no duplicate" in one pass, and the
        tags travel once per series instead of once per reading."""
        start = day_start_ms(day)
        q = (
            f"SELECT net_kg, seq, resident FROM {m.WASTE_READING.name} "
            f"WHERE time >= {start}ms AND time < {start + DAY_MS}ms GROUP BY device, site, category"
        )
        cols: dict[str, list[object]] = {c: [] for c in ("time", "net_kg", "seq", "resident")}
        tags: dict[str, list[object]] = {t: [] for t in ("device", "site", "category")}
        lengths: list[int] = []
        for series in self.influx.query_chunks(q, self.chunk_size):
            if not series.values:
                continue
            columns = list(zip(*series.values, strict=True))
            for name, values in cols.items():
                values.extend(columns[series.columns.index(name)])
            for name, values in tags.items():
                values.append(series.tags.get(name))
            lengths.append(len(series.values))
        n = len(cols["time"])
        per = np.array(lengths, dtype=np.int64)
        site = np.repeat(_indices(tags["site"], self._site_idx), per)
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
            category=np.repeat(_indices(tags["category"], self._cat_idx), per)[ok],
            device=device[ok],
            seq=np.array(cols["seq"], dtype=np.int64)[ok],
            net_mg=kg_to_mg(np.array(cols["net_kg"], dtype=np.float64))[ok],
            resident=resident[ok],
        )
        return r, [str(x) for x in names]

    # -- per-day tonnage and roll-ups ------------------------------------------------------

    def _day_lines(self, r: Readings) -> list[str]:
        keep = unique_mask(r.device, r.seq)
        t = daily_totals(r, len(self._sites), len(CATEGORIES), keep)
        lines = [
            line(
                m.WASTE_DAILY.name,
                {
                    "site": self._sites[s],
                    "area": self._area[self._sites[s]],
                    "category": CATEGORIES[c],
                },
                {"tonnes": mg_to_tonnes(mg), "net_g": mg_to_grams(mg), "deposits": int(n)},
                day_start_ms(int(d)) * 1_000_000,
            )
            for d, s, c, mg, n in zip(
                t.day.tolist(),
                t.site.tolist(),
                t.category.tolist(),
                t.net_mg.tolist(),
                t.deposits.tolist(),
                strict=True,
            )
        ]
        cube = group_cube(t, r, self._group_of_site, len(self._areas), len(CATEGORIES), keep)
        lines += self._area_lines(cube)
        return lines

    def _area_lines(self, cube: GroupCube) -> list[str]:
        meets = meets_standard(cube.net_mg[:, :-1, :], cube.deposits[:, :-1, :], self.rules)
        areas = [*self._areas, ALL]
        cats = [*CATEGORIES, ALL]
        lines = []
        for di, g, c in zip(*np.nonzero(cube.deposits), strict=True):  # one step per non-empty cell
            mg = int(cube.net_mg[di, g, c])
            fields: dict[str, float | int | bool | str | None] = {
                "tonnes": mg_to_tonnes(mg),
                "net_g": mg_to_grams(mg),
                "net_mg": mg,
                "deposits": int(cube.deposits[di, g, c]),
                "residents": int(cube.residents[di, g, c]),
            }
            if c == len(CATEGORIES) and g < len(self._areas):
                fields["meets_standard"] = bool(meets[di, g])
            lines.append(
                line(
                    m.WASTE_AREA_DAILY.name,
                    {"area": areas[g], "category": cats[c]},
                    fields,
                    day_start_ms(cube.first_day + int(di)) * 1_000_000,
                )
            )
        return lines

    def recompute(
        self,
        days: Iterable[int],
        progress: Callable[[int], None] | None = None,
        targets: bool = True,
    ) -> RunResult:
        """Recompute and write tonnage and roll-ups of each day, then the targets they touch."""
        done: list[dt.date] = []
        rows = readings = 0
        day_list = sorted(set(days))
        for day in day_list:
            r, _ = self.read_day(day)
            lines = self._day_lines(r) if len(r) else []
            self.influx.write_lines(("\n".join(lines) + "\n").encode() if lines else b"")
            rows += len(lines)
            readings += len(r)
            done.append(date_of(day))
            if progress:
                progress(1)
        n_targets = (
            self.recompute_targets(self.affected_target_days(day_list))
            if targets and day_list
            else 0
        )
        return RunResult(done, rows, readings, n_targets)

    # -- targets ---------------------------------------------------------------------------

    def affected_target_days(self, days: Iterable[int]) -> list[int]:
        """Target days whose inputs include one of `days`: the window after each day, and the same
        window a year later (the dry-waste comparison), up to today."""
        w = self.rules.dry_window_days
        last = number_of(self._today())
        out: set[int] = set()
        for d in days:
            out.update(x for x in range(d, d + w) if x <= last)
            out.update(x for x in range(d + YEAR_DAYS, d + YEAR_DAYS + w) if x <= last)
        return sorted(out)

    def load_area_cube(self, first_day: int, last_day: int) -> tuple[np.ndarray, np.ndarray]:
        """Dense (day, area, category) net_mg and deposits from waste_area_daily (chunked)."""
        n_days = last_day - first_day + 1
        net = np.zeros((n_days, len(self._areas), len(CATEGORIES)), dtype=np.int64)
        dep = np.zeros_like(net)
        q = (
            f"SELECT net_mg, deposits FROM {m.WASTE_AREA_DAILY.name} WHERE area != '{ALL}' AND category != '{ALL}' "
            f"AND time >= {day_start_ms(first_day)}ms AND time < {day_start_ms(last_day + 1)}ms GROUP BY area, category"
        )
        for s in self.influx.query_chunks(q, self.chunk_size):
            a, c = (
                self._area_idx.get(s.tags.get("area", "")),
                self._cat_idx.get(s.tags.get("category", "")),
            )
            if a is None or c is None or not s.values:
                continue
            v = np.array(s.values, dtype=np.int64)
            di = day_number(v[:, 0]) - first_day
            net[di, a, c] = v[:, 1]
            dep[di, a, c] = v[:, 2]
        return net, dep

    def recompute_targets(self, days: list[int]) -> int:
        """Compute and write waste_targets for those of `days` that have data; return how many."""
        if not days:
            return 0
        lo = days[0] - YEAR_DAYS - self.rules.dry_window_days + 1
        net, dep = self.load_area_cube(lo, days[-1])
        has = dep.sum(axis=(1, 2)) > 0
        wanted = np.array([d for d in days if has[d - lo]], dtype=np.int64)
        result = compute_targets(lo, net, dep, self.target_areas, self.rules, wanted)
        lines = [self._target_line(t) for t in result]
        self.influx.write_lines(("\n".join(lines) + "\n").encode() if lines else b"")
        return len(lines)

    def _target_line(self, t: DayTargets) -> str:
        r = self.rules
        return line(
            m.WASTE_TARGETS.name,
            {},
            {
                "recyclable_tonnes": t.recyclable_tonnes,
                "recyclable_goal_tonnes": float(r.recyclable_tonnes_per_day),
                "recyclable_met": t.recyclable_met,
                "dry_tonnes_per_day_30d": t.dry_tonnes_per_day,
                "dry_reference_tonnes_per_day": t.dry_reference_tonnes_per_day,
                "dry_reference": t.dry_reference,
                "dry_change_pct": t.dry_change_pct,
                "dry_goal_change_pct": float(r.dry_change_pct),
                "dry_met": t.dry_met,
                "sorting_areas_meeting": t.sorting_areas_meeting,
                "sorting_areas": t.sorting_areas,
                "sorting_pct": t.sorting_pct,
                "sorting_goal_pct": float(r.sorting_pct),
                "sorting_met": t.sorting_met,
            },
            day_start_ms(t.day) * 1_000_000,
        )

    # -- scheduling ------------------------------------------------------------------------

    def backfill(
        self, start: dt.date, end: dt.date, progress: Callable[[int], None] | None = None
    ) -> RunResult:
        """Recompute every day from start to end inclusive, then the targets they touch."""
        return self.recompute(range(number_of(start), number_of(end) + 1), progress)

    def dirty_days(self) -> tuple[list[int], int]:
        """Days marked dirty since the watermark, and the new watermark to store after the run."""
        new_watermark = time.time_ns() // 1_000_000
        wm = 0
        for s in self.influx.query(f"SELECT last(watermark_ms) FROM {m.AGGREGATOR_STATE.name}"):
            wm = int(s.values[0][1])
        since = max(0, wm - OVERLAP_MS)
        days: set[int] = set()
        for s in self.influx.query(
            f'SELECT points, "day" FROM {m.DIRTY_DAY.name} WHERE time > {since}ms'
        ):
            i = s.columns.index("day")
            days.update(number_of(dt.date.fromisoformat(v[i])) for v in s.values)
        return sorted(days), new_watermark

    def run_incremental(self) -> RunResult:
        """Recompute only the days touched by new or late readings since the last run."""
        days, watermark = self.dirty_days()
        result = self.recompute(days)
        recompute_health_days(
            self.influx, days, self.health_k
        )  # health_daily of huts (the same dirty-day markers)
        self.influx.write_lines(
            (
                line(
                    m.AGGREGATOR_STATE.name,
                    {},
                    {"watermark_ms": watermark, "days": len(days)},
                    watermark * 1_000_000,
                )
                + "\n"
            ).encode()
        )
        if days:
            log.info(
                "aggregated %d day(s): %d rows from %d readings, %d target day(s)",
                len(days),
                result.rows,
                result.readings,
                result.target_days,
            )
        return result
