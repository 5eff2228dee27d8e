"""Official targets from weighbridge tickets: the vectorized functions against plain Python.

Each load counted once at its first weighbridge, sums exact to the gram, the dry-disposal trend
with its year-earlier window or the 2019 baseline, the source of each figure, and the
reconciliation against the station scales.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.aggregate.official import (
    KINDS,
    SUBCATEGORIES,
    Tickets,
    counted_mask,
    official_figures,
    reconcile,
    ticket_days,
)
from cloud.aggregate.targets import YEAR_DAYS, DayTargets, TargetRules
from cloud.days import day_start_ms
from contract import CATEGORIES

SH = ZoneInfo("Asia/Shanghai")
BASE_DAY = 20_400  # 2025-11-08
HOUR = 3_600_000
WINDOW = 6 * HOUR


@dataclass
class T:
    """A ticket, as plain Python sees it."""

    device: int
    ticket: int
    ts: int
    gross_ts: int
    site: int
    dest: int
    plate: int
    area: int
    category: int
    sub: int
    net_g: int


def columns(ts: list[T]) -> Tickets:
    def col(name: str) -> np.ndarray:
        return np.array([getattr(x, name) for x in ts], dtype=np.int64)

    return Tickets(
        device=col("device"),
        ticket=col("ticket"),
        ts_ms=col("ts"),
        gross_ts_ms=col("gross_ts"),
        site=col("site"),
        dest=col("dest"),
        plate=col("plate"),
        area=col("area"),
        category=col("category"),
        sub=col("sub"),
        net_g=col("net_g"),
    )


def ref_counted(ts: list[T], window: int) -> list[bool]:
    """Plain loops: first occurrence of (device, ticket); not counted when an earlier distinct
    ticket of the same plate, area, category and sub-category was sent to this ticket's site and
    closed before this truck's gross weighing, at most `window` ms before."""
    seen: set[tuple[int, int]] = set()
    first = []
    for x in ts:
        first.append((x.device, x.ticket) not in seen)
        seen.add((x.device, x.ticket))
    out = []
    for i, b in enumerate(ts):
        if not first[i]:
            out.append(False)
            continue
        reweighed = any(
            first[j]
            and a.dest >= 0
            and a.dest != a.site
            and a.dest == b.site
            and (a.plate, a.area, a.category, a.sub) == (b.plate, b.area, b.category, b.sub)
            and a.ts < b.gross_ts <= a.ts + window
            for j, a in enumerate(ts)
        )
        out.append(not reweighed)
    return out


def shanghai_day(ms: int) -> int:
    d = dt.datetime.fromtimestamp(ms / 1000, SH).date()
    return (d - dt.date(1970, 1, 1)).days


@st.composite
def ticket_sets(draw: st.DrawFn) -> list[T]:
    n = draw(st.integers(0, 40))
    out: list[T] = []
    for k in range(n):
        if out and draw(st.integers(0, 4)) == 0:  # a stored duplicate (maybe other tags)
            src = draw(st.sampled_from(out))
            out.append(T(**{**src.__dict__, "area": draw(st.integers(0, 2))}))
            continue
        if out and draw(st.integers(0, 2)) == 0:  # the same load re-weighed at its destination
            a = draw(st.sampled_from(out))
            gap = draw(st.integers(-HOUR, WINDOW + HOUR))
            gross = a.ts + gap
            out.append(
                T(
                    device=draw(st.integers(0, 3)),
                    ticket=k,
                    ts=gross + draw(st.integers(0, HOUR)),
                    gross_ts=gross,
                    site=a.dest if a.dest >= 0 else draw(st.integers(0, 3)),
                    dest=draw(st.integers(-1, 3)),
                    plate=a.plate if draw(st.booleans()) else draw(st.integers(0, 3)),
                    area=a.area,
                    category=a.category,
                    sub=a.sub,
                    net_g=draw(st.integers(1, 200_000_000)),
                )
            )
            continue
        cat = draw(st.integers(0, 3))
        ts = day_start_ms(BASE_DAY) + draw(st.integers(-2 * HOUR, 50 * HOUR))
        out.append(
            T(
                device=draw(st.integers(0, 3)),
                ticket=k,
                ts=ts,
                gross_ts=ts - draw(st.integers(0, 2 * HOUR)),
                site=draw(st.integers(0, 3)),
                dest=draw(st.integers(-1, 3)),
                plate=draw(st.integers(0, 3)),
                area=draw(st.integers(0, 2)),
                category=cat,
                sub=draw(st.integers(0, 5)) if CATEGORIES[cat] == "recyclable" else -1,
                net_g=draw(st.integers(1, 200_000_000)),
            )
        )
    return out


@settings(max_examples=300, deadline=None)
@given(ticket_sets())
def test_counted_and_daily_sums_match_plain_python(ts: list[T]) -> None:
    t = columns(ts)
    counted = counted_mask(t, WINDOW)
    want = ref_counted(ts, WINDOW)
    assert counted.tolist() == want
    first_day, n_days, n_areas = BASE_DAY - 1, 4, 3
    got = ticket_days(t, counted, first_day, n_days, n_areas)
    exp_g = np.zeros((n_days, n_areas, len(KINDS)), dtype=np.int64)
    exp_loads = np.zeros_like(exp_g)
    exp_tickets = np.zeros_like(exp_g)
    seen: set[tuple[int, int]] = set()
    for x, c in zip(ts, want, strict=True):
        d = shanghai_day(x.ts) - first_day
        new = (x.device, x.ticket) not in seen
        seen.add((x.device, x.ticket))
        if not (0 <= d < n_days) or not new:
            continue
        kinds = [x.category] + ([len(CATEGORIES) + x.sub] if x.sub >= 0 else [])
        for k in kinds:
            exp_tickets[d, x.area, k] += 1
            if c:
                exp_g[d, x.area, k] += x.net_g
                exp_loads[d, x.area, k] += 1
    assert (got.net_g == exp_g).all()  # to the gram
    assert (got.loads == exp_loads).all()
    assert (got.tickets == exp_tickets).all()
    recyc = CATEGORIES.index("recyclable")
    assert (got.net_g[..., len(CATEGORIES) :].sum(axis=-1) == got.net_g[..., recyc]).all()


