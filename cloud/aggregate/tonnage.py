"""Daily tonnage per (Asia/Shanghai day, site, category), area and district roll-ups, deposit counts
and distinct residents: vectorized, deduplicated on (device, seq), exact to the milligram.

Pure NumPy over columns; no Python loop touches individual readings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cloud.days import DAY_MS, SHANGHAI_OFFSET_MS, day_number

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
BLOCK = 1 << 16  # readings per block: keeps the temporaries in cache
SMALL = 4096  # a block this short is proved run by run whatever its layout (a day's last readings)


@dataclass(frozen=True)
class Readings:
    """Columnar readings: one element per stored reading (duplicates allowed)."""

    ts_ms: I64
    site: I64  # index into a site table
    category: I64  # index into CATEGORIES
    device: I64  # index into a device table
    seq: I64
    net_mg: I64  # net weight in integer milligrams
    resident: I64 | None = None  # index into a pseudonym table, -1 when the reading names none

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])

    def take(self, index: Mask | I64) -> Readings:
        """The readings a mask keeps, or at these positions, every column alike."""
        return Readings(
            self.ts_ms[index],
            self.site[index],
            self.category[index],
            self.device[index],
            self.seq[index],
            self.net_mg[index],
            None if self.resident is None else self.resident[index],
        )


@dataclass(frozen=True)
class DailyTotals:
    """One row per (day, site, category) with at least one reading."""

    day: I64
    site: I64
    category: I64
    net_mg: I64
    deposits: I64


@dataclass(frozen=True)
class GroupCube:
    """Dense roll-up over days first_day.. and groups × categories, with totals appended.

    Group index n_groups is the whole district; category index n_categories is every category.
    residents[d, g, c] counts distinct resident pseudonyms (0 when readings name none).
    """

    first_day: int
    net_mg: I64  # shape (days, n_groups + 1, n_categories + 1)
    deposits: I64
    residents: I64

    @property
    def days(self) -> I64:
        return np.arange(self.first_day, self.first_day + self.net_mg.shape[0], dtype=np.int64)


def kg_to_mg(net_kg: F64) -> I64:
    """Kilograms (float) to integer milligrams, rounding to nearest."""
    return np.rint(np.asarray(net_kg, dtype=np.float64) * 1e6).astype(np.int64)


def _increasing_per_device(device: I64, seq: I64, block: int = BLOCK) -> bool:
    """True when seq is strictly increasing within every device in array order (so no (device, seq)
    repeats). Checked block by block with a 16-bit radix sort, carrying each device's last seq."""
    lo, hi = int(device.min()), int(device.max())
    if hi - lo >= 1 << 16:
        return False
    last = np.full(hi - lo + 1, np.iinfo(np.int64).min, dtype=np.int64)
    for i in range(0, device.shape[0], block):
        dev = (device[i : i + block] - lo).astype(np.uint16)
        order = np.argsort(dev, kind="stable")  # radix sort: linear time
        d, s = dev[order], seq[i : i + block][order]
        change = d[1:] != d[:-1]
        if np.any(~change & (s[1:] <= s[:-1])):
            return False
        starts = np.concatenate(([0], np.flatnonzero(change) + 1))
        ends = np.concatenate((starts[1:] - 1, [d.shape[0] - 1]))
        devs = d[starts]
        if np.any(s[starts] <= last[devs]):
            return False
        last[devs] = s[ends]
    return True


def _distinct_in_ranges(device: I64, seq: I64, block: int = BLOCK) -> bool:
    """True when no (device, seq) repeats, proved with a byte map per block: each device's seqs of a
    block fill [min, max] without collision, and its ranges increase from block to block.
    False means "not proved" (ranges overlap, or seqs too sparse for a byte map)."""
    lo, hi = int(device.min()), int(device.max())
    n_dev = hi - lo + 1
    if n_dev > 1 << 20:
        return False
    none = np.iinfo(np.int64).min
    last = np.full(n_dev, none, dtype=np.int64)
    for i in range(0, device.shape[0], block):
        d, s = device[i : i + block] - lo, seq[i : i + block]
        mn = np.full(n_dev, np.iinfo(np.int64).max, dtype=np.int64)
        mx = np.full(n_dev, none, dtype=np.int64)
        np.minimum.at(mn, d, s)
        np.maximum.at(mx, d, s)
        present = mx != none
        if np.any(mn[present] <= last[present]):
            return False
        span = np.where(present, mx - mn + 1, 0)
        total = int(span.sum())
        if total > 4 * d.shape[0]:
            return False
        seen = np.zeros(total, dtype=np.uint8)
        seen[(np.cumsum(span) - span - np.where(present, mn, 0))[d] + s] = 1
        if int(np.count_nonzero(seen)) != d.shape[0]:
            return False
        last[present] = mx[present]
    return True


