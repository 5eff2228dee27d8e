"""Weight Measurement (0x2A9D) and Body Composition Measurement (0x2A9C): decode and encode.

Both map to contract type `body_composition`. SI masses have resolution 0.005 kg, imperial
0.01 lb (converted with 1 lb = 0.45359237 kg exactly, rounded to 1 g); SI height 0.001 m,
imperial 0.1 in (1 in = 2.54 cm exactly); BMI 0.1 kg/m2; percentages 0.1 %.
A field equal to 0xFFFF ("measurement unsuccessful") is rejected.
"""

from __future__ import annotations

import datetime as dt
import struct

from edge.ble.errors import BleDecodeError
from edge.ble.ieee11073 import Reader, encode_date_time
from edge.ble.reading import BleReading

WEIGHT_UUID = 0x2A9D
BODY_COMPOSITION_UUID = 0x2A9C
LB_TO_KG = 0.45359237
UNSUCCESSFUL = 0xFFFF
USER_UNKNOWN = 0xFF

W_IMPERIAL, W_TIMESTAMP, W_USER, W_BMI_HEIGHT = 0x01, 0x02, 0x04, 0x08

BC_IMPERIAL, BC_TIMESTAMP, BC_USER = 0x0001, 0x0002, 0x0004
BC_BASAL, BC_MUSCLE_PCT, BC_MUSCLE_MASS, BC_FAT_FREE = 0x0008, 0x0010, 0x0020, 0x0040
BC_SOFT_LEAN, BC_WATER, BC_IMPEDANCE, BC_WEIGHT, BC_HEIGHT = 0x0080, 0x0100, 0x0200, 0x0400, 0x0800
BC_MULTI_PACKET = 0x1000


def mass_kg(raw: int, imperial: bool) -> float:
    """Mass field to kg: 0.005 kg steps (SI) or 0.01 lb steps (imperial)."""
    if raw == UNSUCCESSFUL:
        raise BleDecodeError("measurement_unsuccessful", "mass field is 0xFFFF")
    return round(raw * 0.01 * LB_TO_KG, 3) if imperial else raw / 200


def height_cm(raw: int, imperial: bool) -> float:
    """Height field to cm: 0.001 m steps (SI) or 0.1 inch steps (imperial)."""
    return round(raw * 0.254, 1) if imperial else raw / 10


def _user(raw: int | None) -> int | None:
    return None if raw is None or raw == USER_UNKNOWN else raw


def decode_weight(data: bytes) -> BleReading:
    """Decode one Weight Measurement into body_composition values (weight_kg, height_cm, bmi)."""
    r = Reader(data, "weight measurement")
    flags = r.u8()
    imperial = bool(flags & W_IMPERIAL)
    values: dict[str, float | str] = {"weight_kg": mass_kg(r.u16(), imperial)}
    measured_at = r.date_time() if flags & W_TIMESTAMP else None
    user = r.u8() if flags & W_USER else None
    if flags & W_BMI_HEIGHT:
        values["bmi"] = r.u16() / 10
        values["height_cm"] = height_cm(r.u16(), imperial)
    unit = "lb" if imperial else "kg"
    return BleReading("body_composition", values, measured_at, _user(user), details={"unit": unit})


def encode_weight(
    weight: float,
    *,
    imperial: bool = False,
    measured_at: dt.datetime | None = None,
    user_id: int | None = None,
    bmi: float | None = None,
    height: float | None = None,
) -> bytes:
    """Encode a Weight Measurement: weight in kg or lb, height in m or inches (as `imperial` says)."""
    if (bmi is None) != (height is None):
        raise ValueError("BMI and height go together")
    flags = (W_IMPERIAL if imperial else 0) | (W_TIMESTAMP if measured_at else 0)
    flags |= (W_USER if user_id is not None else 0) | (W_BMI_HEIGHT if bmi is not None else 0)
    out = bytearray([flags]) + struct.pack("<H", round(weight * (100 if imperial else 200)))
    if measured_at:
        out += encode_date_time(measured_at)
    if user_id is not None:
        out.append(user_id)
    if bmi is not None and height is not None:
        out += struct.pack("<HH", round(bmi * 10), round(height * (10 if imperial else 1000)))
    return bytes(out)


def decode_body_composition(data: bytes) -> BleReading:
    """Decode one Body Composition Measurement; `complete` is False when it carries no weight."""
    r = Reader(data, "body composition measurement")
    flags = r.u16()
    imperial = bool(flags & BC_IMPERIAL)
    fat = r.u16()
    if fat == UNSUCCESSFUL:
        raise BleDecodeError("measurement_unsuccessful", "body fat percentage is 0xFFFF")
    values: dict[str, float | str] = {"body_fat_pct": fat / 10}
    details: dict[str, int | float | str | bool] = {"unit": "lb" if imperial else "kg"}
    measured_at = r.date_time() if flags & BC_TIMESTAMP else None
    user = r.u8() if flags & BC_USER else None
    if flags & BC_BASAL:
        details["basal_metabolism_kj"] = r.u16()
    if flags & BC_MUSCLE_PCT:
        details["muscle_pct"] = r.u16() / 10
    for bit, name in (
        (BC_MUSCLE_MASS, "muscle_mass_kg"),
        (BC_FAT_FREE, "fat_free_mass_kg"),
        (BC_SOFT_LEAN, "soft_lean_mass_kg"),
        (BC_WATER, "body_water_mass_kg"),
    ):
        if flags & bit:
            details[name] = mass_kg(r.u16(), imperial)
    if flags & BC_IMPEDANCE:
        details["impedance_ohm"] = r.u16() / 10
    if flags & BC_WEIGHT:
        values["weight_kg"] = mass_kg(r.u16(), imperial)
    if flags & BC_HEIGHT:
        values["height_cm"] = height_cm(r.u16(), imperial)
    if flags & BC_MULTI_PACKET:
        details["multi_packet"] = True
    return BleReading("body_composition", values, measured_at, _user(user), details=details)


def encode_body_composition(
    body_fat_pct: float,
    *,
    imperial: bool = False,
    measured_at: dt.datetime | None = None,
    user_id: int | None = None,
    impedance_ohm: float | None = None,
    weight: float | None = None,
    height: float | None = None,
) -> bytes:
    """Encode a Body Composition Measurement with the fields the simulated scale sends."""
    flags = (BC_IMPERIAL if imperial else 0) | (BC_TIMESTAMP if measured_at else 0)
    flags |= (BC_USER if user_id is not None else 0) | (
        BC_IMPEDANCE if impedance_ohm is not None else 0
    )
    flags |= (BC_WEIGHT if weight is not None else 0) | (BC_HEIGHT if height is not None else 0)
    out = bytearray(struct.pack("<HH", flags, round(body_fat_pct * 10)))
    if measured_at:
        out += encode_date_time(measured_at)
    if user_id is not None:
        out.append(user_id)
    if impedance_ohm is not None:
        out += struct.pack("<H", round(impedance_ohm * 10))
    if weight is not None:
        out += struct.pack("<H", round(weight * (100 if imperial else 200)))
    if height is not None:
        out += struct.pack("<H", round(height * (10 if imperial else 1000)))
    return bytes(out)
