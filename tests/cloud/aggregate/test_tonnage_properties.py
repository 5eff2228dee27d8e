"""Property tests: the vectorized tonnage, roll-ups and distinct residents equal a plain reference."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from zoneinfo import ZoneInfo

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.aggregate.tonnage import Readings, daily_totals, group_cube, unique_mask
from cloud.days import day_start_ms, number_of
from tests.support.tonnage import rows_of_totals

SHANGHAI = ZoneInfo("Asia/Shanghai")
N_SITES, N_CATS, N_AREAS = 5, 4, 3
AREA_OF_SITE = np.array([0, 0, 1, 2, 2], dtype=np.int64)
BASE_DAY = number_of(dt.date(2025, 3, 10))
EPOCH = dt.date(1970, 1, 1)


def ref_day(ts_ms: int) -> int:
    """Shanghai day number by the zone database (independent of cloud.days)."""
    local = (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ts_ms)).astimezone(
        SHANGHAI
    )
    return (local.date() - EPOCH).days


# Timestamps cluster near Shanghai midnights (the boundaries) and spread over four days.
near_midnight = st.builds(
    lambda d, off: day_start_ms(BASE_DAY + d) + off,
    st.integers(0, 4),
    st.integers(-3, 3),
)
anywhere = st.integers(day_start_ms(BASE_DAY), day_start_ms(BASE_DAY + 4) - 1)
reading = st.tuples(
    st.one_of(near_midnight, anywhere),  # ts
    st.integers(0, N_SITES - 1),  # site
    st.integers(0, N_CATS - 1),  # category
    st.integers(0, 3),  # device (per site below)
    st.integers(0, 6),  # seq: small range -> many duplicates
    st.integers(1, 500_000_000),  # net mg
    st.integers(-1, 4),  # resident, -1 = none
)


@st.composite
def stored(draw: st.DrawFn) -> list[tuple[int, ...]]:
    """Readings as the store might hold them: duplicates (same device and seq, maybe another ts:
    a late replay) and arbitrary order."""
    rows = draw(st.lists(reading, max_size=60))
    dups = draw(st.lists(st.sampled_from(rows), max_size=10)) if rows else []
    late = [(r[0] + draw(st.integers(-3 * 86_400_000, 0)), *r[1:]) for r in dups[: len(dups) // 2]]
    out = rows + dups[len(dups) // 2 :] + late
    return draw(st.permutations(out))


def columns(rows: list[tuple[int, ...]]) -> Readings:
    a = np.array(rows, dtype=np.int64).reshape(-1, 7)
    # A device belongs to one site and one category, as in the registry.
    device = (a[:, 1] * N_CATS + a[:, 2]) * 4 + a[:, 3]
    return Readings(
        ts_ms=a[:, 0],
        site=a[:, 1],
        category=a[:, 2],
        device=device,
        seq=a[:, 4],
        net_mg=a[:, 5],
        resident=a[:, 6],
    )


def reference(rows: list[tuple[int, ...]]):
    """Plain Python: first occurrence of (device, seq) wins; sums per day/site/category and roll-ups."""
    seen: set[tuple[int, int]] = set()
    site_tot: dict[tuple[int, int, int], list[int]] = defaultdict(lambda: [0, 0])
    group_tot: dict[tuple[int, int, int], list[int]] = defaultdict(lambda: [0, 0])
    residents: dict[tuple[int, int, int], set[int]] = defaultdict(set)
    for ts, site, cat, dev, seq, mg, res in rows:
        key = ((site * N_CATS + cat) * 4 + dev, seq)
        if key in seen:
            continue
        seen.add(key)
        day = ref_day(ts)
        site_tot[(day, site, cat)][0] += mg
        site_tot[(day, site, cat)][1] += 1
        area = int(AREA_OF_SITE[site])
        for g in (area, N_AREAS):
            for c in (cat, N_CATS):
                group_tot[(day, g, c)][0] += mg
                group_tot[(day, g, c)][1] += 1
                if res >= 0:
                    residents[(day, g, c)].add(res)
    return site_tot, group_tot, residents


def device_of(row: tuple[int, ...]) -> int:
    return (row[1] * N_CATS + row[2]) * 4 + row[3]


def orders(rows: list[tuple[int, ...]]) -> list[list[tuple[int, ...]]]:
    """Any order, time order, and series order (each device's readings together, by time: how the
    runner reads with GROUP BY device)."""
    return [
        rows,
        sorted(rows, key=lambda x: x[0]),
        sorted(rows, key=lambda x: (device_of(x), x[0])),
    ]


@settings(max_examples=300, deadline=None)
@given(stored(), st.sampled_from([1, 2, 3, 7, 65_536]))
def test_daily_totals_equal_reference(rows: list[tuple[int, ...]], block: int) -> None:
    for order in orders(rows):
        site_tot, _, _ = reference(order)
        t = daily_totals(columns(order), N_SITES, N_CATS, block=block)
        assert rows_of_totals(t) == dict(site_tot)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(1, 3), st.integers(0, 3 * 86_400_000)), max_size=60
    ),
    st.sampled_from([1, 2, 5, 65_536]),
    st.data(),
)
def test_series_order_with_and_without_a_redelivered_copy(
    steps: list[tuple[int, int, int]], block: int, data: st.DataObject
) -> None:
    """Series order as the runner reads it (seq increasing per device), long runs crossing block
    edges; sometimes a copy of one reading under another time lands inside its device's run: the
    one-pass proof must accept the first and send the second to the exact fallback."""
    next_seq = [0, 0, 0, 0]
    rows: list[tuple[int, ...]] = []
    for d, step, offset in steps:
        next_seq[d] += step
        rows.append(
            (
                day_start_ms(BASE_DAY) + offset,
                d,
                d % N_CATS,
                0,
                next_seq[d],
                1000 + offset % 997,
                -1,
            )
        )
    rows.sort(key=lambda x: (device_of(x), x[0]))
    for i in range(1, len(rows)):  # time follows seq within a device, as a gateway stamps them
        if device_of(rows[i]) == device_of(rows[i - 1]):
            rows[i] = (rows[i][0], *rows[i][1:4], max(rows[i][4], rows[i - 1][4] + 1), *rows[i][5:])
    if len(rows) > 0 and data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(rows) - 1))
        j = data.draw(st.integers(0, len(rows)))
        rows.insert(j, (rows[i][0] + data.draw(st.integers(-86_400_000, 86_400_000)), *rows[i][1:]))
    site_tot, _, _ = reference(rows)
    t = daily_totals(columns(rows), N_SITES, N_CATS, block=block)
    assert rows_of_totals(t) == dict(site_tot)


@settings(max_examples=300, deadline=None)
@given(stored())
def test_rollups_and_residents_equal_reference(rows: list[tuple[int, ...]]) -> None:
    for order in orders(rows):
        check_rollups(order)


def check_rollups(rows: list[tuple[int, ...]]) -> None:
    _, group_tot, residents = reference(rows)
    r = columns(rows)
    cube = group_cube(daily_totals(r, N_SITES, N_CATS), r, AREA_OF_SITE, N_AREAS, N_CATS)
    got: dict[tuple[int, int, int], list[int]] = {}
    got_res: dict[tuple[int, int, int], int] = {}
    for di, g, c in zip(*np.nonzero(cube.deposits), strict=True):
        key = (cube.first_day + int(di), int(g), int(c))
        got[key] = [int(cube.net_mg[di, g, c]), int(cube.deposits[di, g, c])]
        got_res[key] = int(cube.residents[di, g, c])
    assert got == dict(group_tot)
    assert got_res == {k: len(residents.get(k, ())) for k in group_tot}
    assert not np.any(cube.residents[cube.deposits == 0])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 8)), max_size=80), st.integers(1, 9))
def test_unique_mask_keeps_first_of_each_identity(pairs: list[tuple[int, int]], block: int) -> None:
    a = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    keep = unique_mask(a[:, 0], a[:, 1], block)
    expected, seen = [], set()
    for p in pairs:
        expected.append(p not in seen)
        seen.add(p)
    assert keep.tolist() == expected


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(1, 3)), max_size=60),
    st.integers(1, 7),
    st.sampled_from([1, 1000]),
    st.data(),
)
def test_unique_mask_in_store_order(
    steps: list[tuple[int, int]], block: int, gap: int, data: st.DataObject
) -> None:
    """Readings in store order (seq increasing per device; gap=1000 makes seq too sparse for the
    byte map, so the radix proof decides), sometimes with a redelivered copy: a fast path must
    accept the first and the fallback must catch the second."""
    next_seq = [0, 0, 0, 0]
    dev, seq = [], []
    for d, step in steps:
        next_seq[d] += step * gap
        dev.append(d)
        seq.append(next_seq[d])
    if len(dev) > 0 and data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(dev) - 1))
        j = data.draw(st.integers(0, len(dev)))
        dev.insert(j, dev[i])
        seq.insert(j, seq[i])
    keep = unique_mask(np.array(dev, dtype=np.int64), np.array(seq, dtype=np.int64), block)
    expected, seen = [], set()
    for p in zip(dev, seq, strict=True):
        expected.append(p not in seen)
        seen.add(p)
    assert keep.tolist() == expected


def test_day_boundary_is_shanghai_midnight() -> None:
    midnight = day_start_ms(BASE_DAY + 1)
    r = columns([(midnight - 1, 0, 0, 0, 1, 1000, -1), (midnight, 0, 0, 0, 2, 2000, -1)])
    t = daily_totals(r, N_SITES, N_CATS)
    assert t.day.tolist() == [BASE_DAY, BASE_DAY + 1]
    assert t.net_mg.tolist() == [1000, 2000]


def test_sums_exact_to_the_milligram_at_scale() -> None:
    n = 200_000
    rng = np.random.default_rng(7)
    mg = rng.integers(1, 500_000_000, n)
    r = Readings(
        ts_ms=np.full(n, day_start_ms(BASE_DAY)),
        site=np.zeros(n, np.int64),
        category=np.zeros(n, np.int64),
        device=np.zeros(n, np.int64),
        seq=np.arange(n),
        net_mg=mg,
    )
    assert daily_totals(r, 1, 1).net_mg.tolist() == [int(mg.sum())]


def test_series_order_takes_the_one_pass_proof_and_a_duplicate_does_not() -> None:
    """The bench data (series order, as the runner reads) is proved in one pass; a redelivered copy
    inside a device's run makes the proof fail and the general path count it once."""
    from bench.aggregate import make_readings
    from cloud.aggregate.tonnage import _segment_sums

    r = make_readings(200_000, days=3, sites=20, seed=3)
    assert _segment_sums(r, N_CATS, prove=True, block=4096) is not None
    i = 1234
    dup = Readings(
        *(
            np.insert(a, i + 5, a[i])
            for a in (r.ts_ms, r.site, r.category, r.device, r.seq, r.net_mg)
        )
    )
    assert _segment_sums(dup, N_CATS, prove=True, block=4096) is None
    a, b = daily_totals(r, 20, N_CATS, block=4096), daily_totals(dup, 20, N_CATS, block=4096)
    assert a.net_mg.tolist() == b.net_mg.tolist() and a.deposits.tolist() == b.deposits.tolist()