def _run_heads(d: I64, s: I64, change: Mask) -> I64 | None:
    """Devices that start a run in this slice (after its first reading), or None when seq fails to
    increase strictly within a run or a large slice is cut into many short runs (not series order:
    give up early rather than collect a head per reading)."""
    if not np.all((s[1:] > s[:-1]) | change):
        return None
    heads = d[np.flatnonzero(change) + 1]
    return heads if heads.shape[0] * 4 <= d.shape[0] or d.shape[0] <= SMALL else None


def _all_different(values: list[I64]) -> bool:
    v = np.concatenate(values)
    return bool(np.unique(v).shape[0] == v.shape[0])


def _runs_increasing(device: I64, seq: I64, block: int = BLOCK) -> bool:
    """True when every device's readings form one contiguous run in which seq strictly increases:
    the layout the runner reads (GROUP BY device), where this proof costs two comparisons per reading."""
    n = device.shape[0]
    heads = [device[:1]]
    for i in range(0, n, block):
        lo, j = max(i - 1, 0), min(n, i + block)  # one reading of overlap: runs cross blocks
        d = device[lo:j]
        h = _run_heads(d, seq[lo:j], d[1:] != d[:-1])
        if h is None:
            return False
        heads.append(h)
    return _all_different(heads)


def unique_mask(device: I64, seq: I64, block: int = BLOCK) -> Mask:
    """Mask keeping the first occurrence (in array order) of each (device, seq).

    Fast paths prove there is no duplicate without a full sort: contiguous device runs with
    increasing seq (series order), a byte map over each device's seq range, else a radix check that
    seq increases per device in time order. Otherwise a lexsort finds the first occurrence of each
    identity.
    """
    n = device.shape[0]
    if (
        n == 0
        or _runs_increasing(device, seq, block)
        or _distinct_in_ranges(device, seq, block)
        or _increasing_per_device(device, seq, block)
    ):
        return np.ones(n, dtype=bool)
    order = np.lexsort((np.arange(n), seq, device))
    d, s = device[order], seq[order]
    first = np.ones(n, dtype=bool)
    first[1:] = (d[1:] != d[:-1]) | (s[1:] != s[:-1])
    keep = np.empty(n, dtype=bool)
    keep[order] = first
    return keep


def _day_span(ts_ms: I64) -> tuple[int, int]:
    """First Shanghai day number and how many days the timestamps cover."""
    d0 = int(day_number(int(ts_ms.min())))
    return d0, int(day_number(int(ts_ms.max()))) - d0 + 1


def _is_sorted(ts_ms: I64, block: int = BLOCK) -> bool:
    """True when timestamps never decrease (block by block: another order is seen early)."""
    n = ts_ms.shape[0]
    for i in range(0, n, block):
        t = ts_ms[max(i - 1, 0) : min(n, i + block)]
        if not np.all(t[1:] >= t[:-1]):
            return False
    return True


def _time_order_sums(
    r: Readings, n_categories: int, n_slots: int, d0: int, n_days: int, block: int = BLOCK
) -> tuple[I64, F64]:
    """Counts and weight sums per (day - d0, site, category) of readings in time order: cut at
    Shanghai midnights with a binary search, so no per-reading division is needed."""
    size = n_days * n_slots
    counts = np.zeros(size, dtype=np.int64)
    sums = np.zeros(size, dtype=np.float64)  # integer mg sums are exact below 2**53 mg (9 Mt)
    midnights = (np.arange(d0, d0 + n_days + 1, dtype=np.int64) * DAY_MS) - SHANGHAI_OFFSET_MS
    cuts = np.searchsorted(r.ts_ms, midnights).tolist()
    for day in range(n_days):  # one step per day and block, not per reading
        out = slice(day * n_slots, (day + 1) * n_slots)
        for i in range(cuts[day], cuts[day + 1], block):
            b = slice(i, min(i + block, cuts[day + 1]))
            slot = r.site[b] * n_categories + r.category[b]
            counts[out] += np.bincount(slot, minlength=n_slots)
            sums[out] += np.bincount(slot, weights=r.net_mg[b], minlength=n_slots)
    return counts, sums


