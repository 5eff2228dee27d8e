"""The operations rules, as code: one table (`RULES`), each rule a pure condition over its inputs.

A rule looks at one kind of subject (a scale, a site, a worker, a target) and says, per subject,
whether its condition holds (`firing`: open an event) or has cleared (`clear`: resolve it
automatically); a subject that is neither (inside a hysteresis band, or not enough history) keeps
its event as it is. The dedup key of an event is (rule name, subject): at most one open event each.
Conditions are vectorized with NumPy over every subject at once; no I/O here (cloud/ops/inputs.py
reads the inputs, cloud/ops/evaluator.py runs the table). The table is rendered in
docs/operations.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from contract.days import DAY_MS, SHANGHAI_OFFSET_MS

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

HOUR_MS = 3_600_000
WEEK_HOURS = 168
# Epoch day 0 (1970-01-01) was a Thursday: Monday 00:00 (Shanghai) came 3 days before.
_WEEK_SHIFT_H = 72

Severity = Literal["critical", "major", "minor"]
Audience = Literal["collection", "field", "platform", "operations", "health"]
Subject = Literal["scale", "site", "worker", "target", "district"]

# How long an event may stay unresolved before it is overdue, by severity.
DEADLINE_MS: dict[Severity, int] = {"critical": HOUR_MS, "major": 4 * HOUR_MS, "minor": DAY_MS}
SEVERITIES: tuple[Severity, ...] = ("critical", "major", "minor")


@dataclass(frozen=True)
class Thresholds:
    """Every number the rules compare against (docs/operations.md says why each)."""

    fill_open: float = 0.90  # bin_full opens at gross/capacity >= this
    fill_clear: float = 0.85  # ... and resolves below this (hysteresis: no flapping at 90 %)
    default_capacity_kg: float = 240.0  # a scale without capacity_kg in the registry (a 240 l bin)
    collection_hours: tuple[int, ...] = (6, 18)  # Shanghai hours the bins are emptied
    predicted_clear: float = 0.95  # bin_predicted_full resolves when predicted < this x capacity
    offline_ms: int = 10 * 60_000  # gateway_offline: offline for longer than this
    silence_expected: float = 5.0  # station_silent: deposits usually due in the gap (P(0) < 1 %)
    silence_min_weeks: float = 2.0  # ... learned from at least this much history
    stall_points: int = 2  # ingest_stalled: this many stats points in the window ...
    stall_window_ms: int = 2 * 60_000  # ... all with written 0 and a backlog
    spike_window_ms: int = 15 * 60_000  # quarantine_spike: entries in this window ...
    spike_min_entries: float = 20.0  # ... at least this many
    spike_factor: float = 5.0  # ... and this many times the site's usual rate (last 24 h)
    drift_days: int = 7  # scale_drift: the empty-bin weights of the last 7 days' collections ...
    drift_min_points: int = 6  # ... at least 6 of them (3 days of twice-daily collections) ...
    drift_slope_kg_day: float = 0.5  # ... fitted to a line rising at least this fast ...
    drift_open_kg: float = 2.0  # ... and standing at least this high at the latest collection
    drift_clear_kg: float = 1.0  # resolves when the fitted latest empty weight is below this


@dataclass(frozen=True)
class Verdict:
    """A rule's answer for each subject: open (firing), resolve (clear) or keep; value for people."""

    subjects: list[str]
    firing: B
    clear: B
    value: F64


@dataclass(frozen=True)
class BinInputs:
    """Per scale: its latest gross weight, capacity, fill rate (kg/h) and when it was read."""

    device: list[str]
    gross_kg: F64
    capacity_kg: F64
    rate_kg_h: F64
    reading_ms: I64


@dataclass(frozen=True)
class GatewayInputs:
    """Per site: whether its gateway's latest status is offline (Last Will), and since when."""

    site: list[str]
    offline: B
    known: B  # False: no status ever (never connected): no verdict
    since_ms: I64


@dataclass(frozen=True)
class SilenceInputs:
    """Per waste station: its latest reading, and its usual deposits per hour of the week."""

    site: list[str]
    last_reading_ms: I64
    profile: F64  # shape (sites, 168): mean deposits in each hour of the week, Monday 00:00 first
    weeks: F64  # how many weeks of history the profile comes from


@dataclass(frozen=True)
class WorkerInputs:
    """Per ingestion worker, over the stall window: its stats points, written rate and backlog."""

    worker: list[str]
    points: I64
    max_written_per_s: F64
    min_queue_depth: F64
    last_written_per_s: F64
    last_queue_depth: F64


