"""Sorting effectiveness (实效达标率) from inspections, vectorized (NumPy), with a plain reference.

rate = places whose LATEST inspection in the period is 达标 / places inspected in the period,
per place type (residential, unit, public) and overall. A place is (kind, id): a place
inspected twice counts once, by its last check (ties in time broken by the larger inspection id,
so the answer never depends on storage order). No place inspected: rate None, not 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cloud.days import day_start_ms
from cloud.inspections.record import PLACE_TYPES, TYPE_OF_KIND, PlaceKind, PlaceType


@dataclass(frozen=True)
class Check:
    """What the rate needs of one inspection."""

    kind: PlaceKind
    place: str
    time_ms: int
    id: str
    passed: bool


@dataclass(frozen=True)
class Rate:
    """Places inspected, how many of them passed (by their latest check), and the share in %."""

    places: int
    passed: int

    @property
    def pct(self) -> float | None:
        return None if self.places == 0 else 100.0 * self.passed / self.places


def latest_passed(
    place: npt.NDArray[np.int64],
    time_ms: npt.NDArray[np.int64],
    id_rank: npt.NDArray[np.int64],
    kind: npt.NDArray[np.int64],
    passed: npt.NDArray[np.bool_],
    kinds: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The kernel: per kind code, places inspected and places whose latest check (greatest time,
    then id rank) passed. Columns of equal length; codes are small non-negative integers."""
    order = np.lexsort((id_rank, time_ms, place))  # the last key sorts first
    sorted_place = place[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = sorted_place[1:] != sorted_place[:-1]  # the last row of each place
    latest = order[last]
    places = np.bincount(kind[latest], minlength=kinds).astype(np.int64)
    good = np.bincount(kind[latest[passed[latest]]], minlength=kinds).astype(np.int64)
    return places, good


def _codes(values: list[str]) -> npt.NDArray[np.int64]:
    """Dense integer codes in sorted order of the values (a rank that keeps string order)."""
    index = {v: i for i, v in enumerate(sorted(set(values)))}
    return np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))


def effectiveness(checks: Sequence[Check]) -> dict[PlaceType | str, Rate]:
    """The rate per place type and "all": columns from the checks, then the NumPy kernel."""
    out: dict[PlaceType | str, Rate] = {t: Rate(0, 0) for t in (*PLACE_TYPES, "all")}
    if not checks:
        return out
    n = len(checks)
    type_index = {t: i for i, t in enumerate(PLACE_TYPES)}
    places, good = latest_passed(
        _codes([f"{c.kind}\x00{c.place}" for c in checks]),
        np.fromiter((c.time_ms for c in checks), dtype=np.int64, count=n),
        _codes([c.id for c in checks]),
        np.fromiter((type_index[TYPE_OF_KIND[c.kind]] for c in checks), dtype=np.int64, count=n),
        np.fromiter((c.passed for c in checks), dtype=bool, count=n),
        len(PLACE_TYPES),
    )
    for t, i in type_index.items():
        out[t] = Rate(int(places[i]), int(good[i]))
    out["all"] = Rate(int(places.sum()), int(good.sum()))
    return out


def effectiveness_reference(checks: Sequence[Check]) -> dict[PlaceType | str, Rate]:
    """The same in plain Python (for the tests)."""
    latest: dict[tuple[str, str], Check] = {}
    for c in checks:
        k = (c.kind, c.place)
        if k not in latest or (c.time_ms, c.id) > (latest[k].time_ms, latest[k].id):
            latest[k] = c
    out: dict[PlaceType | str, Rate] = {}
    for t in (*PLACE_TYPES, "all"):
        mine = [c for c in latest.values() if t in ("all", TYPE_OF_KIND[c.kind])]
        out[t] = Rate(len(mine), sum(1 for c in mine if c.passed))
    return out


def rates_by_day(checks: Sequence[Check], days: Sequence[int], window_days: int) -> dict[int, Rate]:
    """The overall rate of each Shanghai day: each place's latest check in the window_days days
    ending that day (the sorting target's figure; cloud/aggregate/official.pick_sorting)."""
    out: dict[int, Rate] = {}
    if not checks:
        return out
    times = np.fromiter((c.time_ms for c in checks), dtype=np.int64, count=len(checks))
    for day in days:
        lo, hi = day_start_ms(day - window_days + 1), day_start_ms(day + 1)
        inside = np.flatnonzero((times >= lo) & (times < hi))
        if len(inside):
            out[day] = effectiveness([checks[int(i)] for i in inside])["all"]
    return out
