"""GATT health characteristics: byte-exact decoding, unit conversions, rejections, round trips."""

from __future__ import annotations

import datetime as dt
from typing import TypedDict

import pytest

from contract import HealthMeasurement
from edge.ble import (
    BLOOD_PRESSURE,
    BODY_COMPOSITION,
    GLUCOSE,
    GLUCOSE_CONTEXT,
    PLX_SPOT_CHECK,
    TEMPERATURE,
    WEIGHT,
    Assembler,
    BleDecodeError,
    decode_blood_pressure,
    decode_body_composition,
    decode_glucose,
    decode_glucose_context,
    decode_notification,
    decode_spot_check,
    decode_temperature,
    decode_weight,
    encode_blood_pressure,
    encode_body_composition,
    encode_glucose,
    encode_glucose_context,
    encode_spot_check,
    encode_temperature,
    encode_weight,
    measured_ms,
)

ISSUE_FRAME = bytes.fromhex("1e 78 00 50 00 a5 f3 ea 07 0b 1b 09 1e 00 48 00 01 00 00")
WHEN = dt.datetime(2026, 11, 27, 9, 30, 0)


def _contract(reading_type: str, values: dict[str, float | str]) -> HealthMeasurement:
    return HealthMeasurement(device="HH-01-X", seq=1, ts=1, type=reading_type, values=values)


def test_issue_blood_pressure_frame() -> None:
    r = decode_blood_pressure(ISSUE_FRAME)
    assert r.type == "blood_pressure"
    assert r.values == {
        "systolic_mmhg": 120.0,
        "diastolic_mmhg": 80.0,
        "mean_arterial_mmhg": 93.3,
        "pulse_bpm": 72.0,
    }
    assert r.measured_at == WHEN
    assert (r.user_id, r.status) == (1, 0)
    assert r.details["pulse_range"] == "within" and r.details["irregular_pulse"] is False
    assert measured_ms(r, received_ms=0) == int(
        dt.datetime(2026, 11, 27, 1, 30, tzinfo=dt.UTC).timestamp() * 1000
    )
    _contract(*r.contract())


def test_issue_frame_is_what_the_encoder_writes() -> None:
    frame = encode_blood_pressure(120, 80, 93.3, measured_at=WHEN, pulse=72, user_id=1, status=0)
    assert frame == ISSUE_FRAME


def test_blood_pressure_minimal_kpa_and_status_bits() -> None:
    r = decode_blood_pressure(encode_blood_pressure(16.0, 10.7, 12.5, kpa=True))
    assert r.values == {"systolic_mmhg": 120.0, "diastolic_mmhg": 80.3, "mean_arterial_mmhg": 93.8}
    assert r.measured_at is None and r.user_id is None
    r = decode_blood_pressure(encode_blood_pressure(150, 95, 113.3, user_id=0xFF, status=0b01_0101))
    assert r.user_id is None  # 0xFF is "unknown user"
    assert r.details["body_movement"] and r.details["irregular_pulse"]
    assert r.details["pulse_range"] == "below_lower"


def test_blood_pressure_truncated_and_special() -> None:
    for n in range(len(ISSUE_FRAME)):
        with pytest.raises(BleDecodeError) as info:
            decode_blood_pressure(ISSUE_FRAME[:n])
        assert info.value.reason == "too_short"
    nan = bytearray(ISSUE_FRAME)
    nan[1:3] = b"\xff\x07"
    with pytest.raises(BleDecodeError, match="NaN"):
        decode_blood_pressure(bytes(nan))
    nres = bytearray(ISSUE_FRAME)
    nres[3:5] = b"\x00\x08"
    with pytest.raises(BleDecodeError, match="NRes"):
        decode_blood_pressure(bytes(nres))


def test_trailing_bytes_are_ignored() -> None:
    assert decode_blood_pressure(ISSUE_FRAME + b"\x00\x00").values["pulse_bpm"] == 72.0


def test_weight_si_with_bmi_height() -> None:
    # flags 0x0e: SI, timestamp, user, BMI+height; 70.5 kg = 14100 x 0.005; BMI 24.4; 1.700 m
    frame = bytes.fromhex("0e 14 37 ea 07 0b 1b 09 1e 00 02 f4 00 a4 06")
    r = decode_weight(frame)
    assert r.type == "body_composition"
    assert r.values == {"weight_kg": 70.5, "bmi": 24.4, "height_cm": 170.0}
    assert (r.measured_at, r.user_id) == (WHEN, 2)
    assert encode_weight(70.5, measured_at=WHEN, user_id=2, bmi=24.4, height=1.7) == frame