@dataclass(frozen=True)
class QuarantineInputs:
    """Per site: quarantined entries in the spike window, and in the 24 h before it."""

    site: list[str]
    recent: F64
    day_before: F64


@dataclass(frozen=True)
class TargetInputs:
    """The plan's targets on the latest complete Shanghai day: met or not, and the figure."""

    target: list[str]
    known: B
    met: B
    value: F64


@dataclass(frozen=True)
class FollowupInputs:
    """The district's overdue family-doctor follow-ups (all reasons), as the aggregator counted
    them on the latest day (`health_followup_counts`: counts only, never who)."""

    known: bool  # False: no count that day, or the cell is suppressed (fewer than k residents)
    overdue: float


@dataclass(frozen=True)
class DriftInputs:
    """Per scale: its empty-bin weight after each recent collection (the gross weight before the
    first deposit after it), as a least-squares line: how many points, its slope, its latest value."""

    device: list[str]
    points: I64
    slope_kg_day: F64
    latest_kg: F64


@dataclass(frozen=True)
class Inputs:
    """Everything the rules read; a part that was not read is None and its rules are skipped."""

    now_ms: int
    bins: BinInputs | None = None
    gateways: GatewayInputs | None = None
    silence: SilenceInputs | None = None
    workers: WorkerInputs | None = None
    quarantine: QuarantineInputs | None = None
    targets: TargetInputs | None = None
    followups: FollowupInputs | None = None
    drift: DriftInputs | None = None


Condition = Callable[[Inputs, Thresholds], Verdict | None]


@dataclass(frozen=True)
class Rule:
    """One row of the table: what it watches, how bad, for whom, when it opens and when it clears."""

    name: str
    title: str
    subject: Subject
    severity: Severity
    audience: Audience
    opens: str  # the condition, in words (docs/operations.md)
    resolves: str  # the auto-resolve condition, in words
    evaluate: Condition | None = field(default=None, repr=False)  # None: a documented placeholder

    def dedup_key(self, subject: str) -> tuple[str, str]:
        """At most one open event per (rule, subject)."""
        return (self.name, subject)


# -- time helpers (pure) ------------------------------------------------------------------------


def last_collection_ms(now_ms: int, hours: tuple[int, ...]) -> int:
    """The latest scheduled collection (a Shanghai hour in `hours`) at or before now."""
    local = now_ms + SHANGHAI_OFFSET_MS
    day0 = local - local % DAY_MS
    times = [day0 + d * DAY_MS + h * HOUR_MS for d in (-1, 0) for h in sorted(hours)]
    return max(t for t in times if t <= local) - SHANGHAI_OFFSET_MS


def next_collection_ms(now_ms: int, hours: tuple[int, ...]) -> int:
    """The next scheduled collection after now."""
    local = now_ms + SHANGHAI_OFFSET_MS
    day0 = local - local % DAY_MS
    times = [day0 + d * DAY_MS + h * HOUR_MS for d in (0, 1) for h in sorted(hours)]
    return min(t for t in times if t > local) - SHANGHAI_OFFSET_MS


def collection_number(ts_ms: I64, hours: tuple[int, ...]) -> I64:
    """How many scheduled collections (Shanghai hours in `hours`) came at or before each time:
    two readings with the same number are in the same collection period."""
    local = ts_ms + SHANGHAI_OFFSET_MS
    day, within = np.divmod(local, DAY_MS)
    done = sum((within >= h * HOUR_MS).astype(np.int64) for h in sorted(set(hours)))
    return np.asarray(day * len(set(hours)) + done, dtype=np.int64)


def hour_of_week(ts_ms: I64) -> I64:
    """Hour of the Shanghai week (0 = Monday 00:00-01:00 ... 167 = Sunday 23:00-24:00)."""
    hours = (ts_ms + SHANGHAI_OFFSET_MS) // HOUR_MS + _WEEK_SHIFT_H
    return np.asarray(hours % WEEK_HOURS, dtype=np.int64)


