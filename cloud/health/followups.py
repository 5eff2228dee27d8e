"""The family-doctor follow-up worklist as a fold over events (pure).

Events: `raised` (a refer/urgent reading of a resident, for a reason), `contacted` and `closed`
(health staff, naming the follow-up). Per (resident, reason), in time order: a raised reading opens
a follow-up when none is open, otherwise it attaches to the open one (its tier is the worst tier
attached, its due day the earliest); a `recheck` reading of the same reason joins an open
follow-up and never opens one; `contacted` and `closed` apply to the follow-up they name
while it is still open; after a close the next raised reading opens the next follow-up. The id is
a digest of (resident, reason, episode), so every aggregator and every reprocessing derives the
same follow-ups from the same events, whatever order the readings arrived in.

Overdue is not stored: it is computed from the due day and the clock (`today`, injected): an
open follow-up not yet contacted whose due Shanghai day has passed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from cloud.health.suppress import DEFAULT_K, Cell, suppress_group
from cloud.health.triage import DUE_DAYS, FOLLOW_UP_TIERS, Tier, worse
from contract.days import date_of, day_number

EventKind = Literal["raised", "contacted", "closed"]
Status = Literal["open", "overdue", "contacted", "closed"]
STATUSES: tuple[Status, ...] = ("open", "overdue", "contacted", "closed")
OUTCOMES = (
    "seen_by_doctor",  # the family doctor saw the resident
    "referred_to_hospital",
    "normal_on_recheck",
    "already_treated",  # already under care for this
    "declined",
    "unreachable",
    "moved_away",
)
FOLLOWUP_PATTERN = r"^f-[0-9a-f]{20}$"
KIND_ORDER = {"raised": 0, "contacted": 1, "closed": 2}
COUNT_STATES = ("open", "overdue", "closed_week")
ALL_REASONS = "all"


@dataclass(frozen=True, slots=True)
class Event:
    """One stored event of the worklist (a `health_followup` point)."""

    resident: str
    reason: str
    kind: EventKind
    time_ns: int
    tier: Tier | None = None  # raised
    code: str = ""  # raised: the triage row's code
    followup: str = ""  # contacted / closed: the follow-up's id
    outcome: str = ""  # closed
    by: str = ""  # contacted / closed: who (token name)
    device: str = ""  # raised: the reading's device, type and seq (its identity)
    type: str = ""
    seq: int = 0


@dataclass(slots=True)
class FollowUp:
    """One follow-up: whom (pseudonym), why, how urgently, by when, and where it stands."""

    id: str
    resident: str
    reason: str
    tier: Tier
    opened_ms: int
    due: dt.date
    codes: list[str] = field(default_factory=list)
    readings: int = 1
    last_ms: int = 0
    contacted_ms: int | None = None
    contacted_by: str | None = None
    closed_ms: int | None = None
    closed_by: str | None = None
    outcome: str | None = None

    def status(self, today: dt.date) -> Status:
        """closed, contacted, overdue (open and past its due day) or open, as of `today`."""
        if self.closed_ms is not None:
            return "closed"
        if self.contacted_ms is not None:
            return "contacted"
        return "overdue" if today > self.due else "open"


def followup_id(resident: str, reason: str, episode: int) -> str:
    """The id of a resident's `episode`-th follow-up for a reason (0 = the first)."""
    digest = hashlib.sha256(f"{resident}/{reason}/{episode}".encode()).hexdigest()
    return "f-" + digest[:20]


def due_day(ts_ms: int, tier: Tier) -> dt.date:
    """When a reading of this tier must have been followed up: urgent the same Shanghai day,
    refer 14 days later."""
    return date_of(day_number(ts_ms) + DUE_DAYS[tier])


