"""The family-doctor follow-up worklist: list, contacted, close (health role only; audited, as they
name residents by pseudonym) and the k-suppressed counts (operators, admins, health staff)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, get_args

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict

from cloud import measurements as m
from cloud.api.deps import Health, State, bounded, require
from cloud.auth import TokenRecord
from cloud.days import date_of, day_number, days_where, today
from cloud.health import worklist
from cloud.health.followups import (
    COUNT_STATES,
    FOLLOWUP_PATTERN,
    OUTCOMES,
    STATUSES,
    FollowUp,
    fold,
)
from cloud.health.triage import REASONS

router = APIRouter(prefix="/api/v1/health", tags=["health follow-ups"])
Counts = Annotated[TokenRecord, Depends(require("operator", "admin", "health"))]
FollowUpPath = Annotated[str, Path(pattern=FOLLOWUP_PATTERN, description="follow-up id f-<20 hex>")]
Outcome = Literal[
    "seen_by_doctor",
    "referred_to_hospital",
    "normal_on_recheck",
    "already_treated",
    "declined",
    "unreachable",
    "moved_away",
]
assert set(get_args(Outcome)) == set(OUTCOMES)  # one list of outcomes
StatusFilter = Literal["active", "open", "overdue", "contacted", "closed", "all"]


class FollowUpOut(BaseModel):
    """One follow-up: the resident by pseudonym only, why, how urgently, by when, where it stands."""

    id: str
    resident: str
    reason: str
    tier: str
    status: str
    due: dt.date
    opened: dt.datetime
    readings: int
    codes: list[str]
    contacted: dt.datetime | None
    closed: dt.datetime | None
    outcome: str | None


class WorklistResponse(BaseModel):
    """Follow-ups sorted by due day, then opening time; `today` is the Shanghai day overdue is judged on."""

    today: dt.date
    followups: list[FollowUpOut]


class CloseRequest(BaseModel):
    """How a follow-up ended: one outcome of a fixed list, no free text (a note could carry a name)."""

    model_config = ConfigDict(extra="forbid")
    outcome: Outcome


def _time(ms: int | None) -> dt.datetime | None:
    return (
        None
        if ms is None
        else dt.datetime.fromtimestamp(ms / 1000, dt.timezone(dt.timedelta(hours=8)))
    )


def _out(f: FollowUp, day: dt.date) -> FollowUpOut:
    opened = _time(f.opened_ms)
    assert opened is not None
    return FollowUpOut(
        id=f.id,
        resident=f.resident,
        reason=f.reason,
        tier=f.tier,
        status=f.status(day),
        due=f.due,
        opened=opened,
        readings=f.readings,
        codes=f.codes,
        contacted=_time(f.contacted_ms),
        closed=_time(f.closed_ms),
        outcome=f.outcome,
    )


@router.get("/followups", response_model=WorklistResponse)
def list_followups(
    request: Request,
    state: State,
    _: Health,
    status_: Annotated[
        StatusFilter,
        Query(alias="status", description="active = open, overdue and contacted (the default)"),
    ] = "active",
    reason: Annotated[
        str | None, Query(max_length=40, description="one reason, e.g. hypertension")
    ] = None,
) -> WorklistResponse:
    """The worklist (audited: it names residents by pseudonym)."""
    if reason is not None and reason not in REASONS:
        raise HTTPException(422, detail=f"reason must be one of {', '.join(REASONS)}")
    day = today()
    rows = [
        f
        for f in worklist.worklist(state.influx)
        if (reason is None or f.reason == reason)
        and (
            status_ == "all"
            or f.status(day) == status_
            or (status_ == "active" and f.status(day) != "closed")
        )
    ]
    bounded(len(rows), state)
    request.state.audit_records = len(rows)
    return WorklistResponse(today=day, followups=[_out(f, day) for f in rows])


def _find(state: State, followup: str) -> FollowUp:
    for f in fold(worklist.read_events(state.influx)):
        if f.id == followup:
            return f
    raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no follow-up {followup}")


@router.post("/followups/{followup}/contacted", response_model=FollowUpOut)
def mark_contacted(
    request: Request, state: State, token: Health, followup: FollowUpPath
) -> FollowUpOut:
    """Record that the family-doctor team reached the resident (audited)."""
    f = _find(state, followup)
    if f.closed_ms is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"follow-up {followup} is closed")
    if f.contacted_ms is None:  # contacting twice is no error and no second event
        worklist.record_action(state.influx, f, "contacted", token.name)
    request.state.audit_records = 1
    return _out(_find(state, followup), today())


@router.post("/followups/{followup}/close", response_model=FollowUpOut)
def close_followup(
    request: Request, state: State, token: Health, followup: FollowUpPath, body: CloseRequest
) -> FollowUpOut:
    """Close a follow-up with its outcome (audited); a later raised reading opens a new one."""
    f = _find(state, followup)
    if f.closed_ms is not None:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail=f"follow-up {followup} is already closed"
        )
    worklist.record_action(state.influx, f, "closed", token.name, body.outcome)
    request.state.audit_records = 1
    for g in fold(worklist.read_events(state.influx, f.resident)):
        if g.id == followup:
            return _out(g, today())
    raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no follow-up {followup}")


class CountRow(BaseModel):
    """One day's count of one state and reason; null and `suppressed` when from fewer than k residents."""

    date: dt.date
    state: str
    reason: str
    followups: int | None
    suppressed: bool


class CountsResponse(BaseModel):
    """What operators and Grafana see of the worklist (the main database's k-suppressed copy)."""

    k: int
    rows: list[CountRow]


@router.get("/followup-counts", response_model=CountsResponse)
def followup_counts(
    state: State,
    _: Counts,
    start: Annotated[dt.date, Query(description="first Shanghai day, YYYY-MM-DD")],
    end: Annotated[dt.date, Query(description="last Shanghai day (inclusive), YYYY-MM-DD")],
) -> CountsResponse:
    """Open, overdue and closed-this-week counts as the aggregator last computed them each day."""
    if end < start:
        raise HTTPException(422, detail="end is before start")
    if (end - start).days > 366:
        raise HTTPException(422, detail="at most 366 days at once")
    q = (
        f'SELECT "followups", "suppressed" FROM {m.HEALTH_FOLLOWUP_COUNTS.name} '
        f"WHERE {days_where(start, end)} "
        'GROUP BY "state", "reason"'
    )
    rows = []
    for s in state.influx.query(q):
        for t, n, hidden in s.values:
            rows.append(
                CountRow(
                    date=date_of(day_number(int(t))),
                    state=s.tags["state"],
                    reason=s.tags["reason"],
                    followups=None if hidden or n is None else int(n),
                    suppressed=bool(hidden) or n is None,
                )
            )
    order = {st: i for i, st in enumerate(COUNT_STATES)}
    rows.sort(key=lambda r: (r.date, order.get(r.state, 9), r.reason != "all", r.reason))
    bounded(len(rows), state)
    return CountsResponse(k=state.settings.health_min_residents, rows=rows)


__all__ = ["STATUSES", "router"]