def expected_between(profile: F64, start_ms: I64, end_ms: int) -> F64:
    """Deposits each site's profile expects between start_ms (per site) and end_ms: the integral
    of its hourly means over the gap, the hour a gap starts or ends in counted pro rata."""
    n = profile.shape[0]
    if n == 0:
        return np.zeros(0)
    weekly = profile.sum(axis=1)
    before = np.concatenate([np.zeros((n, 1)), np.cumsum(profile, axis=1)], axis=1)  # (n, 169)
    rows = np.arange(n)

    def integral(t_ms: I64) -> F64:
        h = (t_ms + SHANGHAI_OFFSET_MS) / HOUR_MS + _WEEK_SHIFT_H
        whole = np.floor(h).astype(np.int64)
        week, how = np.divmod(whole, WEEK_HOURS)
        return np.asarray(
            week * weekly + before[rows, how] + (h - whole) * profile[rows, how], dtype=np.float64
        )

    end = np.full(n, end_ms, dtype=np.int64)
    return np.maximum(integral(end) - integral(np.minimum(start_ms, end)), 0.0)


# -- the conditions (pure, vectorized) --------------------------------------------------------------


def bin_full(inputs: Inputs, t: Thresholds) -> Verdict | None:
    """gross/capacity >= 90 % on a reading since the last collection; clears below 85 % or when a
    collection has passed since that reading (the bin is presumed emptied until a reading says not)."""
    b = inputs.bins
    if b is None:
        return None
    fill = b.gross_kg / b.capacity_kg
    fresh = b.reading_ms > last_collection_ms(inputs.now_ms, t.collection_hours)
    return Verdict(
        b.device, fresh & (fill >= t.fill_open), ~fresh | (fill < t.fill_clear), fill * 100
    )


def bin_predicted_full(inputs: Inputs, t: Thresholds) -> Verdict | None:
    """Not full yet, but gross + rate x hours to the next collection reaches capacity."""
    b = inputs.bins
    if b is None:
        return None
    fill = b.gross_kg / b.capacity_kg
    fresh = b.reading_ms > last_collection_ms(inputs.now_ms, t.collection_hours)
    hours = (next_collection_ms(inputs.now_ms, t.collection_hours) - inputs.now_ms) / HOUR_MS
    predicted = (b.gross_kg + np.maximum(b.rate_kg_h, 0.0) * hours) / b.capacity_kg
    full = fill >= t.fill_open
    return Verdict(
        b.device,
        fresh & ~full & (predicted >= 1.0),
        ~fresh | full | (predicted < t.predicted_clear),
        predicted * 100,
    )


def scale_drift(inputs: Inputs, t: Thresholds) -> Verdict | None:
    """The empty bin weighs more and more after each collection (zero/tare creeping): over enough
    collections, the fitted line of empty weights rises at least 0.5 kg/day and stands at 2 kg or
    more; clears when it is back under 1 kg or no longer rising (re-zeroed, recalibrated)."""
    d = inputs.drift
    if d is None:
        return None
    enough = d.points >= t.drift_min_points
    return Verdict(
        d.device,
        enough & (d.slope_kg_day >= t.drift_slope_kg_day) & (d.latest_kg >= t.drift_open_kg),
        enough & ((d.latest_kg < t.drift_clear_kg) | (d.slope_kg_day <= 0)),
        d.latest_kg,
    )


def gateway_offline(inputs: Inputs, t: Thresholds) -> Verdict | None:
    """The latest status is offline (its Last Will) and older than 10 min; clears when online."""
    g = inputs.gateways
    if g is None:
        return None
    for_ms = inputs.now_ms - g.since_ms
    return Verdict(
        g.site,
        g.known & g.offline & (for_ms > t.offline_ms),
        g.known & ~g.offline,
        np.where(g.offline, for_ms / 60_000, 0.0),
    )


def station_silent(inputs: Inputs, t: Thresholds) -> Verdict | None:
    """So many deposits would usually have come since the last reading (by the station's own
    weekday-and-hour profile) that silence means broken, not quiet; clears below that."""
    s = inputs.silence
    if s is None:
        return None
    expected = expected_between(s.profile, s.last_reading_ms, inputs.now_ms)
    learned = s.weeks >= t.silence_min_weeks
    return Verdict(
        s.site,
        learned & (expected >= t.silence_expected),
        expected < t.silence_expected,
        expected,
    )


def ingest_stalled(inputs: Inputs, t: Thresholds) -> Verdict | None:
    """A worker wrote nothing while holding a backlog in every stats point of the window (at least
    two); clears when its latest point writes again or has no backlog. No points: no verdict."""
    w = inputs.workers
    if w is None:
        return None
    seen = w.points > 0
    return Verdict(
        w.worker,
        (w.points >= t.stall_points) & (w.max_written_per_s <= 0) & (w.min_queue_depth > 0),
        seen & ((w.last_written_per_s > 0) | (w.last_queue_depth <= 0)),
        w.last_queue_depth,
    )