def fold(events: Iterable[Event]) -> list[FollowUp]:
    """Every follow-up the events make, sorted by due day, then opening time, then id."""
    groups: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for e in events:
        groups[(e.resident, e.reason)].append(e)
    out: list[FollowUp] = []
    for (resident, reason), evs in groups.items():
        current: FollowUp | None = None
        episode = 0
        for e in sorted(evs, key=lambda e: (e.time_ns, KIND_ORDER[e.kind], e.followup)):
            ms = e.time_ns // 1_000_000
            if e.kind == "raised" and e.tier is not None:
                if current is None and e.tier not in FOLLOW_UP_TIERS:
                    continue  # a recheck reading joins an open follow-up, never opens one
                if current is None:
                    current = FollowUp(
                        followup_id(resident, reason, episode),
                        resident,
                        reason,
                        e.tier,
                        ms,
                        due_day(ms, e.tier),
                        [e.code],
                        1,
                        ms,
                    )
                    out.append(current)
                else:
                    current.tier = worse(current.tier, e.tier)
                    if e.tier in FOLLOW_UP_TIERS:
                        current.due = min(current.due, due_day(ms, e.tier))
                    current.readings += 1
                    current.last_ms = ms
                    if e.code not in current.codes:
                        current.codes.append(e.code)
            elif current is None or e.followup != current.id:
                continue  # names no open follow-up (an old id, a race lost): nothing to apply
            elif e.kind == "contacted" and current.contacted_ms is None:
                current.contacted_ms, current.contacted_by = ms, e.by
            elif e.kind == "closed":
                current.closed_ms, current.closed_by, current.outcome = ms, e.by, e.outcome
                current = None
                episode += 1
    return sorted(out, key=lambda f: (f.due, f.opened_ms, f.id))


def week_start(today: dt.date) -> dt.date:
    """Monday of today's week."""
    return today - dt.timedelta(days=today.weekday())


def counted_states(f: FollowUp, today: dt.date) -> list[str]:
    """Which counts a follow-up is in as of `today`: open (not closed), overdue, closed_week
    (closed this week); none when it was opened after `today` (a clock set in the past)."""
    if date_of(day_number(f.opened_ms)) > today:
        return []
    status = f.status(today)
    if status == "closed":
        assert f.closed_ms is not None
        closed = date_of(day_number(f.closed_ms))
        return ["closed_week"] if week_start(today) <= closed <= today else []
    return ["open", "overdue"] if status == "overdue" else ["open"]


@dataclass(frozen=True, slots=True)
class CountCell:
    """One shown or hidden count: state, reason ("all" = every reason), follow-ups, hidden."""

    state: str
    reason: str
    followups: int
    residents: int
    suppressed: bool


def counts(
    followups: Iterable[FollowUp], today: dt.date, k: int | None = DEFAULT_K
) -> list[CountCell]:
    """Open, overdue and closed-this-week counts per reason and over all reasons, as of `today`.

    With k, a cell of fewer than k distinct residents is suppressed, and its complement (as for
    health_daily: cloud/health/suppress.py); k None gives exact figures. States with no follow-up
    give a shown zero for "all" only (zero is no resident's figure)."""
    people: dict[tuple[str, str], set[str]] = defaultdict(set)
    n: dict[tuple[str, str], int] = defaultdict(int)
    for f in followups:
        for state in counted_states(f, today):
            for reason in (f.reason, ALL_REASONS):
                people[(state, reason)].add(f.resident)
                n[(state, reason)] += 1
    out: list[CountCell] = []
    for state in COUNT_STATES:
        total = Cell(len(people[(state, ALL_REASONS)]), n[(state, ALL_REASONS)])
        parts = {
            r: Cell(len(people[(s, r)]), n[(s, r)])
            for (s, r) in list(n)
            if s == state and r != ALL_REASONS
        }
        hidden: set[str] = set()
        hide_total = False
        if k is not None and total.measurements:
            hide_total, hidden = suppress_group(total, parts, k)
        out.append(CountCell(state, ALL_REASONS, total.measurements, total.residents, hide_total))
        for reason in sorted(parts):
            c = parts[reason]
            out.append(CountCell(state, reason, c.measurements, c.residents, reason in hidden))
    return out
