"""The targets as the city counts them, from weighbridge tickets; pure NumPy (docs/aggregation.md).

- **Each load once, at the first weighbridge that sees it.** A ticket B is a *re-weighing* of an
  earlier ticket A (so B is not counted) when both have the same plate, source area, category and
  sub-category, A's destination is B's weighbridge (A's own site excluded), and B's loaded truck
  was weighed (B.gross_ts) after A closed (A.ts) and at most `chain_window_h` hours later. A chain
  A → B → C counts A only. Stored duplicates of a ticket (same `(device, ticket)`) count once.
- A ticket counts on the Shanghai day it closed (`ts`), in grams, exactly (integer sums).
- **Which source a figure uses** (`pick_*`): weighbridge tickets when the day has any ticket,
  else the station scales; sorting effectiveness is the inspection rate when any place was
  inspected in the window, else the station-scale proxy (`pick_sorting`, the one place that
  chooses it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from cloud.aggregate.targets import DayTargets, TargetRules, dry_trend
from cloud.aggregate.tonnage import unique_mask
from cloud.days import DAY_MS, day_number
from cloud.inspections.effectiveness import Rate
from contract import CATEGORIES
from contract.models import Subcategory

I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]
SUBCATEGORIES: tuple[str, ...] = tuple(s.value for s in Subcategory)
KINDS: tuple[str, ...] = CATEGORIES + SUBCATEGORIES  # columns: 4 categories, then recyclable subs
DRY_K, RECYCLABLE_K = CATEGORIES.index("dry"), CATEGORIES.index("recyclable")
G_PER_TONNE = 1_000_000
HOUR_MS = 3_600_000
_TIME_BITS = 40  # a batch of tickets spans < 2^40 ms (34 years): key << 40 | time fits int64

Source = Literal["weighbridge", "station_scales", "inspections"]


@dataclass(frozen=True)
class Tickets:
    """Weighbridge tickets as columns. Places (weighbridge sites and destinations) share one code
    space; dest is -1 when the destination is not a known place; sub is -1 except for recyclables."""

    device: I64
    ticket: I64
    ts_ms: I64
    gross_ts_ms: I64
    site: I64
    dest: I64
    plate: I64
    area: I64
    category: I64
    sub: I64
    net_g: I64

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])


@dataclass(frozen=True)
class TicketDays:
    """Per (day, source area, kind) from first_day: counted grams, counted loads, and every
    distinct stored ticket (re-weighings included). kind = KINDS (categories, then subcategories)."""

    first_day: int
    net_g: I64
    loads: I64
    tickets: I64


def _codes(keys: list[I64]) -> I64:
    """One int code per distinct row of the stacked key columns."""
    if keys[0].shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    _, inv = np.unique(np.stack(keys, axis=1), axis=0, return_inverse=True)
    return inv.reshape(-1).astype(np.int64)


def counted_mask(t: Tickets, chain_window_ms: int) -> Mask:
    """Which tickets count: distinct (device, ticket), first occurrence, and not a re-weighing of
    an earlier ticket of the same load (module docstring). Linear apart from one sort."""
    n = len(t)
    keep = unique_mask(t.device, t.ticket) if n else np.zeros(0, dtype=np.bool_)
    if n == 0:
        return keep
    idx = np.flatnonzero(keep)
    pred = idx[(t.dest[idx] >= 0) & (t.dest[idx] != t.site[idx])]
    if pred.shape[0] == 0:
        return keep
    # one key space: (plate, area, category, sub, place) of A's destination and of B's site
    cols = [np.concatenate((c[pred], c[idx])) for c in (t.plate, t.area, t.category, t.sub)]
    cols.append(np.concatenate((t.dest[pred], t.site[idx])))
    code = _codes(cols)
    code_a, code_b = code[: pred.shape[0]], code[pred.shape[0] :]
    t0 = int(min(t.ts_ms.min(), t.gross_ts_ms.min()))
    span = int(max(t.ts_ms.max(), t.gross_ts_ms.max())) - t0
    if span >= 1 << _TIME_BITS or int(code.max()) >= 1 << (62 - _TIME_BITS):
        raise ValueError("tickets span more than 2^40 ms or have more than 2^22 load keys")
    a_key = np.sort((code_a << _TIME_BITS) | (t.ts_ms[pred] - t0))
    b_key = (code_b << _TIME_BITS) | (t.gross_ts_ms[idx] - t0)
    j = np.searchsorted(a_key, b_key, side="left") - 1  # the latest A closed strictly before
    found = j >= 0
    a = a_key[np.maximum(j, 0)]
    same_key = (a >> _TIME_BITS) == code_b
    gap = (b_key & ((1 << _TIME_BITS) - 1)) - (a & ((1 << _TIME_BITS) - 1))
    reweighed = found & same_key & (gap <= chain_window_ms)
    out = keep.copy()
    out[idx[reweighed]] = False
    return out


def ticket_days(t: Tickets, counted: Mask, first_day: int, n_days: int, n_areas: int) -> TicketDays:
    """Sum counted tickets per (day, source area, kind) for days first_day .. first_day+n_days-1
    (tickets on other days are left out): exact integer grams (float64 bincount of integers,
    exact below 2^53 g)."""
    n_kinds = len(KINDS)
    shape = (n_days, n_areas, n_kinds)
    size = n_days * n_areas * n_kinds
    distinct = unique_mask(t.device, t.ticket) if len(t) else np.zeros(0, dtype=np.bool_)
    day = day_number(t.ts_ms).astype(np.int64) - first_day
    inside = (day >= 0) & (day < n_days) & distinct
    cell = (day * n_areas + t.area) * n_kinds
    is_sub = t.sub >= 0

    def binned(mask: Mask, weights: I64 | None) -> I64:
        out = np.zeros(size, dtype=np.float64)
        for col, m in ((t.category, mask), (len(CATEGORIES) + t.sub, mask & is_sub)):
            w = None if weights is None else weights[m].astype(np.float64)
            out += np.bincount((cell + col)[m], weights=w, minlength=size)
        return np.rint(out).astype(np.int64).reshape(shape)

    use = inside & counted
    return TicketDays(first_day, binned(use, t.net_g), binned(use, None), binned(inside, None))


# -- the figures each target shows, and where they come from --------------------------------


@dataclass(frozen=True)
class Figures:
    """One day's targets as shown: `targets` holds the headline figures (from the sources named),
    `scale` the station-scale indicator beside them, and the weighbridge's exact grams."""

    targets: DayTargets
    scale: DayTargets
    recyclable_source: Source
    dry_source: Source
    sorting_source: Source
    weighbridge_recyclable_g: int | None = None
    weighbridge_subcategory_g: dict[str, int] | None = None
    weighbridge_dry_g: int | None = None
    weighbridge_tickets: int = 0


