"""The five hut instruments as data: the frames each sends for a visit, what they should decode to,
and the malformed frames real instruments sometimes send."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass

from edge.ble import decode as gatt
from edge.ble.blood_pressure import encode_blood_pressure
from edge.ble.glucose import encode_glucose, encode_glucose_context
from edge.ble.ieee11073 import FLOAT_NAN, SFLOAT_NAN, SFLOAT_NRES
from edge.ble.oximeter import encode_spot_check
from edge.ble.thermometer import encode_temperature
from edge.ble.weight import encode_body_composition, encode_weight
from firmware_sim.health.residents import Truth

Frame = tuple[str, bytes]
Expected = tuple[str, dict[str, float | str]]
MEAL_CODES = {"fasting": 3, "postprandial": 2, "random": 4}


def _bp(t: Truth, when: dt.datetime, seq: int) -> list[Frame]:
    frame = encode_blood_pressure(
        t.systolic,
        t.diastolic,
        t.mean_arterial,
        measured_at=when,
        pulse=t.pulse,
        user_id=0xFF,
        status=0,
    )
    return [(gatt.BLOOD_PRESSURE, frame)]


def _bp_expected(t: Truth) -> Expected:
    return "blood_pressure", {
        "systolic_mmhg": float(t.systolic),
        "diastolic_mmhg": float(t.diastolic),
        "mean_arterial_mmhg": t.mean_arterial,
        "pulse_bpm": float(t.pulse),
    }


def _bp_bad(t: Truth, when: dt.datetime, rng: random.Random) -> tuple[Frame, str]:
    frame = bytearray(_bp(t, when, 0)[0][1])
    kind = rng.choice(("too_short", "special_value", "implausible"))
    if kind == "too_short":
        return (gatt.BLOOD_PRESSURE, bytes(frame[: rng.randint(1, 6)])), kind
    if kind == "special_value":
        frame[1:3] = rng.choice((SFLOAT_NAN, SFLOAT_NRES)).to_bytes(2, "little")
        return (gatt.BLOOD_PRESSURE, bytes(frame)), kind
    frame[1:3] = (400).to_bytes(2, "little")  # decodes, but no living person has systolic 400
    return (gatt.BLOOD_PRESSURE, bytes(frame)), kind


def _scale(t: Truth, when: dt.datetime, seq: int) -> list[Frame]:
    weight = encode_weight(t.weight_kg, measured_at=when, bmi=t.bmi, height=t.height_cm / 100)
    composition = encode_body_composition(t.body_fat_pct, measured_at=when, impedance_ohm=512.3)
    return [(gatt.WEIGHT, weight), (gatt.BODY_COMPOSITION, composition)]


def _scale_expected(t: Truth) -> Expected:
    return "body_composition", {
        "weight_kg": t.weight_kg,
        "bmi": t.bmi,
        "height_cm": t.height_cm,
        "body_fat_pct": t.body_fat_pct,
    }


def _scale_bad(t: Truth, when: dt.datetime, rng: random.Random) -> tuple[Frame, str]:
    return (gatt.WEIGHT, b"\x00\xff\xff"), "measurement_unsuccessful"


def _thermo(t: Truth, when: dt.datetime, seq: int) -> list[Frame]:
    return [(gatt.TEMPERATURE, encode_temperature(t.temperature_c, measured_at=when, site=3))]


def _thermo_expected(t: Truth) -> Expected:
    return "body_temperature", {"temperature_c": t.temperature_c}


def _thermo_bad(t: Truth, when: dt.datetime, rng: random.Random) -> tuple[Frame, str]:
    return (gatt.TEMPERATURE, b"\x00" + FLOAT_NAN.to_bytes(4, "little")), "special_value"


def _glucose(t: Truth, when: dt.datetime, seq: int) -> list[Frame]:
    measurement = encode_glucose(seq, when, t.glucose_mmol_l / 1000, context_follows=True)
    return [
        (gatt.GLUCOSE, measurement),
        (gatt.GLUCOSE_CONTEXT, encode_glucose_context(seq, MEAL_CODES[t.meal])),
    ]


def _glucose_expected(t: Truth) -> Expected:
    return "blood_glucose", {"glucose_mmol_l": t.glucose_mmol_l, "meal": t.meal}


def _glucose_bad(t: Truth, when: dt.datetime, rng: random.Random) -> tuple[Frame, str]:
    frame = encode_glucose(
        rng.randint(1, 9999), when, 0.0055, status=0x0004
    )  # sample size insufficient
    return (gatt.GLUCOSE, frame), "sensor_fault"


def _oximeter(t: Truth, when: dt.datetime, seq: int) -> list[Frame]:
    return [
        (
            gatt.PLX_SPOT_CHECK,
            encode_spot_check(t.spo2, t.spo2_pulse, measured_at=when, status=0x0080),
        )
    ]


def _oximeter_expected(t: Truth) -> Expected:
    return "pulse_oximetry", {"spo2_pct": float(t.spo2), "pulse_bpm": float(t.spo2_pulse)}


def _oximeter_bad(t: Truth, when: dt.datetime, rng: random.Random) -> tuple[Frame, str]:
    return (
        gatt.PLX_SPOT_CHECK,
        encode_spot_check(t.spo2, t.spo2_pulse, status=0x8000),
    ), "invalid_measurement"


@dataclass(frozen=True, slots=True)
class Instrument:
    """One kind of hut instrument described as data."""

    suffix: str
    frames: Callable[[Truth, dt.datetime, int], list[Frame]]
    expected: Callable[[Truth], Expected]
    malformed: Callable[[Truth, dt.datetime, random.Random], tuple[Frame, str]]


INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument("BP", _bp, _bp_expected, _bp_bad),
    Instrument("BC", _scale, _scale_expected, _scale_bad),
    Instrument("TEMP", _thermo, _thermo_expected, _thermo_bad),
    Instrument("GLU", _glucose, _glucose_expected, _glucose_bad),
    Instrument("SPO2", _oximeter, _oximeter_expected, _oximeter_bad),
)
