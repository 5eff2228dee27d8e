"""The follow-up worklist in InfluxDB: the aggregator's health pass (raised events from triaged
readings, counts for operators) and the health staff's lifecycle events (contacted, closed).

Storage (`health_followup`, health database) is an event per point, keyed so that any number of
aggregators and any reprocessing write the same points: a raised event has the reading's own
point time and device tag (its (device, seq) identity), and tags resident, reason, event. A staff
action is a point at its request time. The worklist is the fold of the events
(cloud/health/followups.py); nothing derived is stored but the counts operators may see
(`health_followup_counts`, main database, k-suppressed, rewritten on every run).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from cloud.days import DAY_MS, day_number, day_start_ms, number_of
from cloud.health.followups import Event, FollowUp, counts, fold
from cloud.health.suppress import DEFAULT_K
from cloud.health.triage import (
    BP,
    FOLLOW_UP_REASONS,
    HTN_WINDOW_DAYS,
    RULE_OF_CODE,
    SUSPECTED_HYPERTENSION,
    Tier,
    bp_raised,
    suspected_hypertension,
    triage,
)
from cloud.influx import InfluxClient, quote
from cloud.lineproto import FieldValue, line, point_time_ns
from cloud.measurements import HEALTH_FOLLOWUP, HEALTH_FOLLOWUP_COUNTS, HEALTH_MEASUREMENT
from contract.models import VALUE_KEYS


@dataclass(frozen=True, slots=True)
class Reading:
    """A stored measurement of a resident, as the health pass needs it."""

    resident: str
    device: str
    type: str
    seq: int
    ts: int  # ms
    values: dict[str, float | str]

    @property
    def day(self) -> int:
        return day_number(self.ts)


def read_readings(influx: InfluxClient, where: str) -> list[Reading]:
    """Stored measurements with a resident (health database) matching an InfluxQL condition,
    deduplicated on (device, seq)."""
    q = f'SELECT * FROM {HEALTH_MEASUREMENT.name} WHERE {where} GROUP BY "site", "device", "type"'
    found: dict[tuple[str, int], Reading] = {}
    for s in influx.query_chunks(q, db=influx.health_db):
        type_ = s.tags.get("type", "")
        required, optional = VALUE_KEYS.get(type_, (frozenset(), frozenset()))
        for row in s.values:
            v = dict(zip(s.columns, row, strict=True))
            resident = v.get("resident")
            if not resident:
                continue
            values = {k: v[k] for k in required | optional if v.get(k) is not None}
            if not required <= set(values):
                continue
            r = Reading(
                str(resident),
                s.tags.get("device", ""),
                type_,
                int(v["seq"]),
                int(v["time"]),
                values,
            )
            found[(r.device, r.seq)] = r
    return list(found.values())


def _day_window(first: int, last: int) -> str:
    return f"time >= {day_start_ms(first)}ms AND time < {day_start_ms(last) + DAY_MS}ms"


def raised_events(readings: Iterable[Reading], history: dict[str, list[Reading]]) -> list[Event]:
    """The raised events of some readings (pure): a refer/urgent tier opens or joins a follow-up
    of each reason at that tier, a recheck tier of such a reason joins an open one; a raised blood pressure on the third different day within the
    window (from the resident's BP `history`) is "suspected hypertension" (refer). One event per
    (reading, reason), so the same reading always makes the same point."""
    raised_days = {
        resident: {r.day for r in rs if bp_raised(r.values)} for resident, rs in history.items()
    }
    events: dict[tuple[str, str, str, int], Event] = {}
    for r in readings:
        t = triage(r.type, r.values)
        found: dict[str, tuple[Tier, str]] = {}
        for code in t.codes if t.tier != "normal" else ():
            reason = RULE_OF_CODE[code].reason
            if reason in FOLLOW_UP_REASONS:  # recheck: joins an open follow-up, opens none
                found[reason] = (t.tier, code)
        raised = r.type == BP and bp_raised(r.values)
        if raised and suspected_hypertension(raised_days.get(r.resident, set()), r.day):
            rule = RULE_OF_CODE[SUSPECTED_HYPERTENSION]
            tier, code = found.get(rule.reason, (rule.tier, SUSPECTED_HYPERTENSION))
            found[rule.reason] = (
                (tier, code) if tier == "urgent" else (rule.tier, SUSPECTED_HYPERTENSION)
            )
        for reason, (tier, code) in found.items():
            e = Event(
                r.resident,
                reason,
                "raised",
                point_time_ns(r.ts, r.seq),
                tier,
                code,
                device=r.device,
                type=r.type,
                seq=r.seq,
            )
            events[(r.resident, reason, r.device, e.time_ns)] = e
    return [events[k] for k in sorted(events)]


def raised_lines(events: Iterable[Event]) -> list[str]:
    """Line protocol of raised events: the reading's point time and device tag are its identity."""
    out = []
    for e in events:
        tags = {"resident": e.resident, "reason": e.reason, "event": "raised", "device": e.device}
        fields: dict[str, FieldValue | None] = {
            "tier": e.tier,
            "code": e.code,
            "type": e.type,
            "seq": e.seq,
        }
        out.append(line(HEALTH_FOLLOWUP.name, tags, fields, e.time_ns))
    return out


def update_raised(influx: InfluxClient, days: Iterable[int]) -> int:
    """The health pass over some Shanghai days: triage their readings, read the BP history of the
    residents with a raised BP on them, write the raised events; return how many were written."""
    days = sorted(set(days))
    if not days:
        return 0
    readings = [r for d in days for r in read_readings(influx, _day_window(d, d))]
    history: dict[str, list[Reading]] = {}
    bp_days: dict[str, set[int]] = defaultdict(set)
    for r in readings:
        if r.type == BP and bp_raised(r.values):
            bp_days[r.resident].add(r.day)
    for resident, ds in bp_days.items():  # a late reading may make a later day the third
        where = (
            f'"resident" = {quote(resident)} AND '
            f"{_day_window(min(ds) - HTN_WINDOW_DAYS + 1, max(ds) + HTN_WINDOW_DAYS - 1)}"
        )
        history[resident] = [r for r in read_readings(influx, where) if r.type == BP]
    touched = readings + [r for rs in history.values() for r in rs]
    unique = {(r.device, r.seq): r for r in touched}  # a reading's identity: (device, seq)
    lines = raised_lines(raised_events(list(unique.values()), history))
    if lines:
        influx.write_lines(("\n".join(lines) + "\n").encode(), db=influx.health_db)
    return len(lines)


def read_events(influx: InfluxClient, resident: str | None = None) -> list[Event]:
    """Every stored follow-up event (of one resident when given)."""
    where = f' WHERE "resident" = {quote(resident)}' if resident else ""
    q = f'SELECT * FROM {HEALTH_FOLLOWUP.name}{where} GROUP BY "resident", "reason", "event", "device"'
    out = []
    for s in influx.query_chunks(q, db=influx.health_db):
        kind = s.tags.get("event", "")
        if kind not in ("raised", "contacted", "closed"):
            continue
        for row in s.values:
            v = dict(zip(s.columns, row, strict=True))
            out.append(
                Event(
                    s.tags["resident"],
                    s.tags["reason"],
                    kind,  # type: ignore[arg-type]  # checked above
                    int(v["time"]) * 1_000_000,  # ms is what the fold needs
                    v.get("tier") or None,
                    v.get("code") or "",
                    v.get("followup") or "",
                    v.get("outcome") or "",
                    v.get("by") or "",
                    s.tags.get("device", ""),
                    v.get("type") or "",
                    int(v.get("seq") or 0),
                )
            )
    return out


def worklist(influx: InfluxClient) -> list[FollowUp]:
    """Every follow-up, folded from the stored events."""
    return fold(read_events(influx))


def action_line(
    f: FollowUp, kind: str, by: str, outcome: str = "", now_ns: int | None = None
) -> str:
    """The point of a staff action on a follow-up (contacted / closed) at the request's time."""
    fields: dict[str, FieldValue | None] = {"followup": f.id, "by": by, "outcome": outcome or None}
    tags = {"resident": f.resident, "reason": f.reason, "event": kind}
    return line(
        HEALTH_FOLLOWUP.name, tags, fields, now_ns if now_ns is not None else time.time_ns()
    )


def record_action(influx: InfluxClient, f: FollowUp, kind: str, by: str, outcome: str = "") -> None:
    """Store a staff action (the API's health role)."""
    influx.write_lines((action_line(f, kind, by, outcome) + "\n").encode(), db=influx.health_db)


def count_lines(followups: list[FollowUp], today: dt.date, k: int) -> list[str]:
    """The k-suppressed counts as of today (time = today's midnight)."""
    t = day_start_ms(number_of(today)) * 1_000_000
    out = []
    for c in counts(followups, today, k):
        fields: dict[str, FieldValue | None] = (
            {"suppressed": True, "hidden": 1}
            if c.suppressed
            else {"followups": c.followups, "suppressed": False, "hidden": 0}
        )
        out.append(
            line(HEALTH_FOLLOWUP_COUNTS.name, {"state": c.state, "reason": c.reason}, fields, t)
        )
    return out


def update_counts(influx: InfluxClient, today: dt.date, k: int = DEFAULT_K) -> list[FollowUp]:
    """Rewrite today's operator counts (main database) from the folded worklist; return it."""
    followups = worklist(influx)
    start = day_start_ms(number_of(today))
    influx.execute(
        f"DELETE FROM {HEALTH_FOLLOWUP_COUNTS.name} WHERE time >= {start}ms AND time < {start + DAY_MS}ms"
    )  # a cell that became hidden must not keep its old count (fields of a rewritten point merge)
    influx.write_lines(("\n".join(count_lines(followups, today, k)) + "\n").encode())
    return followups


def health_pass(
    influx: InfluxClient,
    days: Iterable[int],
    today: dt.date,
    k: int = DEFAULT_K,
    counts: bool = True,
) -> int:
    """The aggregator's follow-up pass: raised events of the touched days, then (unless told not
    to) today's counts; return how many raised events were written."""
    n = update_raised(influx, days)
    if counts:
        update_counts(influx, today, k)
    return n
