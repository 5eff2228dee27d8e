"""Daily tonnage per (Asia/Shanghai day, site, category), vectorized and exact to the milligram."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cloud.days import day_number

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Readings:
    """Columnar readings: one element per stored reading (duplicates allowed)."""

    ts_ms: I64
    site: I64  # index into a site table
    category: I64  # index into CATEGORIES
    device: I64  # index into a device table
    seq: I64
    net_mg: I64  # net weight in integer milligrams

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])


@dataclass(frozen=True)
class DailyTotals:
    """One row per (day, site, category) with at least one reading."""

    day: I64
    site: I64
    category: I64
    net_mg: I64
    deposits: I64


def kg_to_mg(net_kg: F64) -> I64:
    """Kilograms (float) to integer milligrams, rounding to nearest."""
    return np.rint(np.asarray(net_kg, dtype=np.float64) * 1e6).astype(np.int64)


def unique_mask(device: I64, seq: I64) -> npt.NDArray[np.bool_]:
    """Mask keeping the first occurrence of each (device, seq)."""
    n = device.shape[0]
    if n == 0:
        return np.ones(0, dtype=bool)
    order = np.lexsort((seq, device))
    d, s = device[order], seq[order]
    first = np.ones(n, dtype=bool)
    first[1:] = (d[1:] != d[:-1]) | (s[1:] != s[:-1])
    keep = np.empty(n, dtype=bool)
    keep[order] = first
    return keep


def daily_totals(r: Readings, n_sites: int, n_categories: int = 4) -> DailyTotals:
    """Sum net weight and count deposits per (Shanghai day, site, category), deduplicated."""
    empty = np.zeros(0, dtype=np.int64)
    if len(r) == 0:
        return DailyTotals(empty, empty, empty, empty, empty)
    keep = unique_mask(r.device, r.seq)
    day = day_number(r.ts_ms[keep])
    d0 = int(day.min())
    n_days = int(day.max()) - d0 + 1
    key = ((day - d0) * n_sites + r.site[keep]) * n_categories + r.category[keep]
    size = n_days * n_sites * n_categories
    counts = np.bincount(key, minlength=size)
    # float64 sums of integer milligrams are exact below 2**53 mg (9 million tonnes).
    sums = np.bincount(key, weights=r.net_mg[keep].astype(np.float64), minlength=size)
    idx = np.flatnonzero(counts)
    cat = idx % n_categories
    rest = idx // n_categories
    return DailyTotals(
        day=(rest // n_sites + d0).astype(np.int64),
        site=(rest % n_sites).astype(np.int64),
        category=cat.astype(np.int64),
        net_mg=np.rint(sums[idx]).astype(np.int64),
        deposits=counts[idx].astype(np.int64),
    )


def mg_to_tonnes(net_mg: int) -> float:
    """Milligrams to tonnes rounded to the gram (6 decimals)."""
    grams = (int(net_mg) + 500) // 1000 if net_mg >= 0 else -((-int(net_mg) + 500) // 1000)
    return grams / 1_000_000