@dataclass(frozen=True)
class _Partial:
    """Per-slot contributions: absolute day, slot within the day, readings, milligrams."""

    day: I64
    slot: I64
    count: I64
    net_mg: I64


def _segment_sums(
    r: Readings, n_categories: int, prove: bool, block: int = BLOCK
) -> _Partial | None:
    """Counts and milligram sums over maximal runs of equal (device, site, category, day), in one
    pass of cache-sized blocks (np.add.reduceat per run, no per-reading scatter).

    Made for series order (each device's readings together, in time order: a few runs per device
    and day); a block cut into too many runs falls back to one contribution per reading, so any
    order gives the right sums. With `prove`, the same pass proves no (device, seq) repeats (see
    _runs_increasing) and returns None when it cannot.
    """
    n = len(r)
    parts: list[tuple[I64, I64, I64, I64]] = []
    heads = [r.device[:1]]
    for i in range(0, n, block):
        lo, j = max(i - 1, 0), min(n, i + block)  # one reading of overlap: runs cross blocks
        d = r.device[lo:j]
        dev_change = d[1:] != d[:-1]
        if prove:
            h = _run_heads(d, r.seq[lo:j], dev_change)
            if h is None:
                return None
            heads.append(h)
        day = day_number(r.ts_ms[lo:j])
        site, cat, net = r.site[lo:j], r.category[lo:j], r.net_mg[lo:j]
        cut = dev_change | (site[1:] != site[:-1]) | (cat[1:] != cat[:-1]) | (day[1:] != day[:-1])
        skip = 1 if i > 0 else 0  # index of the block's first reading in these slices
        starts = np.flatnonzero(cut) + 1
        starts = np.concatenate(([skip], starts[starts > skip]))
        if starts.shape[0] * 4 > j - i:  # fragmented (e.g. time order): per reading
            b = slice(skip, None)
            parts.append(
                (day[b], site[b] * n_categories + cat[b], np.ones(j - i, dtype=np.int64), net[b])
            )
            continue
        counts = np.diff(np.append(starts, d.shape[0]))
        parts.append(
            (
                day[starts],
                site[starts] * n_categories + cat[starts],
                counts,
                np.add.reduceat(net, starts),
            )
        )
    if prove and not _all_different(heads):
        return None
    return _Partial(*(np.concatenate(col) for col in zip(*parts, strict=True)))


def _non_empty(counts: I64, sums: F64, d0: int, n_sites: int, n_categories: int) -> DailyTotals:
    """DailyTotals of the non-empty cells of dense (day - d0, site, category) tables."""
    idx = np.flatnonzero(counts)
    rest = idx // n_categories
    return DailyTotals(
        day=rest // n_sites + d0,
        site=rest % n_sites,
        category=idx % n_categories,
        net_mg=np.rint(sums[idx]).astype(np.int64),
        deposits=counts[idx],
    )