def quarantine_spike(inputs: Inputs, t: Thresholds) -> Verdict | None:
    """A site's quarantined entries in the last 15 min reach both a floor and 5x its usual rate
    (the 24 h before); clears below half that bar."""
    q = inputs.quarantine
    if q is None:
        return None
    windows_per_day = DAY_MS / t.spike_window_ms
    bar = np.maximum(t.spike_min_entries, t.spike_factor * q.day_before / windows_per_day)
    return Verdict(q.site, q.recent >= bar, q.recent < bar / 2, q.recent)


def target_missed(inputs: Inputs, t: Thresholds) -> Verdict | None:
    """A plan target not met on the latest complete day; clears on the first day it is met."""
    g = inputs.targets
    if g is None:
        return None
    return Verdict(g.target, g.known & ~g.met, g.known & g.met, g.value)


def followups_overdue(inputs: Inputs, t: Thresholds) -> Verdict | None:
    """Any follow-up overdue in the latest count; clears when the count is 0. A suppressed cell
    (fewer than k residents) says neither."""
    f = inputs.followups
    if f is None:
        return None
    return Verdict(
        ["all"],
        np.array([f.known and f.overdue >= 1]),
        np.array([f.known and f.overdue < 1]),
        np.array([f.overdue if f.known else 0.0]),
    )


RULES: tuple[Rule, ...] = (
    Rule(
        "bin_full",
        "桶满 Bin full",
        "scale",
        "major",
        "collection",
        "latest gross_kg / capacity_kg >= 90 %, read since the last scheduled collection",
        "below 85 %, or a scheduled collection has passed since that reading",
        bin_full,
    ),
    Rule(
        "bin_predicted_full",
        "将满 Bin full before next collection",
        "scale",
        "minor",
        "collection",
        "below 90 % but gross + fill rate x hours to the next collection >= capacity",
        "predicted < 95 % of capacity, the bin reached 90 % (bin_full takes over), or a collection passed",
        bin_predicted_full,
    ),
    Rule(
        "scale_drift",
        "零点漂移 Scale drift",
        "scale",
        "minor",
        "field",
        "the empty-bin weight after each collection (>= 6 in 7 days), fitted to a line, rises >= "
        "0.5 kg/day and stands >= 2 kg at the latest collection",
        "the fitted empty weight is below 1 kg, or no longer rising",
        scale_drift,
    ),
    Rule(
        "gateway_offline",
        "网关离线 Gateway offline",
        "site",
        "major",
        "field",
        "latest status is offline (Last Will or clean offline) for more than 10 min",
        "the gateway reports online",
        gateway_offline,
    ),
    Rule(
        "station_silent",
        "投放点静默 Station silent",
        "site",
        "minor",
        "field",
        ">= 5 deposits would usually have come since the last reading (the station's weekday-hour "
        "profile, >= 2 weeks of history)",
        "a reading arrives (expected deposits in the gap < 5)",
        station_silent,
    ),
    Rule(
        "ingest_stalled",
        "写入停滞 Ingestion stalled",
        "worker",
        "critical",
        "platform",
        "every stats point of the last 2 min (>= 2) has written_per_s = 0 and queue_depth > 0",
        "the latest stats point writes again or has an empty queue",
        ingest_stalled,
    ),
    Rule(
        "quarantine_spike",
        "隔离激增 Quarantine spike",
        "site",
        "major",
        "platform",
        "quarantined entries in the last 15 min >= max(20, 5 x the site's 15-min mean of the 24 h before)",
        "below half that bar",
        quarantine_spike,
    ),
    Rule(
        "target_missed",
        "未达标 Target missed",
        "target",
        "minor",
        "operations",
        "a plan target (recyclable, dry, sorting) not met on the latest complete Shanghai day",
        "the target is met on a later day",
        target_missed,
    ),
    Rule(
        "followups_overdue",
        "随访逾期 Health follow-ups overdue",
        "district",
        "major",
        "health",
        "the latest health_followup_counts row (state overdue, all reasons) counts >= 1 (a count "
        "only; a k-suppressed cell opens nothing)",
        "the count is back to 0",
        followups_overdue,
    ),
)

BY_NAME: dict[str, Rule] = {r.name: r for r in RULES}
RULE_PATTERN = "^(" + "|".join(r.name for r in RULES) + ")$"
