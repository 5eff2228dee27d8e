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


def effectiveness(checks: Sequence[Check]) -> dict[PlaceType | str, Rate]:
    """The rate per place type and "all" (vectorized)."""
    out: dict[PlaceType | str, Rate] = {t: Rate(0, 0) for t in (*PLACE_TYPES, "all")}
    if not checks:
        return out
    keys = [f"{c.kind}\x00{c.place}" for c in checks]
    _, place_code = np.unique(np.array(keys, dtype=object), return_inverse=True)
    _, id_rank = np.unique(np.array([c.id for c in checks], dtype=object), return_inverse=True)
    times = np.fromiter((c.time_ms for c in checks), dtype=np.int64, count=len(checks))
    passed = np.fromiter((c.passed for c in checks), dtype=bool, count=len(checks))
    type_index = {t: i for i, t in enumerate(PLACE_TYPES)}
    types = np.fromiter(
        (type_index[TYPE_OF_KIND[c.kind]] for c in checks), dtype=np.int64, count=len(checks)
    )
    order = np.lexsort((id_rank, times, place_code))  # last key sorts first
    sorted_place = place_code[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = sorted_place[1:] != sorted_place[:-1]  # the last row of each place
    latest = order[last]
    n_types = len(PLACE_TYPES)
    places: npt.NDArray[np.int64] = np.bincount(types[latest], minlength=n_types)
    good: npt.NDArray[np.int64] = np.bincount(
        types[latest], weights=passed[latest].astype(np.int64), minlength=n_types
    ).astype(np.int64)
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
