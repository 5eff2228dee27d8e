"""Bad-input fuzzing over every public entry point: no crash, no hang, every rejection with a reason.

The default run generates a modest sample (300 per target); the long campaign is
`GUMEI_FUZZ_EXAMPLES=12000 ./scripts/test.sh tests/system/test_fuzz.py` (100,000+ cases across the
nine targets).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.ingest.handler import BatchPlanner, Message
from cloud.registry import Registry, RegistryError
from cloud.registry import load as load_registry
from cloud.settings import SettingsError, load_settings
from contract import PayloadRejected, decode_health, decode_waste
from contract.topics import parse
from edge.ble import decode_notification
from edge.ble.decode import DECODERS
from edge.config import load_config
from edge.errors import ConfigError, FrameError
from edge.scales.ascii_frame import parse_frame

EXAMPLES = int(os.environ.get("GUMEI_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NOW = 1_764_201_600_000
WASTE = parse("gumei/v1/waste/WS-0101/readings")
HEALTH = parse("gumei/v1/health/HH-01/measurements")

# -- near-valid payloads: a valid skeleton with random values in every slot ------------------------

scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["WS-0101-S1", "WS-0102-S1", "dry", "wet", "r-" + "a" * 32, "fasting"]),
)
json_value = st.recursive(
    scalar,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
    max_leaves=12,
)


def maybe(valid: object) -> st.SearchStrategy[object]:
    return st.one_of(st.just(valid), json_value)


reading = st.fixed_dictionaries(
    {
        "device": maybe("WS-0101-S1"),
        "seq": maybe(1),
        "ts": maybe(NOW),
        "category": maybe("dry"),
        "net_kg": maybe(1.25),
    },
    optional={"gross_kg": maybe(40.0), "resident": maybe("r-" + "0" * 32), "extra": json_value},
)
waste_doc = st.fixed_dictionaries(
    {
        "schema": maybe("gumei.waste.readings.v1"),
        "site": maybe("WS-0101"),
        "readings": st.one_of(st.lists(reading, max_size=5), json_value),
    }
)
measurement = st.fixed_dictionaries(
    {
        "device": maybe("HH-01-BP"),
        "seq": maybe(1),
        "ts": maybe(NOW),
        "type": maybe("blood_pressure"),
        "values": st.one_of(
            st.just({"systolic_mmhg": 120, "diastolic_mmhg": 80}),
            st.dictionaries(
                st.sampled_from(
                    [
                        "systolic_mmhg",
                        "diastolic_mmhg",
                        "pulse_bpm",
                        "glucose_mmol_l",
                        "meal",
                        "spo2_pct",
                        "x",
                    ]
                ),
                scalar,
                max_size=4,
            ),
            json_value,
        ),
    },
    optional={"resident": maybe("r-" + "0" * 32)},
)
health_doc = st.fixed_dictionaries(
    {
        "schema": maybe("gumei.health.measurements.v1"),
        "site": maybe("HH-01"),
        "measurements": st.one_of(st.lists(measurement, max_size=4), json_value),
    }
)


def _encode(doc: object) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


@FUZZ
@given(st.one_of(waste_doc.map(_encode), st.binary(max_size=512)))
def test_waste_payloads(payload: bytes) -> None:
    try:
        decoded = decode_waste(payload, WASTE, now=NOW)
    except PayloadRejected as exc:
        assert exc.code and exc.detail
        return
    for rej in decoded.rejected:
        assert rej.code and rej.reason
    assert len(decoded.valid) + len(decoded.rejected) >= 1


@FUZZ
@given(st.one_of(health_doc.map(_encode), st.binary(max_size=512)))
def test_health_payloads(payload: bytes) -> None:
    try:
        decoded = decode_health(payload, HEALTH, now=NOW)
    except PayloadRejected as exc:
        assert exc.code and exc.detail
        return
    for rej in decoded.rejected:
        assert rej.code and rej.reason


topics = st.one_of(
    st.sampled_from(
        [
            "gumei/v1/waste/WS-0101/readings",
            "gumei/v1/health/HH-01/measurements",
            "gumei/v1/waste/WS-0101/status",
            "gumei/v1/waste/NOPE/readings",
            "gumei/v1/health/WS-0101/status",
        ]
    ),
    st.text(max_size=60),
)


@pytest.fixture(scope="module")
def planner(registry: Registry) -> BatchPlanner:
    from cloud.health.lines import health_lines

    return BatchPlanner(registry, health_lines)


@FUZZ
@given(
    st.lists(
        st.tuples(
            topics,
            st.one_of(waste_doc.map(_encode), health_doc.map(_encode), st.binary(max_size=256)),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_ingestion_planner_never_raises_and_accounts_for_every_message(
    planner: BatchPlanner, messages: list[tuple[str, bytes]]
) -> None:
    plan = planner.plan_batch(
        [Message(t, p, i, False, NOW * 1_000_000) for i, (t, p) in enumerate(messages)], now_ms=NOW
    )
    for record in plan.quarantine:
        assert record.code and record.reason
    assert all("\n" not in line for line in plan.lines)


# -- device frames ------------------------------------------------------------------------------------

frame_parts = st.tuples(
    st.sampled_from([b"ST", b"US", b"OL", b"LO", b"XX", b""]),
    st.sampled_from([b",", b";", b""]),
    st.sampled_from([b"GS", b"NT", b"TR", b"??"]),
    st.sampled_from([b",", b""]),
    st.sampled_from([b"+", b"-", b" ", b""]),
    st.binary(max_size=9),
    st.sampled_from([b"kg", b" g", b" t", b"lb", b""]),
    st.sampled_from([b"\r\n", b"\n", b""]),
)


@FUZZ
@given(st.one_of(frame_parts.map(lambda p: b"".join(p)), st.binary(max_size=40)), st.booleans())
def test_scale_frames(line: bytes, checksum: bool) -> None:
    try:
        frame = parse_frame(line, checksum=checksum)
    except FrameError as exc:
        assert exc.reason
        return
    assert frame is not None


@FUZZ
@given(st.sampled_from(sorted(DECODERS)), st.binary(max_size=40))
def test_ble_notifications(uuid: str, data: bytes) -> None:
    try:
        reading = decode_notification(uuid, data)
    except FrameError as exc:
        assert exc.reason
        return
    assert reading.type


# -- config files ---------------------------------------------------------------------------------

toml_text = st.one_of(
    st.text(max_size=200),
    st.lists(
        st.tuples(
            st.sampled_from(
                ["influx", "mqtt", "ingest", "site", "broker", "queue", "targets", "x"]
            ),
            st.sampled_from(
                [
                    "url",
                    "port",
                    "auth",
                    "password",
                    "database",
                    "batch_ms",
                    "path",
                    "id",
                    "nonsense",
                ]
            ),
            st.sampled_from(
                [
                    '"http://h:1"',
                    "0",
                    "-1",
                    "70000",
                    '"basic"',
                    '"kerberos"',
                    "true",
                    "[1, 2]",
                    '"WS-0101"',
                    "'",
                ]
            ),
        ),
        max_size=6,
    ).map(lambda rows: "".join(f"[{t}]\n{k} = {v}\n" for t, k, v in rows)),
)


def _file_loads_or_says_why(
    tmp: pytest.TempPathFactory,
    name: str,
    text: str,
    load: Callable[[Path], object],
    error: type[Exception],
    one_line: bool = True,
) -> None:
    """A file of any text either loads or is refused with the loader's own error: one line."""
    path = tmp.mktemp("cfg") / name
    path.write_text(text, encoding="utf-8")
    try:
        load(path)
    except error as exc:
        assert str(exc) and (not one_line or "\n" not in str(exc))


