"""Temperature Measurement (0x2A1C, Health Thermometer): decode and encode; °F converted to °C."""

from __future__ import annotations

import datetime as dt
import struct

from edge.ble.ieee11073 import Reader, encode_date_time, encode_float
from edge.ble.reading import BleReading

UUID = 0x2A1C
FLAG_FAHRENHEIT, FLAG_TIMESTAMP, FLAG_TYPE = 0x01, 0x02, 0x04
TEMPERATURE_TYPES = {
    1: "armpit",
    2: "body",
    3: "ear",
    4: "finger",
    5: "gastro_intestinal",
    6: "mouth",
    7: "rectum",
    8: "toe",
    9: "tympanum",
}


def fahrenheit_to_celsius(value: float) -> float:
    """°F to °C, rounded to 0.01 °C."""
    return round((value - 32) * 5 / 9, 2)


def decode_temperature(data: bytes) -> BleReading:
    """Decode one Temperature Measurement into body_temperature (temperature_c)."""
    r = Reader(data, "temperature measurement")
    flags = r.u8()
    value = r.float32()
    fahrenheit = bool(flags & FLAG_FAHRENHEIT)
    measured_at = r.date_time() if flags & FLAG_TIMESTAMP else None
    details: dict[str, int | float | str | bool] = {"unit": "F" if fahrenheit else "C"}
    if flags & FLAG_TYPE:
        details["site"] = TEMPERATURE_TYPES.get(r.u8(), "reserved")
    celsius = fahrenheit_to_celsius(value) if fahrenheit else value
    return BleReading("body_temperature", {"temperature_c": celsius}, measured_at, details=details)


def encode_temperature(
    value: float,
    *,
    fahrenheit: bool = False,
    measured_at: dt.datetime | None = None,
    site: int | None = None,
) -> bytes:
    """Encode a Temperature Measurement (value in the unit `fahrenheit` selects)."""
    flags = (FLAG_FAHRENHEIT if fahrenheit else 0) | (FLAG_TIMESTAMP if measured_at else 0)
    flags |= FLAG_TYPE if site is not None else 0
    out = bytearray([flags]) + struct.pack("<I", encode_float(value))
    if measured_at:
        out += encode_date_time(measured_at)
    if site is not None:
        out.append(site)
    return bytes(out)
