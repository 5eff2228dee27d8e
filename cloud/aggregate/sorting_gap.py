"""The scale-based sorting indicator against the inspection result, per area and day (issue 15
part 4); pure NumPy, with a plain-Python reference for the tests (docs/aggregation.md).

Per Shanghai day and area:

- **scale**: whether the area's day meets the weight-based sorting standard (`waste_area_daily`
  `meets_standard` on its `category="all"` row). An area with no row that day (no deposits: a
  silent area) does not meet it — the same rule as the sorting proxy of the targets.
- **inspection**: the area's latest inspection of place kind `area` in the `window_days` Shanghai
  days ending that day (ties in time broken by the larger inspection id, as
  `cloud/inspections/effectiveness.py`): inspected or not, 达标 or not.
- **disagree**: inspected, and the scale verdict differs from the inspection's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class AreaChecks:
    """Inspections of place kind `area` as columns: area index (into the aggregator's areas),
    time (ms), a rank that orders the inspection ids, and 达标."""

    area: I64
    time_ms: I64
    id_rank: I64
    passed: Mask

    def __len__(self) -> int:
        return int(self.area.shape[0])


@dataclass(frozen=True)
class SortingComparison:
    """Per area of one day (index = the aggregator's area index)."""

    scale_row: Mask  # the area has a waste_area_daily "all" row that day
    scale_meets: Mask  # ... and it meets the weight-based standard
    inspected: Mask  # the area had an inspection in the window
    passed: Mask  # its latest inspection in the window is 达标 (False where not inspected)
    latest_ms: I64  # the time of that inspection (-1 where not inspected)
    disagree: Mask  # inspected and the scale verdict is not the inspection's


def area_checks(
    areas: Sequence[str],
    checks: Sequence[tuple[str, int, str, bool]],
) -> AreaChecks:
    """Columns from (area id, time ms, inspection id, passed) tuples; areas not in `areas` are
    left out (an inspection of an area the registry does not know)."""
    index = {a: i for i, a in enumerate(areas)}
    mine = [c for c in checks if c[0] in index]
    ids = sorted({c[2] for c in mine})
    rank = {x: i for i, x in enumerate(ids)}
    n = len(mine)
    return AreaChecks(
        np.fromiter((index[c[0]] for c in mine), dtype=np.int64, count=n),
        np.fromiter((c[1] for c in mine), dtype=np.int64, count=n),
        np.fromiter((rank[c[2]] for c in mine), dtype=np.int64, count=n),
        np.fromiter((c[3] for c in mine), dtype=np.bool_, count=n),
    )


def compare_sorting(
    scale_row: Mask, scale_meets: Mask, checks: AreaChecks, lo_ms: int, hi_ms: int
) -> SortingComparison:
    """The comparison of one day: scale verdicts per area (length = areas) against each area's
    latest check with lo_ms <= time < hi_ms. One lexsort; no loop over checks or areas."""
    n_areas = scale_row.shape[0]
    meets = scale_row & scale_meets
    inspected = np.zeros(n_areas, dtype=np.bool_)
    passed = np.zeros(n_areas, dtype=np.bool_)
    latest_ms = np.full(n_areas, -1, dtype=np.int64)
    inside = np.flatnonzero((checks.time_ms >= lo_ms) & (checks.time_ms < hi_ms))
    if inside.shape[0]:
        area = checks.area[inside]
        order = np.lexsort((checks.id_rank[inside], checks.time_ms[inside], area))
        a = area[order]
        last = np.ones(order.shape[0], dtype=np.bool_)
        last[:-1] = a[1:] != a[:-1]  # the last (latest) row of each area
        latest = inside[order[last]]
        where = checks.area[latest]
        inspected[where] = True
        passed[where] = checks.passed[latest]
        latest_ms[where] = checks.time_ms[latest]
    disagree = inspected & (meets != passed)
    return SortingComparison(scale_row.copy(), meets, inspected, passed, latest_ms, disagree)


def compare_sorting_reference(
    scale: dict[int, bool],
    checks: Sequence[tuple[int, int, str, bool]],
    n_areas: int,
    lo_ms: int,
    hi_ms: int,
) -> list[tuple[bool, bool, bool, bool, int, bool]]:
    """The same in plain Python (for the tests): scale = {area: meets} for areas with a row;
    checks = (area, time ms, inspection id, passed). Per area: (row, meets, inspected, passed,
    latest ms or -1, disagree)."""
    latest: dict[int, tuple[int, str, bool]] = {}
    for area, t, ident, ok in checks:
        if lo_ms <= t < hi_ms and (area not in latest or (t, ident) > latest[area][:2]):
            latest[area] = (t, ident, ok)
    out = []
    for a in range(n_areas):
        meets = scale.get(a, False)
        if a in latest:
            t, _, ok = latest[a]
            out.append((a in scale, meets, True, ok, t, meets != ok))
        else:
            out.append((a in scale, meets, False, False, -1, False))
    return out
