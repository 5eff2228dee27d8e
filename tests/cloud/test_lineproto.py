"""Line-protocol escaping, checked by writing to the real influxd 1.6.7 and reading the values back."""

from __future__ import annotations

import time

import pytest

from cloud.influx import InfluxClient, WriteRejected
from cloud.lineproto import (
    LineProtocolError,
    escape_tag,
    field_value,
    join_lines,
    line,
    waste_lines,
)
from contract import WasteReading
from tests.support.common import rows_of

AWKWARD = [
    "plain",
    "comma,inside",
    "space inside",
    "equals=inside",
    'double"quote',
    "single'quote",
    r"back\slash",
    r"two\\backslashes",
    "中文 废物, 回收=是",
    "emoji 🗑️",
    "tab\there",
]


@pytest.fixture(scope="module")
def measurement() -> str:
    return f"lp_test_{time.time_ns()}"


@pytest.mark.parametrize("value", AWKWARD)
def test_tag_and_string_values_round_trip(
    influx: InfluxClient, measurement: str, value: str
) -> None:
    t = time.time_ns()
    influx.write_lines(
        join_lines([line(measurement, {"k": value, "fixed": "x"}, {"s": value, "n": 1}, t)])
    )
    rows = rows_of(influx, f"SELECT k, s FROM {measurement} WHERE time = {t}")
    assert rows == [{"time": t // 1_000_000, "k": value, "s": value}]


@pytest.mark.parametrize(
    "value", ["line\nbreak", "crlf\r\nend", "ends with backslash\\", '\\"both\\"', "\\", "\n", ""]
)
def test_string_fields_carry_newlines_backslashes_and_quotes(
    influx: InfluxClient, measurement: str, value: str
) -> None:
    t = time.time_ns()
    # two lines in one body, so a newline inside the quoted string must not end the first line
    influx.write_lines(
        join_lines(
            [
                line(measurement, {"k": "str"}, {"s": value}, t),
                line(measurement, {"k": "str"}, {"s": "next"}, t + 1),
            ]
        )
    )
    rows = rows_of(
        influx, f"SELECT s FROM {measurement} WHERE k = 'str' AND time >= {t} AND time <= {t + 1}"
    )
    assert [r["s"] for r in rows] == [value, "next"]


def test_measurement_and_field_keys_are_escaped(influx: InfluxClient) -> None:
    name = f"lp odd,name {time.time_ns()}"
    influx.write_lines(join_lines([line(name, {"tag key=1,": "v"}, {"field, key=": 1.5}, 1)]))
    series = influx.query(f'SELECT * FROM "{name}"')
    assert series[0].name == name
    assert set(series[0].columns) == {"time", "tag key=1,", "field, key="}
    assert series[0].values[0][1:] == [1.5, "v"] or series[0].values[0][1:] == ["v", 1.5]


@pytest.mark.parametrize(
    "raw", ["lp_bad,k=ends\\ f=1i 1", "lp_bad,k= f=1i 1"], ids=["trailing-backslash", "empty-tag"]
)
def test_influxd_rejects_what_the_encoder_refuses(influx: InfluxClient, raw: str) -> None:
    with pytest.raises(WriteRejected):
        influx.write_lines((raw + "\n").encode())


@pytest.mark.parametrize(
    "value", ["ends\\", "", "new\nline", "cr\rhere", "back\\,comma", "back\\ space", "back\\=eq"]
)
def test_encoder_refuses_tags_influxd_cannot_store(value: str) -> None:
    with pytest.raises(LineProtocolError):
        escape_tag(value)


def test_ints_always_carry_i_and_floats_stay_floats(influx: InfluxClient, measurement: str) -> None:
    assert field_value(3) == "3i"
    assert field_value(3.0) == "3.0"
    assert field_value(True) == "true"
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(LineProtocolError):
            field_value(bad)
    t = time.time_ns()
    influx.write_lines(
        join_lines([line(measurement, {"k": "num"}, {"i": 2**62, "f": 0.1 + 0.2}, t)])
    )
    rows = rows_of(influx, f"SELECT i, f FROM {measurement} WHERE k = 'num'")
    assert rows[0]["i"] == 2**62 and rows[0]["f"] == 0.1 + 0.2
    # an int field written later as a float is a type conflict: 400, a poison batch, not a retry
    with pytest.raises(WriteRejected):
        influx.write_lines(join_lines([line(measurement, {"k": "num"}, {"i": 1.5}, t + 1)]))


def test_waste_fast_path_equals_the_generic_encoder() -> None:
    r = WasteReading(
        device="WS-0101-S1",
        seq=1_000_123,
        ts=1_764_201_600_000,
        category="dry",
        net_kg=3.42,
        gross_kg=57.1,
        resident="r-5f0c2a9b41d07e3c8a66b1f2d9e04c17",
    )
    fast = waste_lines("WS-0101", "A 1,x", [r])[0]
    generic = line(
        "waste_reading",
        {"site": "WS-0101", "area": "A 1,x", "device": r.device, "category": "dry"},
        {"net_kg": 3.42, "seq": 1_000_123, "gross_kg": 57.1, "resident": r.resident},
        1_764_201_600_000 * 1_000_000 + 123,
    )
    assert fast == generic
