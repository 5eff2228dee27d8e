"""Aggregation results as line protocol: waste_daily, waste_area_daily and waste_targets points.

Pure: no I/O. The same points (tags, time) come out for the same inputs, which is what makes a
recompute overwrite instead of add.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from cloud import measurements as m
from cloud.aggregate.official import G_PER_TONNE, SUBCATEGORIES, Figures, Gaps, TicketDays
from cloud.aggregate.sorting_gap import SortingComparison
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
    return line(m.WASTE_TARGETS.name, {}, _target_fields(t, r), day_start_ms(t.day) * 1_000_000)


def _target_fields(t: DayTargets, r: TargetRules) -> dict[str, FieldValue | None]:
    return {
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
    }


def figures_line(f: Figures, r: TargetRules) -> str:
    """The waste_targets point of one day with each figure's source (issue 15): the headline
    figures as target_line writes them, plus the sources, the station-scale indicator beside
    the official figures and the weighbridge's exact grams and sub-categories."""
    subs = f.weighbridge_subcategory_g or {}
    fields = _target_fields(f.targets, r) | {
        "recyclable_source": f.recyclable_source,
        "recyclable_g": f.weighbridge_recyclable_g,
        "recyclable_scale_tonnes": f.scale.recyclable_tonnes,
        **{f"recyclable_{k}_tonnes": v / G_PER_TONNE for k, v in subs.items()},
        "dry_source": f.dry_source,
        "dry_disposal_g": f.weighbridge_dry_g,
        "dry_scale_tonnes_per_day_30d": f.scale.dry_tonnes_per_day,
        "dry_scale_change_pct": f.scale.dry_change_pct,
        "sorting_source": f.sorting_source,
        "weighbridge_tickets": f.weighbridge_tickets,
    }
    return line(m.WASTE_TARGETS.name, {}, fields, day_start_ms(f.targets.day) * 1_000_000)


def weighbridge_lines(days: TicketDays, areas: Sequence[str]) -> list[str]:
    """weighbridge_daily points of every day of `days` that has a ticket: per source area with a
    ticket that day, and the district ("all"); per category, recyclable sub-category and "all"."""
    out: list[str] = []
    n_cat = len(CATEGORIES)
    for i in range(days.net_g.shape[0]):
        g, loads, tickets = days.net_g[i], days.loads[i], days.tickets[i]
        if not tickets[:, :n_cat].any():
            continue
        time_ns = day_start_ms(days.first_day + i) * 1_000_000
        rows: list[tuple[int, str]] = [
            (int(a), areas[int(a)]) for a in np.flatnonzero(tickets[:, :n_cat].sum(axis=1))
        ]
        for a, name in [*rows, (-1, ALL)]:
            ga = g.sum(axis=0) if a < 0 else g[a]
            la = loads.sum(axis=0) if a < 0 else loads[a]
            ta = tickets.sum(axis=0) if a < 0 else tickets[a]
            cells = [(CATEGORIES[k], ALL, k) for k in range(n_cat)]
            cells += [("recyclable", s, n_cat + k) for k, s in enumerate(SUBCATEGORIES)]
            for cat, sub, k in cells:
                out.append(_wb_line(name, cat, sub, int(ga[k]), int(la[k]), int(ta[k]), time_ns))
            tg, tl, tt = (int(x[:n_cat].sum()) for x in (ga, la, ta))
            out.append(_wb_line(name, ALL, ALL, tg, tl, tt, time_ns))
    return out


def _wb_line(
    area: str, category: str, sub: str, net_g: int, loads: int, tickets: int, time_ns: int
) -> str:
    return line(
        m.WEIGHBRIDGE_DAILY.name,
        {"area": area, "category": category, "subcategory": sub},
        {"tonnes": net_g / G_PER_TONNE, "net_g": net_g, "loads": loads, "tickets": tickets},
        time_ns,
    )


def reconciliation_lines(
    day: int, gaps: Gaps, areas: Sequence[str], rows: Collection[int]
) -> list[str]:
    """waste_reconciliation points of one day: gaps has one row per name of `areas` then the
    district, one column per category then "all"; the areas of `rows` and the district are written."""
    cats = [*CATEGORIES, ALL]
    time_ns = day_start_ms(day) * 1_000_000
    out = []
    for a, name in [*((a, areas[a]) for a in sorted(rows)), (len(areas), ALL)]:
        for c, cat in enumerate(cats):
            s, w, d = (int(x[a, c]) for x in (gaps.scale_g, gaps.weighbridge_g, gaps.diff_g))
            pct = float(gaps.diff_pct[a, c])
            out.append(
                line(
                    m.WASTE_RECONCILIATION.name,
                    {"area": name, "category": cat},
                    {
                        "scale_g": s,
                        "scale_tonnes": s / G_PER_TONNE,
                        "weighbridge_g": w,
                        "weighbridge_tonnes": w / G_PER_TONNE,
                        "diff_g": d,
                        "diff_tonnes": d / G_PER_TONNE,
                        "diff_pct": None if np.isnan(pct) else round(pct, 6),
                    },
                    time_ns,
                )
            )
    return out


def sorting_comparison_lines(
    day: int, cmp: SortingComparison, areas: Sequence[str], rows: Collection[int]
) -> list[str]:
    """waste_sorting_comparison points of one day, one per area index in `rows`."""
    time_ns = day_start_ms(day) * 1_000_000
    out = []
    for a in sorted(rows):
        inspected = bool(cmp.inspected[a])
        disagree = bool(cmp.disagree[a])
        fields: dict[str, FieldValue | None] = {
            "scale_data": bool(cmp.scale_row[a]),
            "scale_meets": bool(cmp.scale_meets[a]),
            "inspected": inspected,
            "inspection_passed": bool(cmp.passed[a]) if inspected else None,
            "inspection_ms": int(cmp.latest_ms[a]) if inspected else None,
            "disagree": disagree,
            "status": "not_inspected" if not inspected else "disagree" if disagree else "agree",
        }
        out.append(line(m.WASTE_SORTING_COMPARISON.name, {"area": areas[a]}, fields, time_ns))
    return out