@FUZZ
@given(toml_text)
def test_cloud_config_files(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    _file_loads_or_says_why(tmp_path_factory, "cloud.toml", text, load_settings, SettingsError)


@FUZZ
@given(toml_text)
def test_gateway_config_files(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    # `gumei edge check-config` lists every problem of a gateway file, one line each
    _file_loads_or_says_why(
        tmp_path_factory, "gateway.toml", text, load_config, ConfigError, one_line=False
    )


yaml_text = st.one_of(
    st.text(max_size=200),
    st.lists(
        st.sampled_from(
            [
                "areas:",
                "- id: A01",
                "  name: x",
                "sites:",
                "- id: WS-0101",
                "  kind: waste",
                "  area: A99",
                "  lat: 91",
                "  lon: 121.4",
                "  name: s",
                "  devices: []",
                "- id: WS-0101",
                ": :",
                "\t",
            ]
        ),
        max_size=12,
    ).map("\n".join),
)


@FUZZ
@given(yaml_text)
def test_registry_files(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    _file_loads_or_says_why(tmp_path_factory, "sites.yaml", text, load_registry, RegistryError)


# -- API parameters (the real server) -------------------------------------------------------------

param_value = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "2025-01-01",
            "2025-12-31",
            "2025-02-30",
            "0000-01-01",
            "9999-12-31",
            "WS-0101",
            "A01",
            "dry",
            "area",
            "r-" + "0" * 32,
        ]
    ),
)


@settings(
    max_examples=max(30, EXAMPLES // 10),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.sampled_from(
        [
            "/api/v1/waste/daily",
            "/api/v1/waste/targets",
            "/api/v1/waste/reconciliation",
            "/api/v1/devices",
            "/api/v1/health/daily",
        ]
    ),
    st.dictionaries(
        st.sampled_from(["start", "end", "site", "area", "category", "group", "date", "status"]),
        param_value,
        max_size=5,
    ),
)
def test_api_parameters(
    api_url: str, operator_token: str, route: str, params: dict[str, str]
) -> None:
    r = httpx.get(
        api_url + route,
        params=params,
        headers={"Authorization": f"Bearer {operator_token}"},
        timeout=30,
    )
    assert r.status_code in (200, 404, 422), (route, params, r.status_code, r.text[:300])
    if r.status_code == 422:
        assert isinstance(r.json()["detail"], str) and r.json()["detail"]