def pick_sorting(
    scale: DayTargets, inspected: Rate | None, rules: TargetRules
) -> tuple[DayTargets, Source]:
    """The sorting-effectiveness figure and its source: the one place that chooses it. The
    inspection rate (实效达标率: places whose latest check in the window is 达标, over the places
    inspected; docs/inspections.md) when any place was inspected in the window; else the
    station-scale proxy (share of areas meeting the weight-based standard). With inspections the
    `sorting_areas*` fields count places (the API names the source)."""
    if inspected is None or inspected.places == 0:
        return scale, "station_scales"
    pct = 100.0 * inspected.passed / inspected.places
    return replace(
        scale,
        sorting_areas_meeting=inspected.passed,
        sorting_areas=inspected.places,
        sorting_pct=round(pct, 2),
        sorting_met=pct >= rules.sorting_pct,
    ), "inspections"


def official_figures(
    first_day: int,
    district_g: I64,
    tickets: I64,
    scale: list[DayTargets],
    rules: TargetRules,
    inspected: Mapping[int, Rate] | None = None,
) -> list[Figures]:
    """The figures of each day of `scale` (the station-scale targets, computed by
    targets_from_district) from the district's weighbridge (day, kind) grams and ticket counts
    starting at first_day (the same days back as the scale cube: the year-earlier dry window).

    Recyclables and dry disposal come from the weighbridge on a day with any ticket (counted or
    re-weighed), else from the station scales. The dry trend over weighbridge days uses the same
    rule as the scales' (targets.dry_trend): days with tickets only, the year-earlier window when
    covered, else the configured 2019 baseline."""
    n_days = district_g.shape[0]
    has = tickets > 0
    trend = dry_trend(district_g[:, DRY_K] / G_PER_TONNE, has, rules)
    out = []
    for s in scale:  # one step per target day
        i = s.day - first_day
        if not 0 <= i < n_days:
            raise ValueError(f"target day {s.day} outside the weighbridge days")
        sorting, sorting_source = pick_sorting(s, (inspected or {}).get(s.day), rules)
        head = replace(
            s,
            sorting_areas_meeting=sorting.sorting_areas_meeting,
            sorting_areas=sorting.sorting_areas,
            sorting_pct=sorting.sorting_pct,
            sorting_met=sorting.sorting_met,
        )
        if not has[i]:
            out.append(Figures(head, s, "station_scales", "station_scales", sorting_source))
            continue
        recyc_g = int(district_g[i, RECYCLABLE_K])
        ref, kind, change = trend.at(i, rules)
        head = replace(
            head,
            recyclable_tonnes=round(recyc_g / G_PER_TONNE, 6),
            recyclable_met=recyc_g >= rules.recyclable_tonnes_per_day * G_PER_TONNE,
            dry_tonnes_per_day=round(float(trend.mean_now[i]), 6),
            dry_reference_tonnes_per_day=None if ref is None else round(ref, 6),
            dry_reference=kind,
            dry_change_pct=change,
            dry_met=None if change is None else change <= rules.dry_change_pct,
        )
        subs = {
            name: int(district_g[i, len(CATEGORIES) + k]) for k, name in enumerate(SUBCATEGORIES)
        }
        out.append(
            Figures(
                head,
                s,
                "weighbridge",
                "weighbridge",
                sorting_source,
                weighbridge_recyclable_g=recyc_g,
                weighbridge_subcategory_g=subs,
                weighbridge_dry_g=int(district_g[i, DRY_K]),
                weighbridge_tickets=int(tickets[i]),
            )
        )
    return out


