"""Blood Pressure Measurement (0x2A35): decode and encode, byte-exact to the GATT Specification Supplement."""

from __future__ import annotations

import datetime as dt
import struct

from edge.ble.ieee11073 import Reader, encode_date_time, encode_sfloat
from edge.ble.reading import BleReading

UUID = 0x2A35
KPA_TO_MMHG = 760 / 101.325  # 1 kPa = 7.50062 mmHg (standard atmosphere: 760 mmHg = 101.325 kPa)

FLAG_KPA = 0x01
FLAG_TIMESTAMP = 0x02
FLAG_PULSE = 0x04
FLAG_USER = 0x08
FLAG_STATUS = 0x10
USER_UNKNOWN = 0xFF

STATUS_BITS = {
    "body_movement": 0x0001,
    "cuff_too_loose": 0x0002,
    "irregular_pulse": 0x0004,
    "improper_position": 0x0020,
}
PULSE_RANGE = {0: "within", 1: "above_upper", 2: "below_lower", 3: "reserved"}


def _pressure(value: float, kpa: bool) -> float:
    return round(value * KPA_TO_MMHG, 1) if kpa else value


def decode_blood_pressure(data: bytes) -> BleReading:
    """Decode one Blood Pressure Measurement; pressures in mmHg (kPa converted, 0.1 mmHg)."""
    r = Reader(data, "blood pressure measurement")
    flags = r.u8()
    kpa = bool(flags & FLAG_KPA)
    systolic, diastolic, mean = r.sfloat(), r.sfloat(), r.sfloat()
    values: dict[str, float | str] = {
        "systolic_mmhg": _pressure(systolic, kpa),
        "diastolic_mmhg": _pressure(diastolic, kpa),
        "mean_arterial_mmhg": _pressure(mean, kpa),
    }
    measured_at = r.date_time() if flags & FLAG_TIMESTAMP else None
    if flags & FLAG_PULSE:
        values["pulse_bpm"] = r.sfloat()
    user = r.u8() if flags & FLAG_USER else None
    status = r.u16() if flags & FLAG_STATUS else None
    details: dict[str, int | float | str | bool] = {"unit": "kPa" if kpa else "mmHg"}
    if status is not None:
        details.update({name: bool(status & bit) for name, bit in STATUS_BITS.items()})
        details["pulse_range"] = PULSE_RANGE[(status >> 3) & 0x3]
    return BleReading(
        type="blood_pressure",
        values=values,
        measured_at=measured_at,
        user_id=None if user == USER_UNKNOWN else user,
        status=status,
        details=details,
    )


def encode_blood_pressure(
    systolic: float,
    diastolic: float,
    mean_arterial: float,
    *,
    kpa: bool = False,
    measured_at: dt.datetime | None = None,
    pulse: float | None = None,
    user_id: int | None = None,
    status: int | None = None,
) -> bytes:
    """Encode a Blood Pressure Measurement (values already in the unit `kpa` selects)."""
    flags = (FLAG_KPA if kpa else 0) | (FLAG_TIMESTAMP if measured_at else 0)
    flags |= (FLAG_PULSE if pulse is not None else 0) | (FLAG_USER if user_id is not None else 0)
    flags |= FLAG_STATUS if status is not None else 0
    out = bytearray([flags])
    out += struct.pack(
        "<HHH", encode_sfloat(systolic), encode_sfloat(diastolic), encode_sfloat(mean_arterial)
    )
    if measured_at:
        out += encode_date_time(measured_at)
    if pulse is not None:
        out += struct.pack("<H", encode_sfloat(pulse))
    if user_id is not None:
        out.append(user_id)
    if status is not None:
        out += struct.pack("<H", status)
    return bytes(out)
