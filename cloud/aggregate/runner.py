"""The aggregator: recompute what the markers say changed, write it back, keep the watermark.

Composes the parts, each readable and testable alone: `reader` (InfluxQL → NumPy columns),
`tonnage` (the pure NumPy kernel), `encode` (results → line protocol), `schedule` (markers,
watermark, dependent target days) and `targets`. Writes are idempotent: a recomputed day
overwrites the same points, so several aggregators may run at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from cloud.aggregate import encode, schedule
from cloud.aggregate.official import (
    chain_window_ms,
    counted_mask,
    official_figures,
    reconcile,
    ticket_days,
)
from cloud.aggregate.pseudonyms import Pseudonyms
from cloud.aggregate.reader import (
    ReadingsReader,
    read_tickets,
    weighbridge_areas,
    weighbridge_district,
)
from cloud.aggregate.schedule import OVERLAP_MS, DirtyWork
from cloud.aggregate.sorting_gap import area_checks, compare_sorting
from cloud.aggregate.targets import YEAR_DAYS, TargetRules, targets_from_district
from cloud.aggregate.tonnage import Readings, daily_totals, group_cube
from cloud.days import date_of, day_start_ms, number_of, today
from cloud.health.daily import recompute_health_days
from cloud.health.suppress import DEFAULT_K
from cloud.health.worklist import health_pass
from cloud.influx import InfluxClient
from cloud.inspections import store as inspection_store
from cloud.inspections.effectiveness import Rate, rates_by_day
from cloud.registry import Registry
from contract import CATEGORIES

log = logging.getLogger(__name__)
COUNTS_EVERY_S = 60.0  # the operators' follow-up counts are rewritten at least this often
ALL = encode.ALL
__all__ = ["ALL", "OVERLAP_MS", "Aggregator", "RunResult", "StageTimes"]


@dataclass(frozen=True)
class RunResult:
    """What one aggregation run did."""

    days: list[dt.date]
    rows: int
    readings: int
    target_days: int = 0


@dataclass
class StageTimes:
    """Where an aggregator's time went (seconds, summed over its runs): what the bench reports."""

    read: float = 0.0  # InfluxDB export of readings, into NumPy columns
    kernel: float = 0.0  # daily_totals + group_cube
    encode: float = 0.0  # line protocol
    write: float = 0.0  # /write of the rows
    rollup: float = 0.0  # district rows from stored area rows (incremental path)
    residents: float = 0.0  # the district's distinct residents, counted by influxd
    targets: float = 0.0
    weighbridge: float = 0.0  # weighbridge_daily and the reconciliation
    readings: int = 0

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            setattr(self, name, getattr(self, name) + time.perf_counter() - t0)


