"""Each rule of the table at and around its boundaries (pure: no services)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from cloud.days import DAY_MS, SHANGHAI_OFFSET_MS, day_start_ms, number_of
from cloud.ops.derive import FillState, fill_state, weekly_profile
from cloud.ops.rules import (
    BY_NAME,
    DEADLINE_MS,
    HOUR_MS,
    RULES,
    BinInputs,
    FollowupInputs,
    GatewayInputs,
    Inputs,
    QuarantineInputs,
    SilenceInputs,
    TargetInputs,
    Thresholds,
    Verdict,
    WorkerInputs,
    expected_between,
    hour_of_week,
    last_collection_ms,
    next_collection_ms,
)

T = Thresholds()
# Wednesday 2025-03-05 10:00 Shanghai: the last collection was 06:00, the next is 18:00
DAY = number_of(dt.date(2025, 3, 5))
NOW = day_start_ms(DAY) + 10 * HOUR_MS


def _judge(rule: str, inputs: Inputs) -> Verdict:
    check = BY_NAME[rule].evaluate
    assert check is not None
    verdict = check(inputs, T)
    assert verdict is not None
    return verdict


def _fill(times, gross) -> FillState:
    st = fill_state(times, gross, 240.0)
    assert st is not None
    return st


def _bins(gross, reading_ms=None, rate=None, capacity=240.0):
    n = len(gross)
    return BinInputs(
        [f"WS-0101-S{i}" for i in range(n)],
        np.array(gross, dtype=np.float64),
        np.full(n, capacity),
        np.array(rate if rate is not None else [0.0] * n, dtype=np.float64),
        np.array(reading_ms if reading_ms is not None else [NOW - 60_000] * n, dtype=np.int64),
    )


def test_the_table_is_complete_and_unique():
    names = [r.name for r in RULES]
    assert len(set(names)) == len(names)
    for r in RULES:
        assert r.severity in DEADLINE_MS and r.opens and r.resolves and r.audience
        assert r.dedup_key("X") == (r.name, "X")
    assert all(r.evaluate is not None for r in RULES)


def test_collection_times_are_shanghai_hours():
    assert last_collection_ms(NOW, (6, 18)) == day_start_ms(DAY) + 6 * HOUR_MS
    assert next_collection_ms(NOW, (6, 18)) == day_start_ms(DAY) + 18 * HOUR_MS
    at_six = day_start_ms(DAY) + 6 * HOUR_MS
    assert last_collection_ms(at_six, (6, 18)) == at_six  # at the collection: it has happened
    assert next_collection_ms(at_six, (6, 18)) == day_start_ms(DAY) + 18 * HOUR_MS
    late = day_start_ms(DAY) + 23 * HOUR_MS
    assert next_collection_ms(late, (6, 18)) == day_start_ms(DAY + 1) + 6 * HOUR_MS
    early = day_start_ms(DAY) + 2 * HOUR_MS
    assert last_collection_ms(early, (6, 18)) == day_start_ms(DAY - 1) + 18 * HOUR_MS


@pytest.mark.parametrize(
    ("fill", "firing", "clear"),
    [
        (0.8999, False, False),  # just under 90 %: nothing to open (and inside the band)
        (0.90, True, False),  # at 90 %: opens
        (1.05, True, False),  # overfull
        (0.8501, False, False),  # the hysteresis band keeps an open event
        (0.8499, False, True),  # under 85 %: resolves
        (0.0, False, True),
    ],
)
def test_bin_full_boundaries(fill, firing, clear):
    v = _judge("bin_full", Inputs(NOW, bins=_bins([fill * 240.0])))
    assert (bool(v.firing[0]), bool(v.clear[0])) == (firing, clear)
    assert v.value[0] == pytest.approx(fill * 100)


def test_bin_full_reading_before_the_last_collection_is_presumed_emptied():
    six = day_start_ms(DAY) + 6 * HOUR_MS
    v = _judge("bin_full", Inputs(NOW, bins=_bins([230.0, 230.0], reading_ms=[six, six + 1])))
    assert v.firing.tolist() == [False, True]
    assert v.clear.tolist() == [True, False]


def test_bin_full_uses_each_capacity():
    b = BinInputs(
        ["A", "B"],
        np.array([90.0, 90.0]),
        np.array([100.0, 240.0]),
        np.zeros(2),
        np.full(2, NOW, dtype=np.int64),
    )
    assert _judge("bin_full", Inputs(NOW, bins=b)).firing.tolist() == [True, False]


@pytest.mark.parametrize(
    ("gross", "rate", "firing", "clear"),
    [
        (120.0, 15.0, True, False),  # 120 + 15 x 8 h = 240 = capacity: opens
        (120.0, 14.99, False, False),  # 239.9: just short, inside the band
        (100.0, 15.0, False, True),  # 220 < 95 % of 240 (228): resolves
        (216.0, 0.0, False, True),  # at 90 % the bin is bin_full's: this one clears
        (200.0, 3.5, False, False),  # predicted 228 = 95 %: at the clear bar, kept
        (200.0, 3.49, False, True),  # 227.92: under it, resolves
        (216.0, 10.0, False, True),  # already full: bin_full takes over, this one clears
        (120.0, -5.0, False, True),  # a falling weight never predicts full
    ],
)
def test_bin_predicted_full_boundaries(gross, rate, firing, clear):
    v = _judge("bin_predicted_full", Inputs(NOW, bins=_bins([gross], rate=[rate])))
    assert (bool(v.firing[0]), bool(v.clear[0])) == (firing, clear)


def _gw(offline, since, known=True):
    return GatewayInputs(
        ["WS-0101"],
        np.array([offline]),
        np.array([known]),
        np.array([since], dtype=np.int64),
    )


@pytest.mark.parametrize(
    ("offline", "for_ms", "known", "firing", "clear"),
    [
        (True, 10 * 60_000, True, False, False),  # exactly 10 min: not yet
        (True, 10 * 60_000 + 1, True, True, False),  # more than 10 min: opens
        (True, 9 * 60_000, True, False, False),  # offline but briefly: keep
        (False, 60 * 60_000, True, False, True),  # online: resolves
        (True, 60 * 60_000, False, False, False),  # never reported: no verdict
    ],
)
def test_gateway_offline_boundaries(offline, for_ms, known, firing, clear):
    v = _judge("gateway_offline", Inputs(NOW, gateways=_gw(offline, NOW - for_ms, known)))
    assert (bool(v.firing[0]), bool(v.clear[0])) == (firing, clear)


def test_hour_of_week_starts_monday_midnight_shanghai():
    monday = day_start_ms(number_of(dt.date(2025, 3, 3)))
    assert hour_of_week(np.array([monday, monday - 1, monday + 30 * HOUR_MS + 5])).tolist() == [
        0,
        167,
        30,
    ]


def test_expected_deposits_integrate_the_profile_pro_rata():
    profile = np.zeros((1, 168))
    monday = day_start_ms(number_of(dt.date(2025, 3, 3)))
    profile[0, 8] = 4.0  # Monday 08:00-09:00: 4 deposits usually
    start = np.array([monday + 8 * HOUR_MS + 30 * 60_000], dtype=np.int64)
    assert expected_between(profile, start, monday + 9 * HOUR_MS)[0] == pytest.approx(2.0)
    # a whole week later the same gap holds one more week's worth
    assert expected_between(profile, start, monday + 7 * DAY_MS + 9 * HOUR_MS)[0] == pytest.approx(
        6.0
    )
    assert expected_between(profile, start, int(start[0]) - 5)[0] == 0.0  # no negative gaps


def _silence(last_ms, weeks=4.0, per_hour=1.0, night_quiet=False):
    profile = np.full((1, 168), per_hour)
    if night_quiet:
        for d in range(7):
            profile[0, d * 24 : d * 24 + 6] = 0.0  # 00:00-06:00: nobody deposits
    return SilenceInputs(
        ["WS-0101"], np.array([last_ms], dtype=np.int64), profile, np.array([weeks])
    )


@pytest.mark.parametrize(
    ("gap_h", "weeks", "firing", "clear"),
    [
        (4.999, 4.0, False, True),  # 4.999 deposits expected: still quiet
        (5.001, 4.0, True, False),  # 5 (float integral: a hair over): broken
        (6.0, 4.0, True, False),
        (6.0, 1.99, False, False),  # not enough history to judge: no verdict to open
        (6.0, 2.0, True, False),
    ],
)
def test_station_silent_boundaries(gap_h, weeks, firing, clear):
    v = _judge("station_silent", Inputs(NOW, silence=_silence(NOW - int(gap_h * HOUR_MS), weeks)))
    assert (bool(v.firing[0]), bool(v.clear[0])) == (firing, clear)


def test_a_quiet_night_is_not_silence():
    # last deposit at 23:00, now 05:59 next morning: 7 h of gap, but only 1 h usually busy
    night = day_start_ms(DAY) + 5 * HOUR_MS + 59 * 60_000
    last = day_start_ms(DAY - 1) + 23 * HOUR_MS
    v = _judge("station_silent", Inputs(night, silence=_silence(last, night_quiet=True)))
    assert not v.firing[0] and v.value[0] == pytest.approx(1.0)
    # the same 7 h in the afternoon is 7 deposits missing: broken
    afternoon = day_start_ms(DAY) + 16 * HOUR_MS
    busy = _silence(afternoon - 7 * HOUR_MS, night_quiet=True)
    v = _judge("station_silent", Inputs(afternoon, silence=busy))
    assert v.firing[0]


def _workers(points, max_w, min_q, last_w, last_q):
    return WorkerInputs(
        ["ingest-1"],
        np.array([points], dtype=np.int64),
        np.array([max_w], dtype=np.float64),
        np.array([min_q], dtype=np.float64),
        np.array([last_w], dtype=np.float64),
        np.array([last_q], dtype=np.float64),
    )


@pytest.mark.parametrize(
    ("args", "firing", "clear"),
    [
        ((2, 0.0, 1.0, 0.0, 1.0), True, False),  # two points, nothing written, a backlog
        ((1, 0.0, 5.0, 0.0, 5.0), False, False),  # one point is not yet a stall
        ((3, 0.1, 5.0, 0.0, 5.0), False, False),  # it wrote something in the window: keep
        ((3, 0.0, 0.0, 0.0, 0.0), False, True),  # idle with no backlog is fine
        ((3, 12.0, 5.0, 12.0, 5.0), False, True),  # writing again
        ((0, 0.0, 0.0, 0.0, 0.0), False, False),  # no stats at all: no verdict
    ],
)
def test_ingest_stalled_boundaries(args, firing, clear):
    v = _judge("ingest_stalled", Inputs(NOW, workers=_workers(*args)))
    assert (bool(v.firing[0]), bool(v.clear[0])) == (firing, clear)


@pytest.mark.parametrize(
    ("recent", "day_before", "firing", "clear"),
    [
        (19.0, 0.0, False, False),  # under the floor of 20 (but not under half of it)
        (20.0, 0.0, True, False),  # the floor
        (9.9, 0.0, False, True),  # under half the bar
        (49.0, 960.0, False, False),  # usual rate 10 per 15 min: bar 50
        (50.0, 960.0, True, False),
        (24.9, 960.0, False, True),
    ],
)
def test_quarantine_spike_boundaries(recent, day_before, firing, clear):
    q = QuarantineInputs(["WS-0101"], np.array([recent]), np.array([day_before]))
    v = _judge("quarantine_spike", Inputs(NOW, quarantine=q))
    assert (bool(v.firing[0]), bool(v.clear[0])) == (firing, clear)


def test_target_missed():
    g = TargetInputs(
        ["recyclable", "dry", "sorting"],
        np.array([True, True, False]),
        np.array([False, True, False]),
        np.array([61.0, -21.0, 0.0]),
    )
    v = _judge("target_missed", Inputs(NOW, targets=g))
    assert v.firing.tolist() == [True, False, False]
    assert v.clear.tolist() == [False, True, False]  # unknown (no row): neither


def test_missing_inputs_skip_the_rule():
    for r in RULES:
        if r.evaluate is not None:
            assert r.evaluate(Inputs(NOW), T) is None


def test_fill_state_rate_since_the_last_emptying():
    t0 = NOW - 5 * HOUR_MS
    times = np.array([t0, t0 + HOUR_MS, t0 + 2 * HOUR_MS, t0 + 3 * HOUR_MS, t0 + 5 * HOUR_MS])
    gross = np.array([200.0, 210.0, 20.0, 40.0, 80.0])  # emptied between the 2nd and 3rd
    st = _fill(times, gross)
    assert st.gross_kg == 80.0 and st.reading_ms == t0 + 5 * HOUR_MS
    assert st.rate_kg_h == pytest.approx(20.0)  # 60 kg over the 3 h since emptying
    # under 30 min of readings: no rate
    assert _fill(times[-1:], gross[-1:]).rate_kg_h == 0.0
    assert fill_state(np.array([], dtype=np.int64), np.array([]), 240.0) is None
    # a small step down (re-zeroing noise) is not an emptying
    st = _fill(times[:2], np.array([100.0, 90.0]))
    assert st.rate_kg_h == 0.0


def test_weekly_profile_means_over_the_weeks_of_history():
    monday = day_start_ms(number_of(dt.date(2025, 3, 3)))
    end = monday + 28 * DAY_MS
    hours = np.array([monday + w * 7 * DAY_MS + 9 * HOUR_MS for w in range(4)], dtype=np.int64)
    profile, weeks = weekly_profile(hours, np.full(4, 6.0), end)
    assert weeks == pytest.approx(4.0 - 9 / 168)
    assert profile[9] == pytest.approx(6.0)  # 4 Mondays 09:00, 6 each
    assert profile.sum() == pytest.approx(profile[9])
    empty, w0 = weekly_profile(np.array([], dtype=np.int64), np.array([]), end)
    assert w0 == 0.0 and empty.sum() == 0.0
    assert SHANGHAI_OFFSET_MS == 8 * HOUR_MS


@pytest.mark.parametrize(
    ("known", "overdue", "firing", "clear"),
    [
        (True, 0.0, False, True),
        (True, 1.0, True, False),
        (True, 7.0, True, False),
        (False, 0.0, False, False),  # suppressed or no count: neither
    ],
)
def test_followups_overdue_boundaries(known, overdue, firing, clear):
    v = _judge("followups_overdue", Inputs(NOW, followups=FollowupInputs(known, overdue)))
    assert v.subjects == ["all"]
    assert (bool(v.firing[0]), bool(v.clear[0])) == (firing, clear)