def daily_totals(
    r: Readings, n_sites: int, n_categories: int = 4, keep: Mask | None = None, block: int = BLOCK
) -> DailyTotals:
    """Sum net weight and count deposits per (Shanghai day, site, category), deduplicated.

    In series order (as the runner reads) one pass proves there is no duplicate and sums; otherwise
    duplicates are found first (unique_mask), then readings in time order are cut at midnights and
    any other order is summed run by run.
    """
    empty = np.zeros(0, dtype=np.int64)
    if len(r) == 0:
        return DailyTotals(empty, empty, empty, empty, empty)
    n_slots = n_sites * n_categories
    part = _segment_sums(r, n_categories, True, block) if keep is None else None
    if part is None:
        keep = unique_mask(r.device, r.seq, block) if keep is None else keep
        if not keep.all():
            r = r.take(keep)
        if _is_sorted(r.ts_ms, block):
            d0, n_days = _day_span(r.ts_ms)
            counts, sums = _time_order_sums(r, n_categories, n_slots, d0, n_days, block)
            return _non_empty(counts, sums, d0, n_sites, n_categories)
        part = _segment_sums(r, n_categories, False, block)
        assert part is not None
    d0 = int(part.day.min())
    size = (int(part.day.max()) - d0 + 1) * n_slots
    key = (part.day - d0) * n_slots + part.slot
    counts = np.bincount(key, weights=part.count, minlength=size).astype(np.int64)
    sums = np.bincount(key, weights=part.net_mg, minlength=size)  # type: ignore[assignment]  # float64 with weights (numpy stub says ints); exact below 2**53 mg per cell
    return _non_empty(counts, sums, d0, n_sites, n_categories)


def _with_totals(cube: I64) -> I64:
    """Append a district row (last group) and an every-category column (last category)."""
    days, groups, cats = cube.shape
    out = np.zeros((days, groups + 1, cats + 1), dtype=np.int64)
    out[:, :groups, :cats] = cube
    out[:, :groups, cats] = cube.sum(axis=2)
    out[:, groups, :] = out[:, :groups, :].sum(axis=1)
    return out


def _distinct(keys: I64, size: int) -> I64:
    """How many distinct values each bucket (key // 2**32) holds, for buckets 0..size-1."""
    if keys.shape[0] == 0:
        return np.zeros(size, dtype=np.int64)
    return np.bincount(np.unique(keys) >> 32, minlength=size)


def group_cube(
    t: DailyTotals,
    r: Readings,
    group_of_site: I64,
    n_groups: int,
    n_categories: int = 4,
    keep: Mask | None = None,
) -> GroupCube:
    """Roll site totals up to groups (areas) and the district; count distinct residents per cell.

    `t` must be daily_totals(r, ...) of the same readings; `keep` the same dedup mask if known.
    """
    if t.day.shape[0] == 0:
        z = np.zeros((0, n_groups + 1, n_categories + 1), dtype=np.int64)
        return GroupCube(0, z, z, z)
    d0 = int(t.day.min())
    n_days = int(t.day.max()) - d0 + 1
    shape = (n_days, n_groups, n_categories)
    flat = ((t.day - d0) * n_groups + group_of_site[t.site]) * n_categories + t.category
    size = n_days * n_groups * n_categories
    net = np.bincount(flat, weights=t.net_mg.astype(np.float64), minlength=size)
    dep = np.bincount(flat, weights=t.deposits.astype(np.float64), minlength=size)
    residents = np.zeros((n_days, n_groups + 1, n_categories + 1), dtype=np.int64)
    if r.resident is not None and len(r):
        keep = unique_mask(r.device, r.seq) if keep is None else keep
        named = keep & (r.resident >= 0)
        res = r.resident[named]
        day = day_number(r.ts_ms[named]) - d0
        g = group_of_site[r.site[named]]
        c = r.category[named]
        g_all, c_all = n_groups, n_categories
        cells = (n_groups + 1) * (n_categories + 1)
        total = np.zeros(n_days * cells, dtype=np.int64)
        for gg, cc in ((g, c), (g, c_all), (g_all, c), (g_all, c_all)):
            cell = (day * (n_groups + 1) + gg) * (n_categories + 1) + cc
            total += _distinct((cell << 32) | res, n_days * cells)
        residents = total.reshape(n_days, n_groups + 1, n_categories + 1)
    return GroupCube(
        first_day=d0,
        net_mg=_with_totals(np.rint(net).astype(np.int64).reshape(shape)),
        deposits=_with_totals(np.rint(dep).astype(np.int64).reshape(shape)),
        residents=residents,
    )


def mg_to_tonnes(net_mg: int) -> float:
    """Milligrams to tonnes rounded to the gram (6 decimals)."""
    return mg_to_grams(net_mg) / 1_000_000


def mg_to_grams(net_mg: int) -> int:
    """Milligrams to whole grams, half away from zero."""
    grams = (int(net_mg) + 500) // 1000 if net_mg >= 0 else -((-int(net_mg) + 500) // 1000)
    return grams
