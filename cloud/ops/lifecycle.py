"""Events with a lifecycle, pure: open -> acknowledged -> resolved, folded from stored changes.

An event is one episode of one (rule, subject): it opens when the rule fires, may be acknowledged
by a person, and is resolved automatically when the condition clears or by a person with a note.
What is stored is the log of changes (cloud/ops/store.py); the state is `fold` of that log in time
order, where a change that does not apply to the state it meets is a no-op:

| state \\ change  | open          | acknowledge   | resolve   |
|-----------------|---------------|---------------|-----------|
| none / resolved | a new episode | no-op         | no-op     |
| open            | no-op         | acknowledged  | resolved  |
| acknowledged    | no-op         | no-op         | resolved  |

So any number of evaluators writing the same change (twice, late, concurrently) end in the same
state, and an episode's id is the time of the open that started it. Overdue is not stored: an
unresolved event whose deadline (opened + the severity's allowance) has passed, by the clock given.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from cloud.ops.rules import DEADLINE_MS, Rule, Verdict

Action = Literal["open", "acknowledge", "resolve"]
State = Literal["open", "acknowledged", "resolved"]
ACTIONS: tuple[Action, ...] = ("open", "acknowledge", "resolve")
AUTO = "auto"  # `by` of the evaluator's changes
STATE_AFTER: dict[Action, State] = {
    "open": "open",
    "acknowledge": "acknowledged",
    "resolve": "resolved",
}  # the state a change that applies leads to


@dataclass(frozen=True)
class Change:
    """One stored state change of (rule, subject)."""

    rule: str
    subject: str
    action: Action
    at_ms: int
    severity: str
    audience: str
    deadline_ms: int
    value: float = 0.0
    by: str = AUTO
    note: str = ""


@dataclass(frozen=True)
class Event:
    """One episode of (rule, subject) as folded from its changes."""

    rule: str
    subject: str
    opened_ms: int
    state: State
    severity: str
    audience: str
    deadline_ms: int
    value: float
    acknowledged_ms: int | None = None
    acknowledged_by: str | None = None
    resolved_ms: int | None = None
    resolved_by: str | None = None
    note: str = ""

    @property
    def id(self) -> str:
        """rule:subject:opened_ms — what the API addresses."""
        return f"{self.rule}:{self.subject}:{self.opened_ms}"

    @property
    def active(self) -> bool:
        return self.state != "resolved"

    def overdue(self, now_ms: int) -> bool:
        """Unresolved past its deadline."""
        return self.active and now_ms > self.deadline_ms


def apply(current: Event | None, c: Change) -> tuple[Event | None, bool]:
    """The event after change `c` (an episode may start), and whether `c` applied (else a no-op)."""
    if c.action == "open":
        if current is not None and current.active:
            return current, False
        return (
            Event(
                c.rule, c.subject, c.at_ms, "open", c.severity, c.audience, c.deadline_ms, c.value
            ),
            True,
        )
    if current is None or not current.active:
        return current, False
    if c.action == "acknowledge":
        if current.state != "open":
            return current, False
        return replace(
            current, state="acknowledged", acknowledged_ms=c.at_ms, acknowledged_by=c.by
        ), True
    return (
        replace(current, state="resolved", resolved_ms=c.at_ms, resolved_by=c.by, note=c.note),
        True,
    )


def fold(changes: Iterable[Change]) -> list[Event]:
    """Every episode of one (rule, subject), oldest first, from its changes in time order."""
    episodes: list[Event] = []
    current: Event | None = None
    for c in changes:
        after, applied = apply(current, c)
        if not applied or after is None:
            continue
        if c.action == "open":
            episodes.append(after)
        else:
            episodes[-1] = after
        current = after
    return episodes


def change_for(
    rule: Rule,
    subject: str,
    action: Action,
    now_ms: int,
    value: float = 0.0,
    by: str = AUTO,
    note: str = "",
    opened_ms: int | None = None,
) -> Change:
    """A change of `rule`'s event on `subject`; the deadline counts from the episode's opening."""
    start = now_ms if opened_ms is None else opened_ms
    return Change(
        rule.name,
        subject,
        action,
        now_ms,
        rule.severity,
        rule.audience,
        start + DEADLINE_MS[rule.severity],
        float(value) if math.isfinite(value) else 0.0,
        by,
        note,
    )


def plan(rule: Rule, verdict: Verdict, current: dict[str, Event], now_ms: int) -> list[Change]:
    """The changes one rule's verdict asks for, given each subject's current episode: open where it
    fires and no event is active, resolve where it clears and one is. Keeps everything else."""
    out: list[Change] = []
    for i, subject in enumerate(verdict.subjects):
        if not subject:  # a point without the tag (InfluxDB gives ""): nothing to name an event by
            continue
        ev = current.get(subject)
        value = float(verdict.value[i])
        if bool(verdict.firing[i]) and (ev is None or not ev.active):
            out.append(change_for(rule, subject, "open", now_ms, value))
        elif bool(verdict.clear[i]) and ev is not None and ev.active:
            out.append(
                change_for(
                    rule,
                    subject,
                    "resolve",
                    now_ms,
                    value,
                    note="condition cleared",
                    opened_ms=ev.opened_ms,
                )
            )
    return out
