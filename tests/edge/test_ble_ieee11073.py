"""IEEE-11073 SFLOAT/FLOAT and GATT date_time: spec values, specials, exhaustive round trips."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from edge.ble import BleDecodeError, decode_float, decode_sfloat, encode_float, encode_sfloat
from edge.ble.ieee11073 import (
    FLOAT_SPECIALS,
    SFLOAT_SPECIALS,
    Reader,
    decode_date_time,
    encode_date_time,
    sfloat_parts,
)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (0x0078, 120.0),  # issue sample: systolic 120
        (0xF3A5, 93.3),  # exponent -1, mantissa 933
        (0x0048, 72.0),
        (0xC037, 0.0055),  # exponent -4, mantissa 55: 5.5 mmol/L in mol/L
        (0xB064, 0.001),  # exponent -5, mantissa 100: 100 mg/dL in kg/L
        (0x0FFF, -1.0),  # mantissa two's complement
        (0xFFFF, -0.1),  # both negative
        (0xF800 | 0x803, -204.5),  # mantissa -2045 (the smallest non-special), exponent -1
        (0x07FD, 2045.0),  # the largest non-special mantissa
        (0x7001, 10_000_000.0),  # exponent +7
        (0x8001, 1e-8),  # exponent -8
        (0x0000, 0.0),
    ],
)
def test_sfloat_values(raw: int, value: float) -> None:
    assert decode_sfloat(raw) == value


@pytest.mark.parametrize("raw", sorted(SFLOAT_SPECIALS))
def test_sfloat_specials_rejected(raw: int) -> None:
    with pytest.raises(BleDecodeError) as info:
        decode_sfloat(raw)
    assert info.value.reason == "special_value"
    assert SFLOAT_SPECIALS[raw] in str(info.value)


def test_sfloat_special_mantissa_rejected_with_any_exponent() -> None:
    with pytest.raises(BleDecodeError):
        decode_sfloat(0xF7FF)


def test_sfloat_exhaustive_round_trip() -> None:
    for raw in range(0x10000):
        try:
            value = decode_sfloat(raw)
        except BleDecodeError:
            assert raw & 0x0FFF in SFLOAT_SPECIALS
            continue
        _, exponent = sfloat_parts(raw)
        assert decode_sfloat(encode_sfloat(value, exponent)) == value
        assert decode_sfloat(encode_sfloat(value)) == value


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (0xFF00016E, 36.6),
        (0xFF0003DA, 98.6),
        (0xFE000E4A, 36.58),
        (0x00000025, 37.0),
        (0xFFFFFFFF, -0.1),
    ],
)
def test_float_values(raw: int, value: float) -> None:
    assert decode_float(raw) == value


@pytest.mark.parametrize("raw", sorted(FLOAT_SPECIALS))
def test_float_specials_rejected(raw: int) -> None:
    with pytest.raises(BleDecodeError, match="FLOAT"):
        decode_float(raw)


@pytest.mark.parametrize("value", [36.6, 98.6, -40.0, 0.0, 123.4567, 37.25, 8388605.0])
def test_float_round_trip(value: float) -> None:
    assert decode_float(encode_float(value)) == value


def test_encoders_pick_integer_exponent_zero_and_fewest_decimals() -> None:
    assert encode_sfloat(120) == 0x0078
    assert encode_sfloat(93.3) == 0xF3A5
    assert encode_sfloat(5000) == 0x11F4  # too big for exponent 0: 500 x 10^1
    assert encode_float(36.6) == 0xFF00016E


def test_encoders_write_specials_for_simulators() -> None:
    assert encode_sfloat(math.nan) == 0x07FF
    assert encode_sfloat(math.inf) == 0x07FE
    assert encode_sfloat(-math.inf) == 0x0802
    assert encode_float(math.nan) == 0x007FFFFF


def test_encoders_refuse_what_does_not_fit() -> None:
    with pytest.raises(ValueError):
        encode_sfloat(2046, 0)
    with pytest.raises(ValueError):
        encode_sfloat(1e12)


def test_date_time_round_trip_and_not_known() -> None:
    when = dt.datetime(2026, 11, 27, 9, 30, 0)
    assert encode_date_time(when) == bytes.fromhex("ea070b1b091e00")
    assert decode_date_time(encode_date_time(when)) == when
    assert decode_date_time(bytes(7)) is None


@pytest.mark.parametrize(
    "data", ["ea070d1b091e00", "ea070b1b181e00", "ea070b1f091e00", "e8030b1b091e00"]
)
def test_date_time_invalid_fields_rejected(data: str) -> None:
    with pytest.raises(BleDecodeError) as info:
        decode_date_time(bytes.fromhex(data))
    assert info.value.reason == "bad_timestamp"


def test_reader_running_short() -> None:
    r = Reader(b"\x01\x02\x03", "x")
    assert r.u16() == 0x0201
    with pytest.raises(BleDecodeError) as info:
        r.u16()
    assert info.value.reason == "too_short"
    assert r.remaining() == 1
