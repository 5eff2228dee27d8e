"""The follow-up fold (pure): open, attach, escalate, contacted, closed, reopened, overdue by an
injected clock; the same follow-ups whatever order the events come in; the k-suppressed counts."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from cloud.health.followups import Event, EventKind, counts, due_day, fold, followup_id
from cloud.health.worklist import Reading, raised_events, raised_lines
from contract.days import day_start_ms, number_of

R1, R2 = "r-" + "1" * 32, "r-" + "2" * 32
D0 = dt.date(2026, 3, 2)  # a Monday


def at(day: dt.date, hour: int = 9) -> int:
    """ns of a Shanghai time."""
    return (day_start_ms(number_of(day)) + hour * 3_600_000) * 1_000_000


def raised(
    resident: str, day: dt.date, tier: str = "refer", reason: str = "hyperglycaemia", hour: int = 9
) -> Event:
    code = {"refer": "glucose_high_fasting", "urgent": "glucose_very_high"}[tier]
    return Event(resident, reason, "raised", at(day, hour), tier, code)  # type: ignore[arg-type]


def action(
    resident: str, kind: EventKind, fid: str, day: dt.date, hour: int = 12, outcome: str = ""
) -> Event:
    return Event(
        resident, "hyperglycaemia", kind, at(day, hour), followup=fid, outcome=outcome, by="dr"
    )


def test_refer_is_due_in_14_days_urgent_the_same_day() -> None:
    (f,) = fold([raised(R1, D0)])
    assert (f.tier, f.due, f.status(D0)) == ("refer", D0 + dt.timedelta(days=14), "open")
    assert f.status(D0 + dt.timedelta(days=14)) == "open"
    assert f.status(D0 + dt.timedelta(days=15)) == "overdue"  # the clock is injected
    (u,) = fold([raised(R1, D0, "urgent")])
    assert (
        u.due == D0 and u.status(D0) == "open" and u.status(D0 + dt.timedelta(days=1)) == "overdue"
    )
    assert due_day(at(D0, 23) // 1_000_000, "urgent") == D0  # 23:00 Shanghai is still that day


def test_repeated_readings_attach_and_escalate() -> None:
    events = [
        raised(R1, D0),
        raised(R1, D0 + dt.timedelta(days=3)),
        raised(R1, D0 + dt.timedelta(days=5), "urgent"),
    ]
    (f,) = fold(events)
    assert f.readings == 3 and f.tier == "urgent" and f.due == D0 + dt.timedelta(days=5)
    assert f.codes == ["glucose_high_fasting", "glucose_very_high"]
    assert f.id == followup_id(R1, "hyperglycaemia", 0)


def test_one_per_resident_and_reason() -> None:
    other_reason = Event(R1, "hypertension", "raised", at(D0), "refer", "suspected_hypertension")
    fs = fold([raised(R1, D0), raised(R2, D0), other_reason, raised(R1, D0, hour=10)])
    assert sorted((f.resident, f.reason, f.readings) for f in fs) == [
        (R1, "hyperglycaemia", 2),
        (R1, "hypertension", 1),
        (R2, "hyperglycaemia", 1),
    ]


def test_lifecycle_contacted_closed_then_a_new_one() -> None:
    fid = followup_id(R1, "hyperglycaemia", 0)
    day20 = D0 + dt.timedelta(days=20)
    events = [raised(R1, D0), action(R1, "contacted", fid, D0 + dt.timedelta(days=2))]
    (f,) = fold(events)
    assert f.status(day20) == "contacted"  # contacted is never overdue
    events.append(action(R1, "closed", fid, D0 + dt.timedelta(days=4), outcome="seen_by_doctor"))
    (f,) = fold(events)
    assert (f.status(day20), f.outcome, f.closed_by) == ("closed", "seen_by_doctor", "dr")
    events.append(raised(R1, D0 + dt.timedelta(days=1), hour=8))  # late, before the close: attaches
    (f,) = fold(events)
    assert f.readings == 2
    events.append(raised(R1, D0 + dt.timedelta(days=6)))  # after the close: a new follow-up
    old, new = sorted(fold(events), key=lambda f: f.opened_ms)
    assert old.status(day20) == "closed" and new.status(D0 + dt.timedelta(days=6)) == "open"
    assert new.id == followup_id(R1, "hyperglycaemia", 1) != old.id
    # an action naming a follow-up that is not the open one changes nothing
    stale = action(R1, "closed", old.id, D0 + dt.timedelta(days=7), outcome="declined")
    assert {f.id: f.status(day20) for f in fold([*events, stale])}[new.id] == "open"  # due day 20


@given(st.permutations(list(range(6))))
def test_the_same_followups_whatever_the_arrival_order(order: list[int]) -> None:
    fid = followup_id(R1, "hyperglycaemia", 0)
    events = [
        raised(R1, D0),
        raised(R1, D0 + dt.timedelta(days=1)),
        action(R1, "contacted", fid, D0 + dt.timedelta(days=1), hour=13),
        action(R1, "closed", fid, D0 + dt.timedelta(days=2), outcome="declined"),
        raised(R1, D0 + dt.timedelta(days=3), "urgent"),
        raised(R2, D0),
    ]
    assert fold([events[i] for i in order]) == fold(events)


def _bp(resident: str, day: dt.date, sys_: float, seq: int) -> Reading:
    return Reading(
        resident,
        "HH-01-BP",
        "blood_pressure",
        seq,
        at(day) // 1_000_000,
        {"systolic_mmhg": sys_, "diastolic_mmhg": 80.0},
    )


def test_suspected_hypertension_from_the_third_raised_day_only() -> None:
    days = [D0, D0, D0 + dt.timedelta(days=2), D0 + dt.timedelta(days=9)]
    history = {
        R1: [_bp(R1, d, 142, i) for i, d in enumerate(days)]
        + [_bp(R1, D0 + dt.timedelta(days=1), 120, 9)]
    }
    events = raised_events(history[R1], history)
    assert [(e.tier, e.code, e.time_ns) for e in events] == [
        *(("recheck", "bp_raised_home", at(d) + i) for i, d in enumerate(days[:3])),
        ("refer", "suspected_hypertension", at(days[3]) + 3),  # point time: + seq ns
    ]  # the recheck ones join an open follow-up, open none
    (f,) = fold(events)
    assert f.opened_ms == at(days[3]) // 1_000_000 and f.readings == 1
    severe = _bp(R2, D0, 185, 1)  # urgent at once, from one reading
    (e,) = raised_events([severe], {R2: [severe]})
    assert (e.tier, e.code, e.reason) == ("urgent", "bp_severe", "hypertension")


def test_readings_of_two_devices_at_the_same_time_and_seq_are_two_events() -> None:
    ts = at(D0) // 1_000_000
    bp = Reading(
        R1, "HH-01-BP", "blood_pressure", 5, ts, {"systolic_mmhg": 190.0, "diastolic_mmhg": 90.0}
    )
    glu = Reading(
        R1, "HH-01-GLU", "blood_glucose", 5, ts, {"glucose_mmol_l": 7.5, "meal": "fasting"}
    )
    events = raised_events([bp, glu], {R1: [bp]})
    assert sorted((e.device, e.type, e.seq, e.reason) for e in events) == [
        ("HH-01-BP", "blood_pressure", 5, "hypertension"),
        ("HH-01-GLU", "blood_glucose", 5, "hyperglycaemia"),
    ]
    assert (
        len({line.split(" ")[0] for line in raised_lines(events)}) == 2
    )  # two series, no overwrite


def test_counts_are_suppressed_below_k() -> None:
    fs = fold(
        [raised(f"r-{i:032x}", D0) for i in range(6)] + [raised(R1, D0, "urgent", "hypoglycaemia")]
    )
    today = D0 + dt.timedelta(days=20)
    exact = {(c.state, c.reason): c for c in counts(fs, today, None)}
    assert exact[("open", "all")].followups == 7 and exact[("overdue", "all")].followups == 7
    assert (
        exact[("closed_week", "all")].followups == 0
        and not exact[("closed_week", "all")].suppressed
    )
    shown = {(c.state, c.reason): c for c in counts(fs, today, 5)}
    assert not shown[("open", "all")].suppressed
    assert shown[("open", "hypoglycaemia")].suppressed  # one resident
    assert shown[("open", "hyperglycaemia")].suppressed  # its complement
    few = {(c.state, c.reason): c for c in counts(fs[:3], today, 5)}
    assert few[("open", "all")].suppressed
