"""Resident sessions: card tap, pseudonym only, timeout, replayed records, explicit end."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contract import pseudonymize
from edge.errors import ConfigError, FrameError
from edge.health_session import CLOCK_SKEW_MS, SessionTracker, decode_card_tap

KEY = b"district-key-for-tests"
CARD = "SH1234567890123456"
T0 = 1_795_743_000_000


class Clock:
    """A settable epoch-ms clock."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_tap_gives_contract_pseudonym_and_keeps_no_card(clock: Clock) -> None:
    tracker = SessionTracker(KEY, timeout_s=60, clock=clock)
    resident = tracker.tap(CARD)
    assert resident == pseudonymize(KEY, CARD)
    assert CARD not in repr(vars(tracker)) and CARD not in repr(tracker.current())


def test_measurements_in_session_carry_pseudonym(clock: Clock) -> None:
    tracker = SessionTracker(KEY, timeout_s=60, clock=clock)
    resident = tracker.tap(CARD)
    clock.now += 30_000
    m = tracker.measurement(
        "HH-01-BP", 1, clock.now, "blood_pressure", {"systolic_mmhg": 120, "diastolic_mmhg": 80}
    )
    assert m.resident == resident


def test_no_session_means_no_resident_but_still_a_measurement(clock: Clock) -> None:
    tracker = SessionTracker(KEY, clock=clock)
    m = tracker.measurement("HH-01-TEMP", 1, clock.now, "body_temperature", {"temperature_c": 36.5})
    assert m.resident is None


def test_timeout_counts_from_last_activity(clock: Clock) -> None:
    tracker = SessionTracker(KEY, timeout_s=60, clock=clock)
    resident = tracker.tap(CARD)
    clock.now += 50_000
    assert tracker.resident_for(clock.now) == resident  # extends the session
    clock.now += 50_000
    assert tracker.resident_for() == resident
    clock.now += 60_000
    assert tracker.resident_for() is None
    assert tracker.current() is None


def test_new_tap_replaces_session_and_end_closes(clock: Clock) -> None:
    tracker = SessionTracker(KEY, clock=clock)
    tracker.tap(CARD)
    other = tracker.tap("SH9999999999999999")
    assert tracker.resident_for() == other
    tracker.end()
    assert tracker.resident_for() is None


def test_replayed_old_record_not_attributed(clock: Clock) -> None:
    tracker = SessionTracker(KEY, clock=clock)
    tracker.tap(CARD)
    assert tracker.resident_for(clock.now - CLOCK_SKEW_MS - 1) is None
    assert tracker.resident_for(clock.now - CLOCK_SKEW_MS + 1) is not None


def test_bad_inputs() -> None:
    with pytest.raises(ConfigError):
        SessionTracker(b"")
    with pytest.raises(ConfigError):
        SessionTracker(KEY, timeout_s=0)
    with pytest.raises(FrameError):
        SessionTracker(KEY).tap("   ")
    with pytest.raises(ValidationError):
        SessionTracker(KEY).measurement("HH-01-BP", 1, T0, "blood_pressure", {"systolic_mmhg": 120})


def test_card_tap_frames() -> None:
    assert decode_card_tap(b"SH1234567890123456\r\n") == "SH1234567890123456"
    for bad in (b"\xff\xfe", b"12", b"SH12-34;DROP"):
        with pytest.raises(FrameError) as info:
            decode_card_tap(bad)
        assert info.value.reason == "bad_card"
