"""Abnormal-value flags, plausibility, daily hut statistics, and health line protocol (real influxd)."""

from __future__ import annotations

import datetime as dt

import pytest

from cloud.health.flags import implausible, screen
from cloud.health.lines import health_line, health_lines
from cloud.health.stats import StatRow, daily_stats
from cloud.influx import InfluxClient
from contract import HealthMeasurement

R1, R2 = "r-" + "1" * 32, "r-" + "2" * 32
T0 = 1_795_743_000_000  # 2026-11-27 09:30 Shanghai


# Tiers at and around every threshold: tests/cloud/health/test_triage.py (the one table).


@pytest.mark.parametrize(
    "values",
    [
        {"systolic_mmhg": 20, "diastolic_mmhg": 10},
        {"systolic_mmhg": 400, "diastolic_mmhg": 80},
        {"systolic_mmhg": 120, "diastolic_mmhg": 130},
        {"spo2_pct": 101},
        {"temperature_c": 45.5},
        {"glucose_mmol_l": 0.1},
        {"weight_kg": 0.5},
    ],
)
def test_implausible_values_get_a_reason(values: dict[str, float]) -> None:
    reason = implausible(values)
    assert reason is not None
    assert screen("blood_pressure", values)[1] == reason


def test_screen_plausible() -> None:
    verdict, reason = screen("blood_pressure", {"systolic_mmhg": 150, "diastolic_mmhg": 95})
    assert reason is None and verdict is not None and verdict.abnormal


def test_daily_stats_per_hut_and_shanghai_day() -> None:
    late = T0 + 14 * 3600_000 + 29 * 60_000  # 23:59 Shanghai, same day
    next_day = T0 + 14 * 3600_000 + 31 * 60_000  # 00:01 the next Shanghai day
    rows = [
        StatRow("HH-01", T0, "blood_pressure", R1, True),
        StatRow("HH-01", T0, "body_temperature", R1, False),
        StatRow("HH-01", late, "blood_pressure", R2, False),
        StatRow("HH-01", late, "pulse_oximetry", None, True),
        StatRow("HH-01", next_day, "blood_pressure", R1, False),
        StatRow("HH-02", T0, "blood_glucose", R1, False),
    ]
    days = daily_stats(rows)
    assert [(d.date, d.site) for d in days] == [
        (dt.date(2026, 11, 27), "HH-01"),
        (dt.date(2026, 11, 27), "HH-02"),
        (dt.date(2026, 11, 28), "HH-01"),
    ]
    first = days[0]
    assert (first.visits, first.measurements, first.anonymous, first.abnormal) == (2, 4, 1, 2)
    assert first.by_type == {"blood_pressure": 2, "body_temperature": 1, "pulse_oximetry": 1}
    assert first.abnormal_by_type == {"blood_pressure": 1, "pulse_oximetry": 1}
    assert first.abnormal_rate == 0.5
    assert daily_stats([]) == []


def measurement(seq: int, **kw: object) -> HealthMeasurement:
    base: dict[str, object] = {
        "device": "HH-01-BP",
        "seq": seq,
        "ts": T0,
        "resident": R1,
        "type": "blood_pressure",
        "values": {"systolic_mmhg": 150, "diastolic_mmhg": 95, "pulse_bpm": 72},
    }
    return HealthMeasurement.model_validate(base | kw)


def test_health_line_shape() -> None:
    text = health_line("HH-01", measurement(7))
    assert text == (
        "health_measurement,device=HH-01-BP,site=HH-01,type=blood_pressure seq=7i,"
        f'resident="{R1}",abnormal=true,flag="bp_raised_home",tier="recheck",diastolic_mmhg=95.0,pulse_bpm=72.0,'
        "systolic_mmhg=150.0 1795743000000000007"
    )
    anonymous = health_line("HH-01", measurement(8, resident=None))
    assert "resident" not in anonymous


def test_health_lines_round_trip_real_influxdb(influx: InfluxClient) -> None:
    db_site = "HH-97"
    ms = [
        measurement(1, device=f"{db_site}-BP"),
        measurement(2, device=f"{db_site}-BP"),  # same ts: (device, seq) keeps both
        measurement(
            3,
            device=f"{db_site}-GLU",
            type="blood_glucose",
            values={"glucose_mmol_l": 7.2, "meal": "fasting"},
        ),
    ]
    db = influx.config.health_database  # per-resident data lives there, never in the main database
    influx.write_lines("\n".join(health_lines(db_site, ms)).encode(), db=db)
    series = influx.query(
        f"SELECT seq, resident, abnormal, flag, systolic_mmhg, glucose_mmol_l, meal FROM health_measurement "
        f"WHERE site = '{db_site}' ORDER BY time",
        db=db,
    )
    rows = [dict(zip(s.columns, v, strict=True)) for s in series for v in s.values]
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert rows[0]["systolic_mmhg"] == 150.0 and rows[0]["abnormal"] is True
    assert rows[2]["glucose_mmol_l"] == 7.2 and rows[2]["meal"] == "fasting"
    assert rows[2]["flag"] == "glucose_high_fasting"
