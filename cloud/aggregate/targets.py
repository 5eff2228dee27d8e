"""The plan's three targets per Shanghai day, from an area × category roll-up; pure NumPy.

Rules (docs/aggregation.md): recyclables tonnes/day vs a goal; dry waste per day over the last
window vs the same window a year (365 days) earlier or a configured baseline; sorting
effectiveness = share of areas whose day meets the sorting standard.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from contract import CATEGORIES

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
DRY, WET, RECYCLABLE, HAZARDOUS = (
    CATEGORIES.index(c) for c in ("dry", "wet", "recyclable", "hazardous")
)
YEAR_DAYS = 365
MG_PER_TONNE = 1e9


@dataclass(frozen=True)
class TargetRules:
    """Goals and the sorting standard; the defaults of settings.TargetSettings, which builds it (`rules()`)."""

    recyclable_tonnes_per_day: float = 80.0
    dry_change_pct: float = -20.0
    dry_window_days: int = 30
    dry_baseline_tonnes_per_day: float | None = None
    dry_year_coverage: float = 0.8
    sorting_pct: float = 85.0
    sorting_min_deposits: int = 20
    sorting_min_wet_share: float = 0.30
    sorting_max_dry_share: float = 0.55
    sorting_max_hazardous_share: float = 0.05
    chain_window_h: float = (
        12.0  # a load re-weighed at the next weighbridge within this (official.py)
    )
    # sorting effectiveness from inspections: each place's latest check in the days ending here
    inspection_window_days: int = 30


@dataclass(frozen=True)
class DayTargets:
    """The three targets of one day."""

    day: int
    recyclable_tonnes: float
    recyclable_met: bool
    dry_tonnes_per_day: float
    dry_reference_tonnes_per_day: float | None
    dry_reference: str | None  # "year_earlier" | "baseline" | None (no reference yet)
    dry_change_pct: float | None
    dry_met: bool | None
    sorting_areas_meeting: int
    sorting_areas: int
    sorting_pct: float
    sorting_met: bool


def meets_standard(net_mg: I64, deposits: I64, rules: TargetRules) -> npt.NDArray[np.bool_]:
    """Which (…, area) cells meet the sorting standard, from (…, area, category) weights and counts.

    A cell meets it when it has at least sorting_min_deposits deposits, wet waste is at least
    sorting_min_wet_share of its weight, dry at most sorting_max_dry_share, and hazardous at most
    sorting_max_hazardous_share (a heavy hazardous bin means mixed-in residual waste).
    """
    total = net_mg[..., :4].sum(axis=-1).astype(np.float64)
    count = deposits[..., :4].sum(axis=-1)
    safe = np.where(total > 0, total, 1.0)
    return (
        (count >= rules.sorting_min_deposits)
        & (net_mg[..., WET] / safe >= rules.sorting_min_wet_share)
        & (net_mg[..., DRY] / safe <= rules.sorting_max_dry_share)
        & (net_mg[..., HAZARDOUS] / safe <= rules.sorting_max_hazardous_share)
    )


def _window_sums(x: F64, window: int) -> F64:
    """Sum of x over the `window` elements ending at each index (shorter at the start)."""
    c = np.concatenate(([0.0], np.cumsum(x)))
    i = np.arange(1, x.shape[0] + 1)
    return c[i] - c[np.maximum(i - window, 0)]


@dataclass(frozen=True)
class DryTrend:
    """Dry tonnes per day over the window ending at each day (days with data only) and the same
    window 365 days earlier, with whether that earlier window has enough days of data."""

    mean_now: F64
    mean_ref: F64
    year_ok: npt.NDArray[np.bool_]

    def at(self, i: int, rules: TargetRules) -> tuple[float | None, str | None, float | None]:
        """(reference t/day, "year_earlier" | "baseline" | None, change %) of day index i: the
        year-earlier window when covered, else the configured (2019) baseline, else none."""
        if self.year_ok[i] and self.mean_ref[i] > 0:
            ref, kind = float(self.mean_ref[i]), "year_earlier"
        elif rules.dry_baseline_tonnes_per_day is not None:
            ref, kind = rules.dry_baseline_tonnes_per_day, "baseline"
        else:
            return None, None, None
        return ref, kind, round((float(self.mean_now[i]) / ref - 1.0) * 100.0, 6)


def dry_trend(dry_t: F64, has_data: npt.NDArray[np.bool_], rules: TargetRules) -> DryTrend:
    """The dry-waste trend's windows over consecutive days (index 0 = the first day): one home for
    the rule, whatever the source (station scales or weighbridge disposal tickets)."""
    n_days = dry_t.shape[0]
    w = rules.dry_window_days
    win_sum = _window_sums(np.where(has_data, dry_t, 0.0), w)
    win_days = _window_sums(has_data.astype(np.float64), w)
    mean_now = np.divide(win_sum, win_days, out=np.zeros(n_days), where=win_days > 0)
    ref_idx = np.arange(n_days) - YEAR_DAYS
    valid = ref_idx >= 0
    ref_sum = np.where(valid, win_sum[np.maximum(ref_idx, 0)], 0.0)
    ref_days = np.where(valid, win_days[np.maximum(ref_idx, 0)], 0.0)
    year_ok = ref_days >= rules.dry_year_coverage * w
    mean_ref = np.divide(ref_sum, ref_days, out=np.zeros(n_days), where=ref_days > 0)
    return DryTrend(mean_now, mean_ref, year_ok)


def compute_targets(
    first_day: int, net_mg: I64, deposits: I64, n_areas: int, rules: TargetRules, days: I64
) -> list[DayTargets]:
    """Targets for `days` from a dense cube starting at first_day, shaped (day, area, category).

    The cube holds only the areas (no district row) and at least the 4 categories; it must
    start YEAR_DAYS + window - 1 days before the earliest target day for the year comparison.
    n_areas is the number of areas with waste stations (the denominator of effectiveness).
    """
    if net_mg.shape[0] == 0:
        return []
    net = net_mg[:, :, :4]
    dep = deposits[:, :, :4]
    meeting = meets_standard(net, dep, rules).sum(axis=1)
    return targets_from_district(
        first_day, net.sum(axis=1), dep.sum(axis=1), meeting, n_areas, rules, days
    )


def targets_from_district(
    first_day: int,
    net_mg: I64,
    deposits: I64,
    meeting: I64,
    n_areas: int,
    rules: TargetRules,
    days: I64,
) -> list[DayTargets]:
    """Targets for `days` from the district's (day, category) sums starting at first_day and the
    number of areas meeting the sorting standard each day (what compute_targets derives from
    the area cube; the aggregator reads these from the stored district rows)."""
    n_days = net_mg.shape[0]
    if n_days == 0:
        return []
    recyc_t = net_mg[:, RECYCLABLE] / MG_PER_TONNE
    trend = dry_trend(net_mg[:, DRY] / MG_PER_TONNE, deposits[:, :4].sum(axis=1) > 0, rules)

    out = []
    for day in np.asarray(days, dtype=np.int64):  # one loop step per target day, not per reading
        i = int(day) - first_day
        if not 0 <= i < n_days:
            raise ValueError(f"target day {day} outside the cube")
        ref, kind, change = trend.at(i, rules)
        pct = round(100.0 * int(meeting[i]) / n_areas, 6) if n_areas else 0.0
        out.append(
            DayTargets(
                day=int(day),
                recyclable_tonnes=round(float(recyc_t[i]), 6),
                recyclable_met=bool(recyc_t[i] >= rules.recyclable_tonnes_per_day),
                dry_tonnes_per_day=round(float(trend.mean_now[i]), 6),
                dry_reference_tonnes_per_day=None if ref is None else round(ref, 6),
                dry_reference=kind,
                dry_change_pct=change,
                dry_met=None if change is None else change <= rules.dry_change_pct,
                sorting_areas_meeting=int(meeting[i]),
                sorting_areas=n_areas,
                sorting_pct=pct,
                sorting_met=pct >= rules.sorting_pct,
            )
        )
    return out