def test_weight_imperial_converted() -> None:
    r = decode_weight(encode_weight(154.32, imperial=True, bmi=22.1, height=66.9))
    assert r.values == {"weight_kg": 69.998, "bmi": 22.1, "height_cm": 169.9}
    assert r.details["unit"] == "lb"


def test_weight_unsuccessful_rejected() -> None:
    with pytest.raises(BleDecodeError) as info:
        decode_weight(b"\x00\xff\xff")
    assert info.value.reason == "measurement_unsuccessful"


def test_body_composition_all_in_one() -> None:
    frame = encode_body_composition(
        23.4, measured_at=WHEN, user_id=3, impedance_ohm=480.5, weight=63.2, height=1.655
    )
    r = decode_body_composition(frame)
    assert r.values == {"body_fat_pct": 23.4, "weight_kg": 63.2, "height_cm": 165.5}
    assert r.details["impedance_ohm"] == 480.5 and r.complete
    _contract(*r.contract())


def test_body_composition_optional_masses_decoded_in_order() -> None:
    # flags 0x0178: basal, muscle %, muscle mass, fat-free mass, body water mass (SI)
    frame = bytes.fromhex("78 01 c8 00 d0 1a 7c 01 c0 5d 10 b9 50 78")
    r = decode_body_composition(frame)
    assert r.values == {"body_fat_pct": 20.0}
    assert r.details["basal_metabolism_kj"] == 6864
    assert r.details["muscle_pct"] == 38.0
    assert r.details["muscle_mass_kg"] == 120.0
    assert r.details["fat_free_mass_kg"] == 236.88
    assert r.details["body_water_mass_kg"] == 154.0
    assert not r.complete


def test_temperature_celsius_and_fahrenheit() -> None:
    r = decode_temperature(bytes.fromhex("06 6e 01 00 ff ea 07 0b 1b 09 1e 00 03"))
    assert r.values == {"temperature_c": 36.6}
    assert (r.measured_at, r.details["site"]) == (WHEN, "ear")
    r = decode_temperature(encode_temperature(98.6, fahrenheit=True))
    assert r.values == {"temperature_c": 37.0} and r.details["unit"] == "F"
    with pytest.raises(BleDecodeError) as info:
        decode_temperature(bytes.fromhex("00 ff ff 7f 00"))  # FLOAT NaN
    assert info.value.reason == "special_value"


def test_glucose_mol_per_litre_exact() -> None:
    frame = encode_glucose(
        42, WHEN, 0.0063, offset_min=-5, status=0x0001
    )  # low battery is not a fault
    r = decode_glucose(frame)
    assert r.values == {"glucose_mmol_l": 6.3}
    assert r.measured_at == WHEN - dt.timedelta(minutes=5)
    assert r.details["seq"] == 42 and r.details["sample"] == "capillary_whole_blood"
    assert r.details["location"] == "finger"


def test_glucose_kg_per_litre_converted_with_molar_mass() -> None:
    # flags 0x02 (concentration, kg/L); 100 mg/dL = 0.001 kg/L = SFLOAT 0xB064
    frame = bytes.fromhex("02 07 00 ea 07 0b 1b 09 1e 00 64 b0 11")
    r = decode_glucose(frame)
    assert r.values == {"glucose_mmol_l": 5.55}  # 100 / 18.016
    assert r.details["unit"] == "kg/L"


@pytest.mark.parametrize(("status", "reason"), [(0x0004, "sensor_fault"), (0x0020, "sensor_fault")])
def test_glucose_sensor_faults_rejected(status: int, reason: str) -> None:
    with pytest.raises(BleDecodeError) as info:
        decode_glucose(encode_glucose(1, WHEN, 0.0055, status=status))
    assert info.value.reason == reason


def test_glucose_without_value_or_control_solution_rejected() -> None:
    with pytest.raises(BleDecodeError, match="no concentration"):
        decode_glucose(bytes.fromhex("00 01 00 ea 07 0b 1b 09 1e 00"))
    with pytest.raises(BleDecodeError) as info:
        decode_glucose(encode_glucose(1, WHEN, 0.0055, sample_type=10, location=4))
    assert info.value.reason == "control_solution"


