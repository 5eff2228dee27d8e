"""Operations routes (operator role): the rule table, events listed by state, acknowledge, resolve.

An event is addressed by its id `rule:subject:opened_ms` (one episode of one rule and subject). A
transition that does not apply to the event as it is now is a 409 (acknowledging an acknowledged
or resolved event, resolving a resolved one, or any change to an episode that is no longer the
latest); an id that names no stored episode is a 404. Who did it (the token's public id) and the
note are stored with the change (docs/operations.md).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, Field

from cloud.api.deps import Operator, State, bounded
from cloud.auth import TokenRecord
from cloud.ops import store
from cloud.ops.lifecycle import STATE_AFTER, Action, Event, apply, change_for
from cloud.ops.rules import BY_NAME, RULE_PATTERN, RULES
from contract.models import ID_PATTERN

router = APIRouter(prefix="/api/v1/ops", tags=["operations"])

_SUBJECT = ID_PATTERN.removeprefix("^").removesuffix("$")
_RULES = RULE_PATTERN.removeprefix("^").removesuffix("$")
EVENT_ID_PATTERN = f"^{_RULES}:{_SUBJECT}:[0-9]{{1,15}}$"
Filter = Literal["open", "acknowledged", "resolved", "overdue", "active"]


def _at(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class RuleOut(BaseModel):
    """One row of the rule table."""

    name: str
    title: str
    subject: str
    severity: str
    audience: str
    opens: str
    resolves: str
    active: bool  # False: a documented placeholder, not evaluated


class EventOut(BaseModel):
    """One event (one episode of a rule on a subject)."""

    id: str
    rule: str
    title: str
    subject: str
    state: Literal["open", "acknowledged", "resolved"]
    overdue: bool
    severity: str
    audience: str
    value: float
    opened_at: dt.datetime
    deadline: dt.datetime
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    resolved_at: dt.datetime | None
    resolved_by: str | None
    note: str

    @classmethod
    def of(cls, ev: Event, now_ms: int) -> EventOut:
        rule = BY_NAME.get(ev.rule)
        return cls(
            id=ev.id,
            rule=ev.rule,
            title=rule.title if rule else ev.rule,
            subject=ev.subject,
            state=ev.state,
            overdue=ev.overdue(now_ms),
            severity=ev.severity,
            audience=ev.audience,
            value=ev.value,
            opened_at=dt.datetime.fromtimestamp(ev.opened_ms / 1000, dt.UTC),
            deadline=dt.datetime.fromtimestamp(ev.deadline_ms / 1000, dt.UTC),
            acknowledged_at=_at(ev.acknowledged_ms),
            acknowledged_by=ev.acknowledged_by,
            resolved_at=_at(ev.resolved_ms),
            resolved_by=ev.resolved_by,
            note=ev.note,
        )


class EventsResponse(BaseModel):
    """Events, newest opened first, with counts over everything that matched the rule/subject."""

    open: int
    acknowledged: int
    overdue: int
    events: list[EventOut]


class Resolution(BaseModel):
    """What a person says when resolving an event."""

    model_config = {"extra": "forbid"}
    note: str = Field(min_length=1, max_length=500)


class Acknowledgement(BaseModel):
    """An optional note when acknowledging."""

    model_config = {"extra": "forbid"}
    note: str = Field("", max_length=500)


@router.get("/rules", response_model=list[RuleOut])
def rules(_: Operator) -> list[RuleOut]:
    """The rule table (docs/operations.md)."""
    return [
        RuleOut(
            name=r.name,
            title=r.title,
            subject=r.subject,
            severity=r.severity,
            audience=r.audience,
            opens=r.opens,
            resolves=r.resolves,
            active=r.evaluate is not None,
        )
        for r in RULES
    ]


@router.get("/events", response_model=EventsResponse)
def events(
    state: State,
    _: Operator,
    filter_state: Annotated[Filter | None, Query(alias="state")] = None,
    rule: Annotated[str | None, Query(pattern=RULE_PATTERN)] = None,
    subject: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> EventsResponse:
    """Events by state: open, acknowledged, resolved, overdue (unresolved past the deadline) or
    active (open or acknowledged); by default all."""
    now = _now_ms()
    every = [ev for eps in store.read_episodes(state.influx, rule, subject).values() for ev in eps]
    counts = {
        "open": sum(ev.state == "open" for ev in every),
        "acknowledged": sum(ev.state == "acknowledged" for ev in every),
        "overdue": sum(ev.overdue(now) for ev in every),
    }
    if filter_state == "overdue":
        chosen = [ev for ev in every if ev.overdue(now)]
    elif filter_state == "active":
        chosen = [ev for ev in every if ev.active]
    elif filter_state is not None:
        chosen = [ev for ev in every if ev.state == filter_state]
    else:
        chosen = every
    chosen.sort(key=lambda ev: (-ev.opened_ms, ev.rule, ev.subject))
    chosen = chosen[:limit]
    bounded(len(chosen), state)
    return EventsResponse(events=[EventOut.of(ev, now) for ev in chosen], **counts)


EventId = Annotated[str, Path(pattern=EVENT_ID_PATTERN, max_length=200)]


def _change(state: State, who: TokenRecord, event_id: str, action: Action, note: str) -> EventOut:
    """Apply a person's change to the latest episode, or say why not (404, 409). Recorded in the
    records database as the API's own identity (it cannot write the main one)."""
    writer = state.influx
    rule_name, subject, opened = event_id.split(":")
    rule = BY_NAME[rule_name]
    episodes = store.read_episodes(state.influx, rule_name, subject).get((rule_name, subject), [])
    ev = next((e for e in episodes if e.opened_ms == int(opened)), None)
    if ev is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no event {event_id}")
    if ev is not episodes[-1] or not ev.active:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"event {event_id} is resolved")
    now = max(_now_ms(), ev.opened_ms + 1)
    change = change_for(
        rule, subject, action, now, ev.value, by=who.id, note=note, opened_ms=ev.opened_ms
    )
    after, applied = apply(ev, change)
    if not applied or after is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail=f"event {event_id} is already {ev.state}"
        )
    store.write_changes(writer, [(change, STATE_AFTER[action])])
    return EventOut.of(after, now)


@router.post("/events/{event_id}/acknowledge", response_model=EventOut)
def acknowledge(
    state: State, who: Operator, event_id: EventId, body: Acknowledgement | None = None
) -> EventOut:
    """Acknowledge an open event (someone is on it); 409 if it is acknowledged or resolved."""
    return _change(state, who, event_id, "acknowledge", body.note if body else "")


@router.post("/events/{event_id}/resolve", response_model=EventOut)
def resolve(state: State, who: Operator, event_id: EventId, body: Resolution) -> EventOut:
    """Resolve an open or acknowledged event with a note; 409 if it is resolved already."""
    return _change(state, who, event_id, "resolve", body.note)
