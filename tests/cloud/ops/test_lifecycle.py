"""The event lifecycle, pure: the fold of changes, dedup, deadlines and overdue, the plan."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cloud.ops.lifecycle import Event, apply, change_for, fold, plan
from cloud.ops.rules import BY_NAME, DEADLINE_MS, HOUR_MS, Verdict

RULE = BY_NAME["gateway_offline"]  # major: 4 h to resolve
T0 = 1_741_140_000_000


def _c(action, at, by="auto", note=""):
    return change_for(RULE, "WS-0101", action, at, 1.0, by=by, note=note, opened_ms=T0)


def test_open_ack_resolve():
    (ev,) = fold(
        [_c("open", T0), _c("acknowledge", T0 + 5, "tok1"), _c("resolve", T0 + 9, "tok1", "fixed")]
    )
    assert ev.state == "resolved" and ev.opened_ms == T0
    assert (ev.acknowledged_ms, ev.acknowledged_by) == (T0 + 5, "tok1")
    assert (ev.resolved_ms, ev.resolved_by, ev.note) == (T0 + 9, "tok1", "fixed")
    assert ev.id == f"gateway_offline:WS-0101:{T0}"


def test_duplicates_from_many_evaluators_are_no_ops():
    log = [
        _c("open", T0),
        _c("open", T0 + 1),
        _c("open", T0 + 2),
        _c("resolve", T0 + 3),
        _c("resolve", T0 + 4),
    ]
    (ev,) = fold(log)
    assert ev.opened_ms == T0 and ev.state == "resolved" and ev.resolved_ms == T0 + 3


def test_any_interleaving_of_two_evaluators_gives_the_same_state():
    a = [_c("open", T0), _c("resolve", T0 + 100)]
    b = [_c("open", T0 + 1), _c("resolve", T0 + 101)]
    results = set()
    for order in itertools.permutations(a + b):
        ordered = sorted(order, key=lambda c: c.at_ms)
        results.add(tuple((e.opened_ms, e.state, e.resolved_ms) for e in fold(ordered)))
    assert results == {((T0, "resolved", T0 + 100),)}


def test_transitions_that_do_not_apply_are_no_ops():
    assert apply(None, _c("acknowledge", T0)) == (None, False)
    assert apply(None, _c("resolve", T0)) == (None, False)
    (acked,) = fold([_c("open", T0), _c("acknowledge", T0 + 1, "a")])
    again, applied = apply(acked, _c("acknowledge", T0 + 2, "b"))
    assert not applied and again is acked
    (done,) = fold([_c("open", T0), _c("resolve", T0 + 1)])
    assert apply(done, _c("acknowledge", T0 + 2)) == (done, False)
    assert apply(done, _c("resolve", T0 + 2)) == (done, False)


def test_a_new_episode_after_resolve():
    eps = fold(
        [_c("open", T0), _c("resolve", T0 + 1), _c("acknowledge", T0 + 2), _c("open", T0 + 3)]
    )
    assert [(e.opened_ms, e.state) for e in eps] == [(T0, "resolved"), (T0 + 3, "open")]


def test_deadline_by_severity_and_overdue_with_an_injected_clock():
    (ev,) = fold([_c("open", T0)])
    assert ev.deadline_ms == T0 + DEADLINE_MS["major"] == T0 + 4 * HOUR_MS
    assert not ev.overdue(ev.deadline_ms)  # at the deadline: not yet
    assert ev.overdue(ev.deadline_ms + 1)
    (acked,) = fold([_c("open", T0), _c("acknowledge", T0 + 1)])
    assert acked.overdue(ev.deadline_ms + 1)  # acknowledging does not stop the clock
    (done,) = fold([_c("open", T0), _c("resolve", T0 + 1)])
    assert not done.overdue(ev.deadline_ms + 1)
    crit = change_for(BY_NAME["ingest_stalled"], "ingest-1", "open", T0)
    assert crit.deadline_ms == T0 + HOUR_MS


def _verdict(firing, clear):
    n = len(firing)
    return Verdict(
        [f"S{i}" for i in range(n)], np.array(firing), np.array(clear), np.arange(n, dtype=float)
    )


def test_plan_skips_a_subject_without_a_name():
    v = Verdict(["", "S1"], np.array([True, True]), np.array([False, False]), np.zeros(2))
    assert [c.subject for c in plan(RULE, v, {}, T0)] == ["S1"]


def _event(subject, state):
    return Event(RULE.name, subject, T0, state, "major", "field", T0 + 1, 0.0)


@pytest.mark.parametrize(
    ("firing", "clear", "state", "expect"),
    [
        (True, False, None, "open"),
        (True, False, "resolved", "open"),  # a new episode
        (True, False, "open", None),  # dedup: one open event per (rule, subject)
        (True, False, "acknowledged", None),
        (False, True, "open", "resolve"),  # auto-resolve
        (False, True, "acknowledged", "resolve"),
        (False, True, None, None),
        (False, True, "resolved", None),
        (False, False, "open", None),  # the band: kept
    ],
)
def test_plan(firing, clear, state, expect):
    current = {} if state is None else {"S0": _event("S0", state)}
    changes = plan(RULE, _verdict([firing], [clear]), current, T0 + 10)
    assert [c.action for c in changes] == ([] if expect is None else [expect])
    if expect == "resolve":
        assert changes[0].by == "auto" and changes[0].deadline_ms == T0 + DEADLINE_MS["major"]
