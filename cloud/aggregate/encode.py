"""Aggregation results as line protocol: waste_daily, waste_area_daily and waste_targets points.

Pure: no I/O. The same points (tags, time) come out for the same inputs, which is what makes a
recompute overwrite instead of add.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from cloud import measurements as m
from cloud.aggregate.targets import DayTargets, TargetRules, meets_standard
from cloud.aggregate.tonnage import I64, DailyTotals, GroupCube, mg_to_grams, mg_to_tonnes
from cloud.days import day_start_ms
from cloud.lineproto import FieldValue, field_value, line, series_key
from contract import CATEGORIES

ALL = "all"


def body(lines: Sequence[str]) -> bytes:
    """Lines joined into one /write body (empty for none)."""
    return ("\n".join(lines) + "\n").encode() if lines else b""


def site_lines(t: DailyTotals, sites: Sequence[str], area_of: dict[str, str]) -> list[str]:
    """One waste_daily point per (day, site, category) row of `t`: the same lines `line` makes,
    each series key and day time formatted once (a city day has 80,000 rows)."""
    keys: dict[tuple[int, int], str] = {}
    times: dict[int, int] = {}
    out = []
    for d, s, c, mg, n in zip(
        t.day.tolist(),
        t.site.tolist(),
        t.category.tolist(),
        t.net_mg.tolist(),
        t.deposits.tolist(),
        strict=True,
    ):
        key = keys.get((s, c))
        if key is None:
            tags = {"site": sites[s], "area": area_of[sites[s]], "category": CATEGORIES[c]}
            key = keys[s, c] = series_key(m.WASTE_DAILY.name, tags)
        ns = times.get(d)
        if ns is None:
            ns = times[d] = day_start_ms(d) * 1_000_000
        grams = mg_to_grams(mg)
        out.append(
            f"{key} tonnes={field_value(grams / 1_000_000)},net_g={grams}i,net_mg={mg}i,"
            f"deposits={n}i {ns}"
        )
    return out


def area_lines(
    cube: GroupCube,
    areas: Sequence[str],
    rules: TargetRules,
    only: Collection[int] | None = None,
) -> list[str]:
    """waste_area_daily points of every non-empty cell of the cube (group len(areas) = the
    district); with `only`, of those groups alone (e.g. the recomputed areas, not the district)."""
    meets = meets_standard(cube.net_mg[:, :-1, :], cube.deposits[:, :-1, :], rules)
    names = [*areas, ALL]
    cats = [*CATEGORIES, ALL]
    out = []
    for di, g, c in zip(*np.nonzero(cube.deposits), strict=True):  # one step per non-empty cell
        if only is not None and int(g) not in only:
            continue
        mg = int(cube.net_mg[di, g, c])
        fields: dict[str, FieldValue | None] = {
            "tonnes": mg_to_tonnes(mg),
            "net_g": mg_to_grams(mg),
            "net_mg": mg,
            "deposits": int(cube.deposits[di, g, c]),
            "residents": int(cube.residents[di, g, c]),
        }
        if c == len(CATEGORIES) and g < len(areas):
            fields["meets_standard"] = bool(meets[di, g])
        out.append(
            line(
                m.WASTE_AREA_DAILY.name,
                {"area": names[g], "category": cats[c]},
                fields,
                day_start_ms(cube.first_day + int(di)) * 1_000_000,
            )
        )
    return out


def district_lines(day: int, net_mg: I64, deposits: I64) -> list[str]:
    """The district's tonnage and deposits of one day (area "all", per category and "all") from
    per-category sums. No residents field: writing these leaves the stored count as it is (the
    fields of a point merge), district_residents_lines sets it."""
    cats = [*CATEGORIES, ALL]
    net = [*net_mg.tolist(), int(net_mg.sum())]
    dep = [*deposits.tolist(), int(deposits.sum())]
    return [
        line(
            m.WASTE_AREA_DAILY.name,
            {"area": ALL, "category": c},
            {"tonnes": mg_to_tonnes(mg), "net_g": mg_to_grams(mg), "net_mg": mg, "deposits": n},
            day_start_ms(day) * 1_000_000,
        )
        for c, mg, n in zip(cats, net, dep, strict=True)
        if n > 0
    ]


def district_residents_lines(day: int, deposits: I64, residents: I64, total: int) -> list[str]:
    """Only the residents field of the district's points of one day (per category with deposits,
    and "all"); tonnage and deposits stored with them stay as they are."""
    cats = [*CATEGORIES, ALL]
    dep = [*deposits.tolist(), int(deposits.sum())]
    res = [*residents.tolist(), total]
    return [
        line(
            m.WASTE_AREA_DAILY.name,
            {"area": ALL, "category": c},
            {"residents": r},
            day_start_ms(day) * 1_000_000,
        )
        for c, n, r in zip(cats, dep, res, strict=True)
        if n > 0
    ]


def target_line(t: DayTargets, r: TargetRules) -> str:
    """The waste_targets point of one day."""
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
