"""PLX Spot-Check Measurement (0x2A5E, Pulse Oximeter Service): decode and encode."""

from __future__ import annotations

import datetime as dt
import struct

from edge.ble.errors import BleDecodeError
from edge.ble.ieee11073 import Reader, encode_date_time, encode_sfloat
from edge.ble.reading import BleReading

UUID = 0x2A5E
FLAG_TIMESTAMP, FLAG_MEAS_STATUS, FLAG_DEVICE_STATUS, FLAG_PAI, FLAG_CLOCK_NOT_SET = 1, 2, 4, 8, 16

# Measurement Status bits that make the value unusable.
MEAS_REJECT = {
    0x0400: ("test_data", "data for demonstration"),
    0x0800: ("test_data", "data for testing"),
    0x2000: ("invalid_measurement", "measurement unavailable"),
    0x8000: ("invalid_measurement", "invalid measurement detected"),
}
# Device and Sensor Status bits that make the value unusable.
DEVICE_REJECT = {
    0x000002: "equipment malfunction detected",
    0x000800: "sensor unconnected to user",
    0x004000: "sensor malfunctioning",
    0x008000: "sensor disconnected",
}
QUESTIONABLE = 0x4000


def decode_spot_check(data: bytes) -> BleReading:
    """Decode one PLX Spot-Check Measurement into pulse_oximetry (spo2_pct, pulse_bpm)."""
    r = Reader(data, "PLX spot-check measurement")
    flags = r.u8()
    spo2, pulse = r.sfloat(), r.sfloat()
    measured_at = r.date_time() if flags & FLAG_TIMESTAMP else None
    status = r.u16() if flags & FLAG_MEAS_STATUS else None
    device_status = r.u24() if flags & FLAG_DEVICE_STATUS else None
    details: dict[str, int | float | str | bool] = {}
    if flags & FLAG_PAI:
        details["pulse_amplitude_index_pct"] = r.sfloat()
    for bit, (code, text) in MEAS_REJECT.items():
        if status is not None and status & bit:
            raise BleDecodeError(code, f"spot-check status: {text}")
    for bit, text in DEVICE_REJECT.items():
        if device_status is not None and device_status & bit:
            raise BleDecodeError("sensor_fault", f"spot-check device status: {text}")
    if status is not None and status & QUESTIONABLE:
        details["questionable"] = True
    if flags & FLAG_CLOCK_NOT_SET:
        details["clock_not_set"] = True
    return BleReading(
        "pulse_oximetry",
        {"spo2_pct": spo2, "pulse_bpm": pulse},
        measured_at,
        status=status,
        details=details,
    )


def encode_spot_check(
    spo2: float,
    pulse: float,
    *,
    measured_at: dt.datetime | None = None,
    status: int | None = None,
    device_status: int | None = None,
    pai: float | None = None,
    clock_not_set: bool = False,
) -> bytes:
    """Encode a PLX Spot-Check Measurement."""
    flags = (FLAG_TIMESTAMP if measured_at else 0) | (FLAG_MEAS_STATUS if status is not None else 0)
    flags |= (FLAG_DEVICE_STATUS if device_status is not None else 0) | (
        FLAG_PAI if pai is not None else 0
    )
    flags |= FLAG_CLOCK_NOT_SET if clock_not_set else 0
    out = bytearray([flags]) + struct.pack("<HH", encode_sfloat(spo2), encode_sfloat(pulse))
    if measured_at:
        out += encode_date_time(measured_at)
    if status is not None:
        out += struct.pack("<H", status)
    if device_status is not None:
        out += device_status.to_bytes(3, "little")
    if pai is not None:
        out += struct.pack("<H", encode_sfloat(pai))
    return bytes(out)
