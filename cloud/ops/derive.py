"""Pure derivations of rule inputs from readings: a bin's fill rate, a station's weekly profile."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cloud.ops.rules import (
    F64,
    HOUR_MS,
    I64,
    WEEK_HOURS,
    collection_number,
    hour_of_week,
)
from contract.days import DAY_MS

RATE_WINDOW_MS = 6 * HOUR_MS  # the fill rate is measured over at most the last 6 h ...
RATE_MIN_SPAN_MS = 30 * 60_000  # ... and only over at least 30 min of readings
EMPTIED_FRACTION = 0.2  # a step down of >= 20 % of capacity is the bin being emptied
PROFILE_WEEKS = 4  # a station's profile is learned from its last 4 weeks


@dataclass(frozen=True)
class FillState:
    """One scale's latest gross weight, when, and its fill rate since it was last emptied (kg/h)."""

    gross_kg: float
    reading_ms: int
    rate_kg_h: float


def fill_state(times_ms: I64, gross_kg: F64, capacity_kg: float) -> FillState | None:
    """From one scale's readings (time order): the latest gross, and the rate at which it rose
    over the last 6 h since its last emptying (0 when that span is under 30 min)."""
    if len(times_ms) == 0:
        return None
    t_last, g_last = int(times_ms[-1]), float(gross_kg[-1])
    drops = np.flatnonzero(np.diff(gross_kg) <= -EMPTIED_FRACTION * capacity_kg)
    start = int(drops[-1]) + 1 if len(drops) else 0
    start = max(start, int(np.searchsorted(times_ms, t_last - RATE_WINDOW_MS)))
    span = t_last - int(times_ms[start])
    if span < RATE_MIN_SPAN_MS:
        return FillState(g_last, t_last, 0.0)
    rate = (g_last - float(gross_kg[start])) / (span / HOUR_MS)
    return FillState(g_last, t_last, max(rate, 0.0))


def weekly_profile(hour_start_ms: I64, counts: F64, end_ms: int) -> tuple[F64, float]:
    """A station's mean deposits in each hour of the week, from hourly counts before end_ms since
    its first deposit (each hour of the week divided by how often it occurred in that span); and
    how many weeks the span is (at most PROFILE_WEEKS)."""
    profile = np.zeros(WEEK_HOURS)
    has = np.flatnonzero(counts > 0)
    if len(has) == 0:
        return profile, 0.0
    first = int(hour_start_ms[has[0]])
    first -= first % HOUR_MS
    weeks = min((end_ms - first) / (WEEK_HOURS * HOUR_MS), float(PROFILE_WEEKS))
    keep = hour_start_ms >= first
    np.add.at(profile, hour_of_week(hour_start_ms[keep]), counts[keep])
    span = np.arange(first, end_ms, HOUR_MS, dtype=np.int64)
    seen = np.bincount(hour_of_week(span), minlength=WEEK_HOURS)
    return profile / np.maximum(seen, 1), weeks


@dataclass(frozen=True)
class DriftFit:
    """A scale's empty-bin weights as a line: how many, the slope (kg/day), the latest value."""

    points: int
    slope_kg_day: float
    latest_kg: float


def empty_weights(
    times_ms: I64, gross_kg: F64, net_kg: F64, hours: tuple[int, ...]
) -> tuple[I64, F64]:
    """From one scale's readings (time order): per collection period that has a reading, the
    time of its first reading and what the bin weighed before that deposit (gross - net): the
    empty bin's weight after that collection."""
    if len(times_ms) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    period = collection_number(times_ms, hours)
    first = np.concatenate([[True], np.diff(period) != 0])
    return times_ms[first], gross_kg[first] - net_kg[first]


def drift_fit(times_ms: I64, empty_kg: F64) -> DriftFit:
    """The least-squares line through the empty weights (time in days); its value at the latest."""
    n = len(times_ms)
    if n == 0:
        return DriftFit(0, 0.0, 0.0)
    if n == 1 or times_ms[-1] == times_ms[0]:
        return DriftFit(n, 0.0, float(empty_kg[-1]))
    x = (times_ms - times_ms[-1]) / DAY_MS
    slope, at_latest = np.polyfit(x, empty_kg, 1)
    return DriftFit(n, float(slope), float(at_latest))