def test_a_chain_counts_at_the_first_weighbridge_only() -> None:
    t0 = day_start_ms(BASE_DAY) + 10 * HOUR
    a = T(0, 1, t0, t0 - HOUR, site=0, dest=1, plate=7, area=0, category=2, sub=0, net_g=5_360_001)
    b = T(1, 1, t0 + HOUR, t0 + HOUR // 2, 1, 2, 7, 0, 2, 0, 5_300_000)
    c = T(2, 1, t0 + 3 * HOUR, t0 + 2 * HOUR, 2, -1, 7, 0, 2, 0, 5_290_000)
    late = T(1, 2, t0 + 9 * HOUR, t0 + 8 * HOUR, 1, -1, 7, 0, 2, 0, 4_000_000)  # beyond window
    other = T(1, 3, t0 + 2 * HOUR, t0 + HOUR, 1, -1, 8, 0, 2, 0, 1_000_000)  # another plate
    t = columns([a, b, c, late, other])
    assert counted_mask(t, WINDOW).tolist() == [True, False, False, True, True]


def scale_day(day: int) -> DayTargets:
    return DayTargets(day, 1.5, False, 2.0, None, None, None, None, 3, 4, 75.0, False)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 3), min_size=YEAR_DAYS + 8, max_size=YEAR_DAYS + 8),
    st.integers(1, 4),
    st.one_of(st.none(), st.floats(1.0, 200.0)),
)
def test_figures_use_tickets_with_the_dry_trend_rule(
    pattern: list[int], window: int, baseline: float | None
) -> None:
    rules = TargetRules(
        dry_window_days=window, dry_baseline_tonnes_per_day=baseline, dry_year_coverage=0.5
    )
    n = len(pattern)
    g = np.zeros((n, len(KINDS)), dtype=np.int64)
    tickets = np.array([1 if p else 0 for p in pattern], dtype=np.int64)
    for i, p in enumerate(pattern):
        if p:
            g[i, CATEGORIES.index("dry")] = p * 40_000_000 + i
            g[i, CATEGORIES.index("recyclable")] = p * 30_000_123
    days = list(range(YEAR_DAYS, n))
    figs = official_figures(0, g, tickets, [scale_day(d) for d in days], rules)
    for f, d in zip(figs, days, strict=True):
        assert f.sorting_source == "station_scales"
        assert f.scale == scale_day(d)
        if not tickets[d]:
            assert f.recyclable_source == f.dry_source == "station_scales"
            assert f.targets == scale_day(d)
            continue
        assert f.recyclable_source == f.dry_source == "weighbridge"
        assert f.weighbridge_recyclable_g == int(g[d, CATEGORIES.index("recyclable")])
        assert f.targets.recyclable_tonnes == round(g[d, 2] / 1e6, 6)

        def days_with(lo: int, hi: int) -> list[int]:
            return [x for x in range(lo, hi + 1) if x >= 0 and tickets[x]]

        now = days_with(d - window + 1, d)
        mean_now = sum(int(g[x, 0]) for x in now) / 1e6 / len(now)
        earlier = days_with(d - YEAR_DAYS - window + 1, d - YEAR_DAYS)
        assert math.isclose(f.targets.dry_tonnes_per_day, mean_now, abs_tol=1e-6)  # 6 decimals
        if len(earlier) >= 0.5 * window and earlier:
            ref = sum(int(g[x, 0]) for x in earlier) / 1e6 / len(earlier)
            assert f.targets.dry_reference == "year_earlier"
        elif baseline is not None:
            ref = baseline
            assert f.targets.dry_reference == "baseline"
        else:
            assert f.targets.dry_reference is None and f.targets.dry_change_pct is None
            continue
        assert f.targets.dry_change_pct is not None
        assert math.isclose(f.targets.dry_change_pct, (mean_now / ref - 1) * 100, abs_tol=1e-5)
        assert f.targets.dry_met == (f.targets.dry_change_pct <= rules.dry_change_pct)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**12), st.integers(0, 10**9)), min_size=8, max_size=8))
def test_reconcile_matches_plain_python(cells: list[tuple[int, int]]) -> None:
    scale_mg = np.array([c[0] for c in cells], dtype=np.int64).reshape(2, 4)
    wb_g = np.array([c[1] for c in cells], dtype=np.int64).reshape(2, 4)
    gaps = reconcile(scale_mg, wb_g)
    for a in range(3):
        for c in range(5):
            areas = [a] if a < 2 else [0, 1]
            cats = [c] if c < 4 else [0, 1, 2, 3]
            s = (sum(int(scale_mg[x, y]) for x in areas for y in cats) + 500) // 1000
            w = sum(int(wb_g[x, y]) for x in areas for y in cats)
            assert gaps.scale_g[a, c] == s and gaps.weighbridge_g[a, c] == w
            assert gaps.diff_g[a, c] == w - s
            if s:
                assert math.isclose(gaps.diff_pct[a, c], 100 * (w - s) / s, rel_tol=1e-12)
            else:
                assert math.isnan(gaps.diff_pct[a, c])


def test_subcategories_are_the_contracts() -> None:
    assert SUBCATEGORIES == ("paper", "plastic", "metal", "glass", "textile", "other")
