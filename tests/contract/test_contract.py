"""Contract v1: models, topics, decoding of malformed payloads, pseudonyms, exported schema."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract import (
    HealthBatch,
    HealthMeasurement,
    PayloadRejected,
    TopicError,
    WasteBatch,
    WasteReading,
    decode_health,
    decode_status,
    decode_waste,
    encode,
    pseudonymize,
    topics,
)
from contract.schema import schemas
from tests.support.common import PROJECT

T = topics.parse("gumei/v1/waste/WS-0101/readings")
H = topics.parse("gumei/v1/health/HH-01/measurements")
NOW = 1_764_201_600_000


def waste_doc(*readings: object, site: str = "WS-0101") -> bytes:
    return json.dumps(
        {"schema": "gumei.waste.readings.v1", "site": site, "readings": list(readings)}
    ).encode()


def r(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "device": "WS-0101-S2",
        "seq": 1,
        "ts": NOW,
        "category": "recyclable",
        "net_kg": 3.42,
    }
    base.update(over)
    return base


def test_contract_example_round_trips() -> None:
    batch = WasteBatch(
        site="WS-0101",
        readings=[WasteReading(**r(gross_kg=57.1, resident="r-5f0c2a9b41d07e3c8a66b1f2d9e04c17"))],
    )
    decoded = decode_waste(encode(batch), T, now=NOW)
    assert decoded.valid == batch.readings and decoded.rejected == []
    assert json.loads(encode(batch))["schema"] == "gumei.waste.readings.v1"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"", "not_json"),
        (b"{not json", "not_json"),
        (b"\xff\xfe", "not_json"),
        (b"[]", "bad_schema"),
        (b'"text"', "bad_schema"),
        (b'{"schema": "gumei.waste.readings.v2", "site": "WS-0101", "readings": []}', "bad_schema"),
        (waste_doc(), "bad_schema"),  # empty batch
        (
            json.dumps(
                {"schema": "gumei.waste.readings.v1", "site": "WS-0101", "readings": [r()] * 1001}
            ).encode(),
            "bad_schema",
        ),
        (
            json.dumps(
                {"schema": "gumei.waste.readings.v1", "site": 7, "readings": [r()]}
            ).encode(),
            "bad_schema",
        ),
        (
            b"[" * 5000,
            "not_json",
        ),  # deeper than any parser recursion: an answer, never a RecursionError
        (b'{"a":' * 3000, "not_json"),
        (
            b'{"schema": "gumei.waste.readings.v1", "site": "WS-0101", "readings": ['
            + b"[" * 5000
            + b"]}",
            "not_json",
        ),
        (
            b'{"schema": "gumei.waste.readings.v1", "site": "WS-0101", "readings": [{"net_kg": NaN}]}',
            "not_json",
        ),
        (
            b'{"schema": "gumei.waste.readings.v1", "site": "WS-0101", "readings": [{"net_kg": Infinity}]}',
            "not_json",
        ),
        ("{}".encode("utf-16"), "not_json"),
        (waste_doc(r(), site="WS-0102"), "site_mismatch"),
        (b" " * (256 * 1024 + 1), "too_large"),
    ],
)
def test_whole_payload_rejections(payload: bytes, code: str) -> None:
    with pytest.raises(PayloadRejected) as err:
        decode_waste(payload, T, now=NOW)
    assert err.value.code == code
    assert err.value.detail


@pytest.mark.parametrize(
    ("entry", "code", "fragment"),
    [
        (r(net_kg=0), "invalid_entry", "net_kg"),
        (r(net_kg=-1), "invalid_entry", "net_kg"),
        (r(net_kg=500.01), "invalid_entry", "net_kg"),
        (r(net_kg="3.4"), "invalid_entry", "net_kg"),
        (r(category="plastic"), "invalid_entry", "category"),
        (r(seq=-1), "invalid_entry", "seq"),
        (r(seq=1.5), "invalid_entry", "seq"),
        (r(ts="2026-11-27"), "invalid_entry", "ts"),
        (r(device="WS 0101"), "invalid_entry", "device"),
        (r(resident="1234567890"), "invalid_entry", "resident"),
        (r(seq=10**400), "invalid_entry", "seq"),
        (r(net_kg=1e300 * 10), "invalid_entry", "net_kg"),
        ({"device": "WS-0101-S2"}, "invalid_entry", "seq"),
        ("not an object", "invalid_entry", ""),
        (r(device="WS-0102-S2"), "device_not_of_site", "WS-0102-S2"),
        (r(device="WS-01010-S2"), "device_not_of_site", ""),
        (r(ts=NOW + 5 * 60 * 1000 + 1), "future_ts", "future"),
    ],
)
def test_bad_entries_are_quarantined_and_the_rest_kept(
    entry: object, code: str, fragment: str
) -> None:
    decoded = decode_waste(waste_doc(r(seq=100), entry, r(seq=101)), T, now=NOW)
    assert [x.seq for x in decoded.valid] == [100, 101]
    assert len(decoded.rejected) == 1
    rej = decoded.rejected[0]
    assert (rej.index, rej.code) == (1, code)
    assert fragment in rej.reason


def test_old_timestamps_are_valid_and_five_minutes_ahead_is_allowed() -> None:
    decoded = decode_waste(waste_doc(r(ts=0, seq=1), r(ts=NOW + 5 * 60 * 1000, seq=2)), T, now=NOW)
    assert len(decoded.valid) == 2


@pytest.mark.parametrize(
    ("values", "type_", "ok"),
    [
        ({"systolic_mmhg": 132, "diastolic_mmhg": 85, "pulse_bpm": 72}, "blood_pressure", True),
        ({"systolic_mmhg": 132}, "blood_pressure", False),
        ({"glucose_mmol_l": 6.1, "meal": "fasting"}, "blood_glucose", True),
        ({"glucose_mmol_l": 6.1, "meal": "breakfast"}, "blood_glucose", False),
        ({"glucose_mmol_l": "6.1"}, "blood_glucose", False),
        ({"weight_kg": 70.2, "bmi": 23.1}, "body_composition", True),
        (
            {"temperature_c": 36.6, "spo2_pct": 98},
            "body_temperature",
            True,
        ),  # another type's key: ignored, not stored
        ({"spo2_pct": True}, "pulse_oximetry", False),
        ({"spo2_pct": 10**400}, "pulse_oximetry", False),
        (
            {"spo2_pct": 97, "perfusion_index": 2.5},
            "pulse_oximetry",
            True,
        ),  # a value key added after v1: ignored
        ({"spo2_pct": 97, "waveform": [1, 2, {"x": None}]}, "pulse_oximetry", True),
    ],
)
def test_health_values_follow_the_type_table(
    values: dict[str, object], type_: str, ok: bool
) -> None:
    entry = {"device": "HH-01-BP", "seq": 7, "ts": NOW, "type": type_, "values": values}
    payload = json.dumps(
        {"schema": "gumei.health.measurements.v1", "site": "HH-01", "measurements": [entry]},
        allow_nan=True,
    ).encode()
    decoded = decode_health(payload, H, now=NOW)
    assert (len(decoded.valid), len(decoded.rejected)) == ((1, 0) if ok else (0, 1))


def test_fields_v1_does_not_define_are_accepted_ignored_and_counted() -> None:
    """A gateway upgraded before the cloud: unknown optional fields (entry, envelope, health value)
    are ignored and counted; every defined field keeps its strict checks."""
    payload = json.dumps(
        {
            "schema": "gumei.waste.readings.v1",
            "site": "WS-0101",
            "firmware": "2.1",
            "readings": [
                r(seq=1, lid_open=True),
                r(seq=2, lid_open=False, tare_kg=0.5),
                r(seq=3, net_kg=-1, x=1),
            ],
        }
    ).encode()
    decoded = decode_waste(payload, T, now=NOW)
    assert [x.seq for x in decoded.valid] == [1, 2]
    assert [x.code for x in decoded.rejected] == ["invalid_entry"]  # net_kg is still checked
    assert decoded.ignored == {"firmware": 1, "readings[].lid_open": 2, "readings[].tare_kg": 1}
    assert decoded.valid[0] == WasteReading(
        device="WS-0101-S2", seq=1, ts=NOW, category="recyclable", net_kg=3.42, lid_open=True
    )
    entry = {
        "device": "HH-01-BP",
        "seq": 7,
        "ts": NOW,
        "type": "blood_pressure",
        "values": {"systolic_mmhg": 120, "diastolic_mmhg": 80, "irregular": True},
        "cuff": "M",
    }
    health = decode_health(
        json.dumps(
            {"schema": "gumei.health.measurements.v1", "site": "HH-01", "measurements": [entry]}
        ).encode(),
        H,
        now=NOW,
    )
    assert health.valid[0].values == {"systolic_mmhg": 120.0, "diastolic_mmhg": 80.0}
    assert health.ignored == {"measurements[].cuff": 1, "measurements[].values.irregular": 1}


def test_health_batch_round_trips() -> None:
    m = HealthMeasurement(
        device="HH-01-BP",
        seq=7,
        ts=NOW,
        type="blood_pressure",
        values={"systolic_mmhg": 120, "diastolic_mmhg": 80},
    )
    assert decode_health(encode(HealthBatch(site="HH-01", measurements=[m])), H, now=NOW).valid == [
        m
    ]


def test_status_and_last_will() -> None:
    t = topics.parse("gumei/v1/waste/WS-0101/status")
    will = decode_status(b'{"schema": "gumei.status.v1", "site": "WS-0101", "state": "offline"}', t)
    assert will.state == "offline"
    with pytest.raises(PayloadRejected) as err:
        decode_status(b'{"schema": "gumei.status.v1", "site": "WS-0101", "state": "sleepy"}', t)
    assert err.value.code == "bad_schema"
    with pytest.raises(PayloadRejected) as err:
        decode_status(b"\x00garbage", t)
    assert err.value.code == "not_json"


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "gumei/v1",
        "gumei/v2/waste/WS-0101/readings",
        "gumei/v1/water/WS-0101/readings",
        "gumei/v1/waste/WS 0101/readings",
        "gumei/v1/waste/WS-0101/measurements",
        "gumei/v1/waste/WS-0101/readings/x",
        "gumei/v1/waste/+/readings",
        "gumei/v1/waste/-WS/readings",
    ],
)
def test_bad_topics(topic: str) -> None:
    with pytest.raises(TopicError):
        topics.parse(topic)


def test_topic_builders_parse_back() -> None:
    assert str(topics.parse(topics.waste_readings("WS-0101"))) == "gumei/v1/waste/WS-0101/readings"
    assert topics.parse(topics.health_measurements("HH-01")).channel == "measurements"
    assert topics.status("health", "HH-01") == "gumei/v1/health/HH-01/status"
    assert topics.shared_subscription() == "$share/ingest/gumei/v1/#"


def test_pseudonym_matches_contract() -> None:
    p = pseudonymize(b"district-key", "310112199001011234")
    assert p.startswith("r-") and len(p) == 34
    assert p == pseudonymize(b"district-key", " 310112199001011234 ")
    assert p != pseudonymize(b"other-key", "310112199001011234")
    with pytest.raises(ValueError):
        pseudonymize(b"", "1")
    with pytest.raises(ValueError):
        pseudonymize(b"k", "  ")


@given(st.binary(max_size=2048))
def test_random_bytes_never_crash_the_decoder(payload: bytes) -> None:
    try:
        decoded = decode_waste(payload, T, now=NOW)
    except PayloadRejected as exc:
        assert exc.code and exc.detail
    else:
        assert all(rej.reason for rej in decoded.rejected)


def test_exported_schema_is_current() -> None:
    folder = PROJECT / "docs" / "schema"
    for name, schema in schemas().items():
        assert json.loads((folder / f"{name}.json").read_text()) == schema, (
            f"run: gumei schema export ({name})"
        )