def test_glucose_context_meal() -> None:
    assert decode_glucose_context(encode_glucose_context(9, 3)) == (9, "fasting")
    assert decode_glucose_context(encode_glucose_context(9, 2)) == (9, "postprandial")
    assert decode_glucose_context(encode_glucose_context(9, 5)) == (9, "random")
    assert decode_glucose_context(encode_glucose_context(9, None)) == (9, None)
    # carbohydrate field present before the meal: flags 0x03
    assert decode_glucose_context(bytes.fromhex("03 09 00 01 32 d0 03")) == (9, "fasting")


def test_spot_check() -> None:
    frame = encode_spot_check(97, 72, measured_at=WHEN, status=0x0080, device_status=0, pai=3.5)
    r = decode_spot_check(frame)
    assert r.values == {"spo2_pct": 97.0, "pulse_bpm": 72.0}
    assert r.details["pulse_amplitude_index_pct"] == 3.5
    assert decode_spot_check(bytes.fromhex("00 61 00 48 00")).values == {
        "spo2_pct": 97.0,
        "pulse_bpm": 72.0,
    }


class SpotCheckFlags(TypedDict, total=False):
    status: int
    device_status: int


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"status": 0x8000}, "invalid_measurement"),
        ({"status": 0x2000}, "invalid_measurement"),
        ({"status": 0x0800}, "test_data"),
        ({"device_status": 0x008000}, "sensor_fault"),
    ],
)
def test_spot_check_unusable_rejected(kwargs: SpotCheckFlags, reason: str) -> None:
    with pytest.raises(BleDecodeError) as info:
        decode_spot_check(encode_spot_check(97, 72, **kwargs))
    assert info.value.reason == reason


def test_spot_check_clock_not_set_uses_arrival_time() -> None:
    r = decode_spot_check(encode_spot_check(97, 72, measured_at=WHEN, clock_not_set=True))
    assert measured_ms(r, received_ms=123) == 123


def test_registry_by_uuid_forms() -> None:
    assert decode_notification("2A35", ISSUE_FRAME).type == "blood_pressure"
    assert decode_notification(0x2A35, ISSUE_FRAME).type == "blood_pressure"
    assert decode_notification(BLOOD_PRESSURE.upper(), ISSUE_FRAME).type == "blood_pressure"
    with pytest.raises(BleDecodeError) as info:
        decode_notification("2A37", b"\x00\x48")
    assert info.value.reason == "unsupported_characteristic"


def test_assembler_glucose_with_context() -> None:
    a = Assembler()
    assert a.feed(GLUCOSE, encode_glucose(5, WHEN, 0.0072, context_follows=True)) == []
    assert a.feed(GLUCOSE_CONTEXT, encode_glucose_context(4, 3)) == []  # another record's context
    (r,) = a.feed(GLUCOSE_CONTEXT, encode_glucose_context(5, 3))
    assert r.values == {"glucose_mmol_l": 7.2, "meal": "fasting"}
    _contract(*r.contract())


def test_assembler_releases_glucose_when_no_context_comes() -> None:
    a = Assembler()
    assert a.feed(GLUCOSE, encode_glucose(5, WHEN, 0.0072, context_follows=True)) == []
    (r,) = a.flush()
    assert r.values == {"glucose_mmol_l": 7.2}


def test_assembler_merges_weight_and_body_composition_either_order() -> None:
    weight = encode_weight(70.5, bmi=24.4, height=1.7)
    composition = encode_body_composition(21.5, impedance_ohm=500)
    for first, second in (
        ((WEIGHT, weight), (BODY_COMPOSITION, composition)),
        ((BODY_COMPOSITION, composition), (WEIGHT, weight)),
    ):
        a = Assembler()
        assert a.feed(*first) == []
        (r,) = a.feed(*second)
        assert r.values == {
            "weight_kg": 70.5,
            "bmi": 24.4,
            "height_cm": 170.0,
            "body_fat_pct": 21.5,
        }


def test_assembler_two_weights_do_not_merge_and_lonely_fat_is_dropped() -> None:
    a = Assembler()
    assert a.feed(WEIGHT, encode_weight(70.5)) == []
    (first,) = a.feed(WEIGHT, encode_weight(80.0))
    assert first.values == {"weight_kg": 70.5}
    (second,) = a.feed(TEMPERATURE, encode_temperature(36.5))[:1]
    assert second.values == {"weight_kg": 80.0}
    assert a.feed(BODY_COMPOSITION, encode_body_composition(20.0)) == []
    assert a.flush() == [] and a.incomplete == 1


def test_assembler_passes_other_readings_straight_through() -> None:
    a = Assembler()
    (r,) = a.feed(PLX_SPOT_CHECK, encode_spot_check(95, 80))
    assert r.type == "pulse_oximetry"