@dataclass(frozen=True)
class Layout:
    """Which area each site is in on a day: names, the site -> area index array, members."""

    area: dict[str, str]
    group_of_site: np.ndarray
    members: dict[str, list[str]]


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
        whole_days: bool = False,
    ) -> None:
        self.influx = influx
        self.whole_days = whole_days  # the former design: a marked day is recomputed whole
        self.health_k = health_k  # operator-visible health cells need this many distinct residents
        self.registry = registry
        self.rules = rules or TargetRules()
        self.chunk_size = chunk_size
        self._today = today_fn
        self._sites = [s.id for s in registry.sites]
        self._areas = [a.id for a in registry.areas]
        self._area_idx = {a: i for i, a in enumerate(self._areas)}
        self._now = self._layout_for(registry.area_of())
        self._has_moves = registry.has_moves()  # the registry is frozen: asked once
        self._layouts: dict[tuple[str, ...], Layout] = {}
        self._waste_sites = {s.id for s in registry.sites if s.kind == "waste"}
        self._wb_sites = {s.id for s in registry.sites if s.kind == "weighbridge"}
        self._cat_idx = {c: i for i, c in enumerate(CATEGORIES)}
        self.reader = ReadingsReader(
            influx, {s: i for i, s in enumerate(self._sites)}, self._cat_idx, chunk_size
        )
        self.target_areas = len(
            {s.area for s in registry.sites if s.kind == "waste" and not s.retired}
        )
        self._target_area_idx = {
            self._area_idx[s.area] for s in registry.sites if s.kind == "waste" and not s.retired
        }
        self.times = StageTimes()
        self._done: set[schedule.Marker] = set()  # markers this aggregator already recomputed
        self._counts_at: tuple[float, dt.date] | None = None  # last follow-up counts: when, day

    # -- which area each site is in, on a day (a moved station keeps its old area before) ------

    def _layout_for(self, area_of: dict[str, str]) -> Layout:
        members: dict[str, list[str]] = {a: [] for a in self._areas}
        for site in self._sites:
            members[area_of[site]].append(site)
        group = np.array([self._area_idx[area_of[s]] for s in self._sites], dtype=np.int64)
        return Layout(area_of, group, members)

    def layout(self, day: int) -> Layout:
        """Site -> area as it was on this Shanghai day (registry area_history)."""
        if not self._has_moves:
            return self._now
        area_of = self.registry.area_of(date_of(day))
        key = tuple(area_of[s] for s in self._sites)
        if key not in self._layouts:
            self._layouts[key] = self._layout_for(area_of)
        return self._layouts[key]

    # -- reading -------------------------------------------------------------------------

    def read_day(self, day: int) -> tuple[Readings, Pseudonyms]:
        """All stored readings of one Shanghai day as columns, in series order (see reader)."""
        return self.reader.read(day)

    # -- one day, whole ----------------------------------------------------------------------

    def _whole_day(self, day: int) -> tuple[int, int]:
        """Recompute and write every site, area and district row of one day from its readings;
        return (rows, readings)."""
        with self.times.stage("read"):
            r, _ = self.reader.read(day)
        if not len(r):
            return 0, 0
        lay = self.layout(day)
        with self.times.stage("kernel"):
            t = daily_totals(r, len(self._sites), len(CATEGORIES))  # one call, as benchmarked
        with self.times.stage("encode"):
            lines = encode.site_lines(t, self._sites, lay.area)
        # the site rows are written while the areas are rolled up (influxd takes them on the
        # other core; the sorts of group_cube release the GIL): a city day has 80,000 of them
        with ThreadPoolExecutor(1, thread_name_prefix="aggregate-write") as pool:
            site_rows = pool.submit(self.influx.write_lines, encode.body(lines))
            with self.times.stage("kernel"):
                cube = group_cube(t, r, lay.group_of_site, len(self._areas), len(CATEGORIES))
            with self.times.stage("encode"):
                area = encode.area_lines(cube, self._areas, self.rules)
            with self.times.stage("write"):
                self.influx.write_lines(encode.body(area))
                site_rows.result()
        self.times.readings += len(r)
        return len(lines) + len(area), len(r)

    # -- one day, the areas of changed sites ---------------------------------------------------

    def _changed_sites(self, day: int, sites: set[str]) -> tuple[int, int]:
        """Recompute the areas of these sites for one day from their readings (the site rows and
        the area rows, exact distinct residents included), then the district rows from the stored
        area rows; return (rows, readings). An area, not a site, is the unit: its distinct
        residents cannot be summed from per-site rows, and an area is a handful of stations."""
        lay = self.layout(day)
        areas = self.areas_of(day, sites)
        members = [s for a in areas for s in lay.members[self._areas[a]]]
        if not members:
            return 0, 0
        if 2 * len(members) > len(self._sites):  # most of the district changed: read it whole
            return self._whole_day(day)
        with self.times.stage("read"):
            r, _ = self.reader.read(day, members)
        if not len(r):
            return 0, 0
        with self.times.stage("kernel"):
            t = daily_totals(r, len(self._sites), len(CATEGORIES))
            cube = group_cube(t, r, lay.group_of_site, len(self._areas), len(CATEGORIES))
        with self.times.stage("encode"):
            lines = encode.site_lines(t, self._sites, lay.area)
            lines += encode.area_lines(cube, self._areas, self.rules, only=set(areas))
        with self.times.stage("write"):
            self.influx.write_lines(encode.body(lines))
        self.times.readings += len(r)
        with self.times.stage("rollup"):
            district = self._district_lines(day)
            self.influx.write_lines(encode.body(district))
        return len(lines) + len(district), len(r)

    def areas_of(self, day: int, sites: Iterable[str]) -> list[int]:
        """The indices of the areas these sites were in on this day, sorted."""
        area = self.layout(day).area
        return sorted({self._area_idx[area[s]] for s in sites if s in area})

    def _inspection_rates(self, days: list[int]) -> dict[int, Rate]:
        """Each target day's inspection rate (sorting effectiveness), from the records database."""
        if not days:
            return {}
        window = self.rules.inspection_window_days
        stored = inspection_store.read(
            self.influx, date_of(min(days) - window + 1), date_of(max(days))
        )
        return rates_by_day([x.check() for x in stored], days, window)

    def _district_lines(self, day: int) -> list[str]:
        """The district's tonnage rows of one day, summed from the stored area rows (exact
        milligrams). Distinct residents cannot be summed: recount_district_residents sets them."""
        net, dep = self.reader.district_sums(day)
        return encode.district_lines(day, net, dep)

    def recount_district_residents(self, days: Iterable[int]) -> int:
        """Count the district's distinct residents of each day in influxd (per category and
        over all; nothing exported, but the whole day is scanned) and write them into the
        district rows; return how many days."""
        n = 0
        for day in sorted(set(days)):
            with self.times.stage("residents"):
                _, dep = self.reader.district_sums(day)
                per_category, total = self.reader.district_residents(day)
                lines = encode.district_residents_lines(day, dep, per_category, total)
                self.influx.write_lines(encode.body(lines))
            n += 1 if lines else 0
        return n

    # -- recompute -----------------------------------------------------------------------------

    def recompute(
        self,
        days: Iterable[int],
        progress: Callable[[int], None] | None = None,
        targets: bool = True,
    ) -> RunResult:
        """Recompute and write tonnage and roll-ups of each whole day, then the targets they touch."""
        work = DirtyWork()
        for d in days:
            work.add_day(d)
        return self.recompute_work(work, progress, targets)

    def recompute_work(
        self,
        work: DirtyWork,
        progress: Callable[[int], None] | None = None,
        targets: bool = True,
    ) -> RunResult:
        """Recompute what `work` names (whole days, or the areas of changed sites), then the
        targets that depend on those days."""
        done: list[dt.date] = []
        rows = readings = 0
        for day in work.days:
            sites = work.sites[day]
            n_rows, n = 0, 0
            if sites is None:
                n_rows, n = self._whole_day(day)
            elif sites - self._wb_sites:
                n_rows, n = self._changed_sites(day, sites - self._wb_sites)
            rows += n_rows
            readings += n
            done.append(date_of(day))
            if progress:
                progress(1)
        wb_days = self.weighbridge_days(work)
        with self.times.stage("weighbridge"):
            rows += self.recompute_weighbridge(wb_days)
            areas = self.changed_areas(work, wb_days)
            days = sorted(areas)
            rows += self.recompute_reconciliation(days, areas)
            rows += self.recompute_sorting_comparison(days, areas)
        n_targets = 0
        if targets and days:
            with self.times.stage("targets"):
                n_targets = self.recompute_targets(self.affected_target_days(days))
        return RunResult(done, rows, readings, n_targets)

    # -- weighbridge tickets and the reconciliation (issue 15) ----------------------------------

    def weighbridge_days(self, work: DirtyWork) -> list[int]:
        """Days whose weighbridge_daily rows may change: each day a weighbridge's tickets (or a
        whole day) were marked, and the day after (a load re-weighed after midnight is counted on
        the earlier day's ticket)."""
        marked = {d for d, sites in work.sites.items() if sites is None or sites & self._wb_sites}
        return sorted(marked | {d + 1 for d in marked})

    def changed_areas(self, work: DirtyWork, wb_days: Iterable[int]) -> dict[int, list[int] | None]:
        """Per day whose reconciliation and sorting comparison may change, the areas whose rows
        may change: those of the marked waste stations, or None (every area) for a whole day
        or a day of weighbridge tickets (a ticket's source area may be any)."""
        out: dict[int, list[int] | None] = {}
        for day in work.days:
            sites = work.sites[day]
            out[day] = None if sites is None else self.areas_of(day, sites & self._waste_sites)
        for day in wb_days:
            out[day] = None
        return out

    def recompute_weighbridge(self, days: list[int]) -> int:
        """Write weighbridge_daily for these days from the stored tickets (each read with the day
        before, where a load's first ticket may be); return the rows written."""
        window = chain_window_ms(self.rules)
        lines: list[str] = []
        for day in days:
            t = read_tickets(self.influx, day - 1, day, self._area_idx)
            if not len(t):
                continue
            counted = counted_mask(t, window)
            lines += encode.weighbridge_lines(
                ticket_days(t, counted, day, 1, len(self._areas)), self._areas
            )
        self.influx.write_lines(encode.body(lines))
        return len(lines)

    def recompute_reconciliation(
        self, days: list[int], areas: dict[int, list[int] | None] | None = None
    ) -> int:
        """Write waste_reconciliation for these days from the stored area rows of both sources,
        and the district; return the rows written. A day whose `areas` are None (the default):
        every area with waste stations (a silent station's area shows its gap) and every area
        with either figure. A day with a list: those areas alone, read alone, the district from
        its stored rows (the other areas' figures did not change: at city size that is a few
        rows instead of 2,500 areas' read and 15,000 lines)."""
        lines: list[str] = []
        for day in days:
            only = (areas or {}).get(day)
            if only is None:
                lines += self._reconciliation_all(day)
            elif only:
                lines += self._reconciliation_of(day, only)
        self.influx.write_lines(encode.body(lines))
        return len(lines)

    def _reconciliation_all(self, day: int) -> list[str]:
        scale, _ = self.reader.area_rows(day, self._area_idx)
        wb = weighbridge_areas(self.influx, day, self._area_idx)
        scale = scale[:, : len(CATEGORIES)]
        if not scale.any() and not wb.any():
            return []
        gaps = reconcile(scale, wb)
        rows = set(np.flatnonzero(scale.any(axis=1) | wb.any(axis=1)).tolist())
        rows |= self._target_area_idx
        return encode.reconciliation_lines(day, gaps, self._areas, rows)

    def _reconciliation_of(self, day: int, areas: list[int]) -> list[str]:
        """The reconciliation rows of some areas and the district: the areas' figures, then one
        more row, the rest of the district (its stored totals less these areas), so that the
        district row `reconcile` appends is the district's, exact to the milligram."""
        names = [self._areas[a] for a in areas]
        scale, _ = self.reader.area_rows(day, self._area_idx, names)
        wb = weighbridge_areas(self.influx, day, self._area_idx, names)
        district_mg, _ = self.reader.district_rows(day, day)
        district_g, _ = weighbridge_district(self.influx, day, day)
        n = len(CATEGORIES)
        scale_c = np.vstack((scale[areas, :n], district_mg[:, :n] - scale[areas, :n].sum(axis=0)))
        wb_c = np.vstack((wb[areas, :n], district_g[:, :n] - wb[areas, :n].sum(axis=0)))
        gaps = reconcile(scale_c, wb_c)
        return encode.reconciliation_lines(day, gaps, [*names, "rest"], range(len(areas)))

    def recompute_sorting_comparison(
        self, days: list[int], areas: dict[int, list[int] | None] | None = None
    ) -> int:
        """Write waste_sorting_comparison for those of these days that have station rows: per area
        with waste stations, with a stored row or with an inspection of place kind "area" in the
        window, the weight-based sorting standard against the latest inspection
        (cloud/aggregate/sorting_gap.py); return the rows written. One read of the inspections
        for all days. A day whose `areas` is a list: those areas alone (their rows changed)."""
        if not days:
            return 0
        window = self.rules.inspection_window_days
        stored = inspection_store.read(
            self.influx, date_of(min(days) - window + 1), date_of(max(days)), place_kind="area"
        )
        checks = area_checks(self._areas, [(x.place, x.time_ms, x.id, x.passed) for x in stored])
        lines: list[str] = []
        for day in days:
            only = (areas or {}).get(day)
            if only is not None and not only:
                continue
            names = None if only is None else [self._areas[a] for a in only]
            has, meets = self.reader.area_standard(day, self._area_idx, names)
            if not has.any():  # no station data that day (as the targets): nothing to compare
                continue
            lo, hi = day_start_ms(day - window + 1), day_start_ms(day + 1)
            cmp = compare_sorting(has, meets, checks, lo, hi)
            if only is None:
                rows = set(np.flatnonzero(has | cmp.inspected).tolist()) | self._target_area_idx
            else:
                rows = set(only)
            lines += encode.sorting_comparison_lines(day, cmp, self._areas, rows)
        self.influx.write_lines(encode.body(lines))
        return len(lines)

    # -- targets ---------------------------------------------------------------------------

    def affected_target_days(self, days: Iterable[int]) -> list[int]:
        """Target days whose inputs include one of `days` (see schedule.affected_target_days)."""
        return schedule.affected_target_days(
            days, self.rules.dry_window_days, number_of(self._today())
        )

    def recompute_targets(self, days: list[int]) -> int:
        """Compute and write waste_targets for those of `days` that have data; return how many.
        Reads the district rows of the windows and, per target day, how many areas met the
        sorting standard (counted by influxd): a few hundred points, whatever the city's size."""
        if not days:
            return 0
        lo = days[0] - YEAR_DAYS - self.rules.dry_window_days + 1
        net, dep = self.reader.district_rows(lo, days[-1])
        meeting = np.zeros(net.shape[0], dtype=np.int64)
        meeting[days[0] - lo :] = self.reader.areas_meeting(days[0], days[-1])
        wb_g, wb_tickets = weighbridge_district(self.influx, lo, days[-1])
        has = (dep.sum(axis=1) > 0) | (wb_tickets > 0)
        wanted = np.array([d for d in days if has[d - lo]], dtype=np.int64)
        result = targets_from_district(lo, net, dep, meeting, self.target_areas, self.rules, wanted)
        inspected = self._inspection_rates([t.day for t in result])
        figures = official_figures(lo, wb_g, wb_tickets, result, self.rules, inspected)
        lines = [encode.figures_line(f, self.rules) for f in figures]
        self.influx.write_lines(encode.body(lines))
        return len(lines)

    # -- scheduling ------------------------------------------------------------------------

    def backfill(
        self, start: dt.date, end: dt.date, progress: Callable[[int], None] | None = None
    ) -> RunResult:
        """Recompute every day from start to end inclusive, then the targets they touch."""
        return self.recompute(range(number_of(start), number_of(end) + 1), progress)

    def _health_days(self, work: DirtyWork) -> list[int]:
        """Days whose markers may come from a health hut (any site not a waste station, or a
        whole-day marker): health_daily is recomputed for those."""
        return [
            d
            for d, sites in work.sites.items()
            if sites is None
            or any(s not in self._waste_sites and s not in self._wb_sites for s in sites)
        ]

    def run_incremental(self, district_residents: bool = True) -> RunResult:
        """Recompute only what new or late readings touched since the last run: the areas of the
        marked sites on the marked days, the district rows and targets that depend on them, and
        the huts' health_daily of those days and their follow-ups (raised readings, today's
        counts); then (unless told not to: `gumei aggregate loop`
        runs it in its own lane, run_district_residents) the district's distinct residents."""
        work, watermark, markers = schedule.dirty_work(self.influx, done=self._done)
        if self.whole_days:
            work = DirtyWork(dict.fromkeys(work.days))
        result = self.recompute_work(work)
        health_days = self._health_days(work)
        recompute_health_days(self.influx, health_days, self.health_k)
        health_pass(  # the follow-ups; the operators' counts when due (_counts_due)
            self.influx, health_days, self._today(), self.health_k, self._counts_due(health_days)
        )
        if district_residents:
            self.recount_district_residents(d for d, s in work.sites.items() if s is not None)
        schedule.write_watermark(self.influx, watermark, len(work), district_residents)
        horizon = watermark - 2 * OVERLAP_MS  # what no later run's marker query reaches
        self._done = {k for k in self._done | markers if k[0] > horizon}
        if len(work):
            log.info(
                "aggregated %d day(s): %d rows from %d readings, %d target day(s)",
                len(work),
                result.rows,
                result.readings,
                result.target_days,
            )
        return result

    def _counts_due(self, health_days: list[int]) -> bool:
        """Whether this run rewrites today's follow-up counts (a fold of the whole worklist, a
        DELETE and a write): when it touched a hut's day, on a new Shanghai day, and otherwise
        at most every COUNTS_EVERY_S (staff actions reach the counts within that). With a run
        every second, rewriting them at every run would be a DELETE a second for nothing."""
        now, day = time.monotonic(), self._today()
        last = self._counts_at
        if health_days or last is None or last[1] != day or now - last[0] >= COUNTS_EVERY_S:
            self._counts_at = (now, day)
            return True
        return False

    def run_district_residents(self) -> int:
        """The slow lane: recount the district's distinct residents of the days marked since its
        own watermark (a whole-day scan in influxd each); return how many days."""
        work, watermark, _ = schedule.dirty_work(self.influx, schedule.RESIDENTS_WATERMARK)
        n = self.recount_district_residents(work.days)
        schedule.write_watermark(self.influx, watermark, len(work), rows=False)
        return n
