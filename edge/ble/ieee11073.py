"""IEEE 11073-20601 SFLOAT/FLOAT, GATT date_time and a little-endian reader, as pure functions.

SFLOAT is 16 bits: a 4-bit exponent (bits 15..12) and a 12-bit mantissa (bits 11..0), both
two's complement, value = mantissa * 10**exponent. FLOAT is 32 bits: an 8-bit exponent and a
24-bit mantissa. Mantissas at the top and bottom of the range are reserved special values
(NaN, NRes, +INF, -INF, reserved-for-future-use); the decoder rejects them whatever the exponent,
because no valid number uses those mantissas.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from decimal import Decimal

from edge.ble.errors import BleDecodeError

SFLOAT_SPECIALS: dict[int, str] = {
    0x07FF: "NaN",
    0x0800: "NRes",
    0x07FE: "+INFINITY",
    0x0802: "-INFINITY",
    0x0801: "reserved",
}
FLOAT_SPECIALS: dict[int, str] = {
    0x007FFFFF: "NaN",
    0x00800000: "NRes",
    0x007FFFFE: "+INFINITY",
    0x00800002: "-INFINITY",
    0x00800001: "reserved",
}
SFLOAT_NAN, SFLOAT_NRES, SFLOAT_PINF, SFLOAT_NINF, SFLOAT_RESERVED = (
    0x07FF,
    0x0800,
    0x07FE,
    0x0802,
    0x0801,
)
FLOAT_NAN, FLOAT_NRES, FLOAT_PINF, FLOAT_NINF = 0x007FFFFF, 0x00800000, 0x007FFFFE, 0x00800002
_SFLOAT_MAX_MANT = 2045  # 2046, 2047, -2046, -2047, -2048 are the specials
_FLOAT_MAX_MANT = 0x7FFFFD


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def _scale(mantissa: int, exponent: int) -> float:
    # mantissa / 10**k is correctly rounded, unlike mantissa * 0.1**k
    return float(mantissa * 10**exponent) if exponent >= 0 else mantissa / 10 ** (-exponent)


def sfloat_parts(raw: int) -> tuple[int, int]:
    """Split a 16-bit SFLOAT into (mantissa, exponent); raise BleDecodeError on special values."""
    mantissa_bits = raw & 0x0FFF
    if mantissa_bits in SFLOAT_SPECIALS:
        raise BleDecodeError(
            "special_value", f"SFLOAT {raw:#06x} is {SFLOAT_SPECIALS[mantissa_bits]}"
        )
    return _signed(mantissa_bits, 12), _signed(raw >> 12, 4)


def decode_sfloat(raw: int) -> float:
    """Value of a 16-bit SFLOAT; raise BleDecodeError on NaN, NRes, +/-INF and reserved."""
    mantissa, exponent = sfloat_parts(raw)
    return _scale(mantissa, exponent)


def float_parts(raw: int) -> tuple[int, int]:
    """Split a 32-bit FLOAT into (mantissa, exponent); raise BleDecodeError on special values."""
    mantissa_bits = raw & 0x00FFFFFF
    if mantissa_bits in FLOAT_SPECIALS:
        raise BleDecodeError(
            "special_value", f"FLOAT {raw:#010x} is {FLOAT_SPECIALS[mantissa_bits]}"
        )
    return _signed(mantissa_bits, 24), _signed(raw >> 24, 8)


def decode_float(raw: int) -> float:
    """Value of a 32-bit FLOAT; raise BleDecodeError on NaN, NRes, +/-INF and reserved."""
    mantissa, exponent = float_parts(raw)
    return _scale(mantissa, exponent)


def _choose(value: float, max_mant: int, min_exp: int, max_exp: int) -> tuple[int, int]:
    """(mantissa, exponent) with exponent 0 for integers, the fewest decimals otherwise, rounding if needed."""
    exact = Decimal(repr(float(value)))
    if abs(exact) > max_mant:  # too big for exponent 0: the smallest positive exponent that fits
        for exponent in range(1, max_exp + 1):
            mantissa = int(exact.scaleb(-exponent).to_integral_value())
            if abs(mantissa) <= max_mant:
                return mantissa, exponent
        raise ValueError(f"{value} does not fit the 11073 number range")
    best = (int(exact.to_integral_value()), 0)
    for exponent in range(0, min_exp - 1, -1):
        mantissa = int(exact.scaleb(-exponent).to_integral_value())
        if abs(mantissa) > max_mant:
            break
        best = (mantissa, exponent)
        if Decimal(mantissa).scaleb(exponent) == exact:
            break
    return best


def encode_sfloat(value: float, exponent: int | None = None) -> int:
    """16-bit SFLOAT of a value; exponent None picks the fewest digits that represent it exactly."""
    if math.isnan(value):
        return SFLOAT_NAN
    if math.isinf(value):
        return SFLOAT_PINF if value > 0 else SFLOAT_NINF
    if exponent is None:
        mantissa, exponent = _choose(value, _SFLOAT_MAX_MANT, -8, 7)
    else:
        mantissa = round(Decimal(repr(float(value))).scaleb(-exponent))
    if not -8 <= exponent <= 7 or abs(mantissa) > _SFLOAT_MAX_MANT:
        raise ValueError(f"{value} with exponent {exponent} does not fit an SFLOAT")
    return ((exponent & 0xF) << 12) | (mantissa & 0x0FFF)


def encode_float(value: float, exponent: int | None = None) -> int:
    """32-bit FLOAT of a value; exponent None picks the fewest digits that represent it exactly."""
    if math.isnan(value):
        return FLOAT_NAN
    if math.isinf(value):
        return FLOAT_PINF if value > 0 else FLOAT_NINF
    if exponent is None:
        mantissa, exponent = _choose(value, _FLOAT_MAX_MANT, -128, 127)
    else:
        mantissa = round(Decimal(repr(float(value))).scaleb(-exponent))
    if not -128 <= exponent <= 127 or abs(mantissa) > _FLOAT_MAX_MANT:
        raise ValueError(f"{value} with exponent {exponent} does not fit a FLOAT")
    return ((exponent & 0xFF) << 24) | (mantissa & 0x00FFFFFF)


def decode_date_time(data: bytes) -> dt.datetime | None:
    """GATT date_time (year u16, month, day, hours, minutes, seconds); None when the date is 'not known'."""
    if len(data) != 7:
        raise BleDecodeError("too_short", "date_time needs 7 bytes")
    year, month, day, hour, minute, second = struct.unpack("<HBBBBB", data)
    if year == 0 or month == 0 or day == 0:
        return None  # 0 means "not known" in the GATT date_time fields
    if not 1582 <= year <= 9999:
        raise BleDecodeError("bad_timestamp", f"year {year} out of 1582..9999")
    try:
        return dt.datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise BleDecodeError("bad_timestamp", str(exc)) from None


def encode_date_time(when: dt.datetime | None) -> bytes:
    """GATT date_time bytes of a naive local datetime; None encodes 'not known' (all zero)."""
    if when is None:
        return bytes(7)
    return struct.pack(
        "<HBBBBB", when.year, when.month, when.day, when.hour, when.minute, when.second
    )


class Reader:
    """Sequential little-endian reader over one notification; running short raises BleDecodeError."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = bytes(data)
        self._pos = 0
        self._what = what

    def take(self, n: int) -> bytes:
        """The next n bytes."""
        end = self._pos + n
        if end > len(self._data):
            raise BleDecodeError(
                "too_short", f"{self._what}: {len(self._data)} bytes, needs at least {end}"
            )
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def u8(self) -> int:
        """Unsigned 8-bit integer."""
        return self.take(1)[0]

    def u16(self) -> int:
        """Unsigned 16-bit little-endian integer."""
        return int.from_bytes(self.take(2), "little")

    def s16(self) -> int:
        """Signed 16-bit little-endian integer."""
        return int.from_bytes(self.take(2), "little", signed=True)

    def u24(self) -> int:
        """Unsigned 24-bit little-endian integer."""
        return int.from_bytes(self.take(3), "little")

    def sfloat(self) -> float:
        """IEEE-11073 16-bit SFLOAT."""
        return decode_sfloat(self.u16())

    def float32(self) -> float:
        """IEEE-11073 32-bit FLOAT."""
        return decode_float(int.from_bytes(self.take(4), "little"))

    def date_time(self) -> dt.datetime | None:
        """GATT date_time."""
        return decode_date_time(self.take(7))

    def remaining(self) -> int:
        """Bytes not read yet (decoders ignore trailing bytes, as GATT clients should)."""
        return len(self._data) - self._pos