# -- reconciliation: station scales vs weighbridge, per (area, category) --------------------


@dataclass(frozen=True)
class Gaps:
    """Per (area, category) of one day: scale grams, weighbridge grams, weighbridge − scale, and
    that difference as % of the scale figure (NaN where the scales weighed nothing)."""

    scale_g: I64
    weighbridge_g: I64
    diff_g: I64
    diff_pct: npt.NDArray[np.float64]


def reconcile(scale_mg: I64, weighbridge_g: I64) -> Gaps:
    """Station-scale milligrams (area, category) against weighbridge grams of the same source
    area (area, category), with an "all" category column and a district row appended (last).
    Scale milligrams are summed exactly, then rounded half up to the gram."""
    s = (_with_all(scale_mg) + 500) // 1000
    w = _with_all(weighbridge_g)
    diff = w - s
    pct = np.full(diff.shape, np.nan)
    np.divide(100.0 * diff, s, out=pct, where=s > 0)
    return Gaps(s, w, diff, pct)


def _with_all(x: I64) -> I64:
    """(area, category) → (area + district row, category + "all" column)."""
    x = np.concatenate((x, x.sum(axis=1, keepdims=True)), axis=1)
    return np.concatenate((x, x.sum(axis=0, keepdims=True)), axis=0)


def chain_window_ms(rules: TargetRules) -> int:
    """The re-weighing window in ms (≤ 24 h: a day's tickets need only the day before)."""
    return min(int(rules.chain_window_h * HOUR_MS), DAY_MS)
