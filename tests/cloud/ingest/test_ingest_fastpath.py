"""The msgspec fast path for waste readings plans exactly what the pydantic path plans.

The property test builds payloads from a mix of valid and subtly invalid readings (every
constraint's boundary values, wrong types, missing and extra fields, bad residents, foreign,
retired and unknown devices, future ts, batches across Shanghai midnight, unicode, duplicate keys,
raw number literals) and compares a planner with the fast path to one forced onto the slow path.
`GUMEI_FUZZ_EXAMPLES=5000` runs a longer campaign.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cloud import registry as registry_mod
from cloud.days import day_number, day_start_ms
from cloud.ingest import handler
from cloud.ingest.handler import DEFAULT_MAX_AGE_DAYS, BatchPlanner, Message, Plan
from cloud.lineproto import waste_lines
from cloud.registry import Registry
from contract import Category, WasteBatch, WasteReading
from contract.fast import decode_waste_fast
from contract.models import FUTURE_TOLERANCE_MS, MAX_PAYLOAD_BYTES, WASTE_SCHEMA, now_ms
from contract.topics import waste_readings

EXAMPLES = int(os.environ.get("GUMEI_FUZZ_EXAMPLES", "400"))
PROPERTY = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
NOW = 1_764_201_600_000  # 08:00 in Shanghai
MIDNIGHT = day_start_ms(day_number(NOW))  # Shanghai midnight that started NOW's day
LIMIT = NOW + FUTURE_TOLERANCE_MS
HORIZON = NOW - int(DEFAULT_MAX_AGE_DAYS * 86_400_000)  # older is too_old
SITE = "WS-0101"
TOPIC = waste_readings(SITE)
RESIDENT = "r-5f0c2a9b41d07e3c8a66b1f2d9e04c17"
ACTIVE = ["WS-0101-S1", "WS-0101-S2", "WS-0101-S3"]
RETIRED = "WS-0101-S4"


@pytest.fixture(scope="module")
def reg(registry: Registry) -> Registry:
    """The default registry with one device of WS-0101 retired, and its active scales registered for
    every category (so any category is valid; category_mismatch has its own test)."""
    reg = registry_mod.retire_device(registry, RETIRED)
    sites = [
        s.model_copy(
            update={
                "devices": [
                    d.model_copy(update={"also_categories": list(Category)})
                    if d.id in ACTIVE
                    else d
                    for d in s.devices
                ]
            }
        )
        if s.id == SITE
        else s
        for s in reg.sites
    ]
    return reg.model_copy(update={"sites": sites})


@pytest.fixture(scope="module")
def planners(reg: Registry) -> tuple[BatchPlanner, BatchPlanner]:
    return BatchPlanner(reg), BatchPlanner(reg, fast_path=False)


# -- JSON text with what json.dumps cannot write: raw number literals and duplicate keys -------------


class Raw(str):
    """A JSON token written verbatim (1e400, -0, 1.0e0, 500.00000000000001, ...)."""


@dataclass(frozen=True)
class Pairs:
    """A JSON object as key/value pairs, so a key can repeat."""

    items: tuple[tuple[str, Any], ...]


def dump(value: Any, ascii_only: bool) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Pairs):
        return (
            "{"
            + ",".join(
                f"{json.dumps(k, ensure_ascii=ascii_only)}:{dump(v, ascii_only)}"
                for k, v in value.items
            )
            + "}"
        )
    if isinstance(value, dict):
        return dump(Pairs(tuple(value.items())), ascii_only)
    if isinstance(value, list):
        return "[" + ",".join(dump(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)


# -- strategies ----------------------------------------------------------------------------------

ok_device = st.sampled_from(ACTIVE)
bad_device = st.one_of(
    st.sampled_from(
        [RETIRED, "WS-0102-S1", "WS-0101-S9"]
    ),  # well-formed, not an active device of the site
    st.sampled_from(
        [
            "WS-0101",
            "WS-0101-",
            "WS-0101-S1\n",
            "WS-0101-S1 ",
            "ws-0101-s1",
            "WS-0101-Ｓ1",
            "",
            "WS-0101-S1\u0000",
            1,
            None,
            ["WS-0101-S1"],
        ]
    ),
)
ok_seq = st.one_of(
    st.integers(0, 2**63 - 1), st.sampled_from([0, 1, 999_999, 1_000_000, 2**63 - 1])
)
bad_seq = st.sampled_from(
    [-1, 2**63, 2**64, 10**30, True, False, 1.0, Raw("1e2"), Raw("1.0"), "1", None]
)
# ts: replays from long ago, both sides of Shanghai midnight, up to the future tolerance
ok_ts = st.one_of(
    st.integers(HORIZON, LIMIT),
    st.integers(MIDNIGHT - 3_600_000, MIDNIGHT + 3_600_000),
    st.sampled_from(
        [HORIZON, MIDNIGHT - 86_400_000, MIDNIGHT - 1, MIDNIGHT, NOW, LIMIT - 1, LIMIT]
    ),
)
bad_ts = st.one_of(
    st.integers(LIMIT + 1, 10**14 - 1),
    st.integers(0, HORIZON - 1),  # future; older than the horizon
    st.sampled_from(
        [
            -1,
            0,
            Raw("-0"),
            HORIZON - 1,
            LIMIT + 1,
            10**14 - 1,
            10**14,
            2**63,
            True,
            Raw("1.7642016e12"),
            str(NOW),
            None,
        ]
    ),
)
ok_category = st.sampled_from(["dry", "wet", "recyclable", "hazardous", Raw('"dr\\u0079"')])
bad_category = st.sampled_from(["DRY", "Dry", "dry ", "glass", "", 0, None, True])
ok_net = st.one_of(
    st.floats(min_value=0, max_value=500, exclude_min=True),
    st.integers(1, 500),
    st.sampled_from(
        [
            5e-324,
            0.001,
            3.42,
            500,
            500.0,
            Raw("500.00000000000001"),
            Raw("1e-7"),
            Raw("4.2E1"),
            Raw("0.5e0"),
        ]
    ),
)
bad_net = st.one_of(
    st.floats(max_value=0),
    st.floats(min_value=500, exclude_min=True),
    st.integers(max_value=0),
    st.integers(501, 10**30),
    st.sampled_from(
        [
            0,
            0.0,
            -0.0,
            Raw("-0"),
            Raw("1e400"),
            Raw("-1e400"),
            Raw("1e-400"),
            Raw("500.0000000000001"),
            float("nan"),
            float("inf"),
            "1.5",
            True,
            None,
            [1.5],
        ]
    ),
)
ok_gross = st.one_of(
    st.floats(min_value=0, max_value=10_000),
    st.integers(0, 10_000),
    st.sampled_from(
        [
            0,
            0.0,
            -0.0,
            Raw("-0"),
            Raw("-0.0"),
            Raw("1e-400"),
            Raw("-1e-400"),
            10_000,
            Raw("1e4"),
            57.1,
        ]
    ),
)
bad_gross = st.one_of(
    st.floats(max_value=0, exclude_max=True),
    st.floats(min_value=10_000, exclude_min=True),
    st.sampled_from(
        [-1, 10_001, Raw("10000.000000000002"), Raw("1e400"), float("nan"), "57.1", False, {}]
    ),
)
hex32 = st.text("0123456789abcdef", min_size=32, max_size=32)
ok_resident = st.one_of(st.just(RESIDENT), hex32.map(lambda h: "r-" + h))
bad_resident = st.one_of(
    st.sampled_from(
        [
            RESIDENT + "\n",
            RESIDENT + " ",
            "\n" + RESIDENT,
            RESIDENT[:-1],
            RESIDENT + "0",
            RESIDENT.upper(),
            "R" + RESIDENT[1:],
            "r_" + RESIDENT[2:],
            "r-" + "٠" * 32,
            "r-" + "g" * 32,
            "r-" + "ａ" * 32,
            "",
            1,
            True,
            ["r-"],
        ]
    ),
    hex32.map(lambda h: "r-" + h[:-1] + "\u00e9"),
)
junk = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))


# ts of one batch: anywhere valid, straddling Shanghai midnight, or at the future limit
ts_modes = st.sampled_from(
    [
        ok_ts,
        st.sampled_from(
            [
                MIDNIGHT - 86_400_000 - 1,
                MIDNIGHT - 86_400_000,
                MIDNIGHT - 2,
                MIDNIGHT - 1,
                MIDNIGHT,
                MIDNIGHT + 1,
            ]
        ),
        st.integers(LIMIT - 2, LIMIT),
    ]
)
REQUIRED = ("device", "seq", "ts", "category", "net_kg")
FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "device": (ok_device, bad_device),
    "seq": (ok_seq, bad_seq),
    "ts": (ok_ts, bad_ts),
    "category": (ok_category, bad_category),
    "net_kg": (ok_net, bad_net),
    "gross_kg": (ok_gross, bad_gross),
    "resident": (ok_resident, bad_resident),
}


@st.composite
def reading(
    draw: st.DrawFn, ts: st.SearchStrategy[int], chaos: bool
) -> tuple[list[tuple[str, Any]], bool]:
    """One reading as key/value pairs, and whether it is valid for the fast path."""
    valid = True
    items: list[tuple[str, Any]] = []
    for key, (ok, bad) in FIELDS.items():
        if key in ("gross_kg", "resident"):
            kind = draw(st.integers(0, 4))
            if kind < 2:
                continue  # absent
            if kind == 2:
                items.append((key, None))  # null: pydantic takes it as absent
                continue
        if chaos and draw(st.integers(0, 9)) == 0:
            items.append((key, draw(bad)))
            valid = False
        else:
            items.append((key, draw(ts if key == "ts" else ok)))
    if draw(st.booleans()):
        items = draw(st.permutations(items))
    return items, valid


def with_defect(draw: st.DrawFn, items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The reading with exactly one thing wrong (or, for a duplicate key, perhaps nothing)."""
    keys = [k for k, _ in items]
    defect = draw(st.sampled_from(["bad", "missing", "extra", "duplicate"]))
    if defect == "bad":
        key = draw(st.sampled_from(list(FIELDS)))
        value = draw(FIELDS[key][1])
        if key not in keys:  # an optional field that was absent
            return [*items, (key, value)]
        return [(k, value if k == key else v) for k, v in items]
    if defect == "missing":
        key = draw(st.sampled_from(REQUIRED))
        return [(k, v) for k, v in items if k != key]
    if defect == "extra":
        return [
            *items,
            (
                draw(st.sampled_from(["extra", "Device", "schema", "net_kg ", "tś", "gross"])),
                draw(junk),
            ),
        ]
    key, value = draw(st.sampled_from(items))
    other = draw(st.one_of(st.just(value), FIELDS[key][0], FIELDS[key][1]))
    at = draw(st.integers(0, len(items)))
    return [*items[:at], (key, other), *items[at:]]  # the last occurrence wins in pydantic


ENVELOPE_DEFECTS = [
    "schema",
    "no_schema",
    "schema_",
    "site",
    "extra",
    "empty",
    "duplicate_site",
    "duplicate_readings",
    "topic",
    "trailing",
]


@st.composite
def payload(draw: st.DrawFn) -> tuple[str, bytes, bool]:
    """(topic, payload, expect_fast): all valid, exactly one defect somewhere, or defects anywhere."""
    mode = draw(st.sampled_from(["clean", "one_defect", "one_defect", "chaos"]))
    ts = draw(ts_modes)
    entries = draw(st.lists(reading(ts, chaos=mode == "chaos"), min_size=1, max_size=8))
    readings = [items for items, _ in entries]
    fast = all(v for _, v in entries)
    envelope = None
    if mode == "one_defect":
        fast = False
        if draw(st.integers(0, 3)):
            i = draw(st.integers(0, len(readings) - 1))
            readings[i] = with_defect(draw, readings[i])
        else:
            envelope = draw(st.sampled_from(ENVELOPE_DEFECTS))
    elif mode == "chaos" and draw(st.booleans()):
        envelope = draw(st.sampled_from(ENVELOPE_DEFECTS))
        fast = False
    doc: list[tuple[str, Any]] = [
        ("schema", WASTE_SCHEMA),
        ("site", SITE),
        ("readings", [Pairs(tuple(r)) for r in readings]),
    ]
    if envelope == "schema":
        doc[0] = (
            "schema",
            draw(
                st.sampled_from(
                    ["gumei.waste.readings.v2", "gumei.health.measurements.v1", None, 1]
                )
            ),
        )
    elif envelope == "no_schema":
        doc.pop(0)  # pydantic has a default schema; the fast path requires it
    elif envelope == "schema_":
        doc[0] = ("schema_", WASTE_SCHEMA)  # pydantic populates by name too
    elif envelope == "site":
        doc[1] = (
            "site",
            draw(st.sampled_from(["WS-0102", "ws-0101", "WS-0101 ", "WS-0101\n", "", None])),
        )
    elif envelope == "extra":
        doc.append((draw(st.sampled_from(["extra", "Schema", "readings "])), draw(junk)))
    elif envelope == "empty":
        doc[2] = ("readings", [])
    elif envelope == "duplicate_site":
        doc.insert(draw(st.integers(0, 3)), ("site", draw(st.sampled_from(["WS-0102", SITE, 1]))))
    elif envelope == "duplicate_readings":
        doc.insert(draw(st.integers(0, 3)), ("readings", draw(st.one_of(junk, st.just(doc[2][1])))))
    topic = (
        waste_readings(draw(st.sampled_from(["WS-0102", "WS-0103"])))
        if envelope == "topic"
        else TOPIC
    )
    if draw(st.booleans()):
        doc = draw(st.permutations(doc))
    text = dump(Pairs(tuple(doc)), ascii_only=draw(st.booleans()))
    if draw(st.integers(0, 9)) == 0:
        text = (
            draw(st.sampled_from([" ", "\n", "\t", "\r\n"]))
            + text
            + draw(st.sampled_from([" ", "\n", ""]))
        )
    if envelope == "trailing":
        text = (
            draw(st.sampled_from(["\ufeff", ""]))
            + text
            + draw(st.sampled_from(["x", "\ufeff", "{}", ",", "\x00", ""]))
        )
    return topic, text.encode(), fast


def assert_same(fast: Plan, slow: Plan) -> None:
    assert fast.lines == slow.lines
    assert fast.readings == slow.readings
    assert fast.days == slow.days
    assert fast.quarantine == slow.quarantine
    assert (fast.measurements, fast.statuses) == (slow.measurements, slow.statuses)
    assert fast.ignored == slow.ignored


@PROPERTY
@given(st.lists(payload(), min_size=1, max_size=3))
def test_fast_path_plans_exactly_what_the_slow_path_plans(
    planners: tuple[BatchPlanner, BatchPlanner], messages: list[tuple[str, bytes, bool]]
) -> None:
    fast, slow = planners
    batch = [Message(topic, body, i) for i, (topic, body, _) in enumerate(messages)]
    assert_same(fast.plan_batch(batch, NOW), slow.plan_batch(batch, NOW))
    for topic, body, expect_fast in messages:
        took = fast._plan_readings_fast(body, topic.split("/")[3], Plan(), NOW)
        event(f"fast path taken: {took}")
        if expect_fast:
            assert took, body[:300]


# -- explicit cases ------------------------------------------------------------------------------------


def reading_doc(seq: int, **over: Any) -> dict[str, Any]:
    return {
        "device": "WS-0101-S1",
        "seq": seq,
        "ts": NOW - 60_000 + seq,
        "category": "dry",
        "net_kg": 1.25,
        **over,
    }


def body(*readings: dict[str, Any], site: str = SITE) -> bytes:
    return json.dumps({"schema": WASTE_SCHEMA, "site": site, "readings": list(readings)}).encode()


def both(
    planners: tuple[BatchPlanner, BatchPlanner], payload: bytes, now: int | None = NOW
) -> Plan:
    fast, slow = planners
    plan = fast.plan_batch([Message(TOPIC, payload)], now)
    assert_same(plan, slow.plan_batch([Message(TOPIC, payload)], now))
    return plan


def test_fast_path_is_taken_for_an_ordinary_valid_payload(
    planners: tuple[BatchPlanner, BatchPlanner], monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = body(
        reading_doc(1),
        reading_doc(2, gross_kg=57.1, resident=RESIDENT, category="wet", device="WS-0101-S2"),
        reading_doc(3, net_kg=2, gross_kg=0),
    )
    plan = Plan()
    assert planners[0]._plan_readings_fast(payload, SITE, plan, NOW)
    assert (
        planners[1]._plan_readings_fast(payload, SITE, Plan(), NOW) is False
    )  # forced onto the slow path
    assert plan.readings == 3 and not plan.quarantine

    def no_pydantic(*_a: object, **_k: object) -> None:
        raise AssertionError("slow path used")

    monkeypatch.setattr(handler, "decode_waste", no_pydantic)
    again = planners[0].plan_batch([Message(TOPIC, payload)], NOW)
    assert again.lines == plan.lines and again.days == plan.days and again.readings == 3


def test_lines_are_those_of_waste_lines(
    planners: tuple[BatchPlanner, BatchPlanner], reg: Registry
) -> None:
    docs = [
        reading_doc(1),
        reading_doc(
            2_000_017, ts=NOW, gross_kg=-0.0, resident=RESIDENT, category="hazardous", net_kg=5e-324
        ),
        reading_doc(3, gross_kg=10_000, net_kg=500),
        reading_doc(4, resident=RESIDENT, net_kg=1e-5),
    ]
    plan = both(planners, body(*docs))
    site = reg.site(SITE)
    assert site is not None
    assert plan.lines == waste_lines(
        SITE, site.area, [WasteReading.model_validate(d) for d in docs]
    )
    assert plan.lines[1].endswith(
        f',seq=2000017i,gross_kg=-0.0,resident="{RESIDENT}" {NOW * 1_000_000 + 17}'
    )
    assert (
        "net_kg=5e-324," in plan.lines[1]
        and "net_kg=500.0," in plan.lines[2]
        and "net_kg=1e-05," in plan.lines[3]
    )
    assert plan.days == {(day_number(NOW), SITE): 4}  # (Shanghai day, site): the markers


def test_a_batch_across_shanghai_midnight_counts_both_days(
    planners: tuple[BatchPlanner, BatchPlanner],
) -> None:
    plan = both(
        planners,
        body(
            reading_doc(1, ts=MIDNIGHT - 1),
            reading_doc(2, ts=MIDNIGHT),
            reading_doc(3, ts=MIDNIGHT + 5),
        ),
    )
    assert plan.days == {(day_number(MIDNIGHT) - 1, SITE): 1, (day_number(MIDNIGHT), SITE): 2}


@pytest.mark.parametrize(
    "why, payload",
    [
        ("unknown device", body(reading_doc(1), reading_doc(2, device="WS-0101-S9"))),
        ("retired device", body(reading_doc(1, device=RETIRED))),
        ("another site's device", body(reading_doc(1, device="WS-0102-S1"))),
        ("future ts", body(reading_doc(1), reading_doc(2, ts=LIMIT + 1))),
        ("bad resident", body(reading_doc(1, resident=RESIDENT + "\n"))),
        ("NaN literal", body(reading_doc(1, net_kg=float("nan")))),
        ("bool seq", body({**reading_doc(1), "seq": True})),
        ("site mismatch", body(reading_doc(1), site="WS-0102")),
        (
            "duplicate key, first invalid",
            body(reading_doc(1)).replace(b'"net_kg": 1.25', b'"net_kg": -1, "net_kg": 1.25'),
        ),
        ("too many readings", body(*[reading_doc(i) for i in range(1001)])),
        ("older than the horizon", body(reading_doc(1), reading_doc(2, ts=HORIZON - 1))),
        ("a field v1 does not define", body(reading_doc(1, firmware="2.1"))),
    ],
)
def test_anything_unusual_falls_back_with_reasons(
    planners: tuple[BatchPlanner, BatchPlanner], why: str, payload: bytes
) -> None:
    assert not planners[0]._plan_readings_fast(payload, SITE, Plan(), NOW), why
    plan = both(planners, payload)
    if why == "a field v1 does not define":  # accepted on the slow path, the field counted
        assert plan.readings == 1 and plan.ignored == {"readings[].firmware": 1}
    else:
        assert plan.quarantine or why.startswith("duplicate")


def test_a_category_the_scale_is_not_registered_for_is_a_dead_letter(registry: Registry) -> None:
    """WS-0102-S1 weighs dry waste only: a 'recyclable' reading from it is forged or mis-flashed."""
    fast, slow = BatchPlanner(registry), BatchPlanner(registry, fast_path=False)
    topic = waste_readings("WS-0102")
    doc = body(
        reading_doc(1, device="WS-0102-S1"),
        reading_doc(2, device="WS-0102-S1", category="recyclable"),
        site="WS-0102",
    )
    assert not fast._plan_readings_fast(doc, "WS-0102", Plan(), NOW)
    plan = fast.plan_batch([Message(topic, doc)], NOW)
    assert_same(plan, slow.plan_batch([Message(topic, doc)], NOW))
    assert plan.readings == 1 and [q.code for q in plan.quarantine] == ["category_mismatch"]


def test_too_large_payload_falls_back(planners: tuple[BatchPlanner, BatchPlanner]) -> None:
    payload = body(*[reading_doc(i, resident=RESIDENT, gross_kg=1.0) for i in range(1000)]).replace(
        b", ", b"," + b" " * 80
    )
    assert len(payload) > MAX_PAYLOAD_BYTES
    assert not planners[0]._plan_readings_fast(payload, SITE, Plan(), NOW)
    assert [q.code for q in both(planners, payload).quarantine] == ["too_large"]


def test_null_optionals_and_wall_clock_now(planners: tuple[BatchPlanner, BatchPlanner]) -> None:
    plan = both(planners, body(reading_doc(1, gross_kg=None, resident=None, ts=now_ms())), now=None)
    assert (
        plan.readings == 1 and "gross_kg" not in plan.lines[0] and "resident" not in plan.lines[0]
    )


def test_decoder_yields_the_values_of_the_pydantic_model() -> None:
    payload = (
        b'{"readings":[{"ts":1764201600000,"seq":-0,"device":"WS-0101-S\\u0031","category":"dr\\u0079","net_kg":2,'
        b'"gross_kg":-0,"resident":null},{"device":"WS-0101-S2","seq":9223372036854775807,"ts":0,"category":"wet",'
        b'"net_kg":1e-7,"gross_kg":null,"resident":"'
        + RESIDENT.encode()
        + b'"}],"site":"WS-0101","schema":"'
        + WASTE_SCHEMA.encode()
        + b'"}'
    )
    fast = decode_waste_fast(payload)
    assert fast is not None
    slow = WasteBatch.model_validate_json(payload)
    assert fast.site == slow.site
    got = [
        (r.device, r.seq, r.ts, r.category, repr(r.net_kg), repr(r.gross_kg), r.resident)
        for r in fast.readings
    ]
    assert got == [
        (r.device, r.seq, r.ts, r.category.value, repr(r.net_kg), repr(r.gross_kg), r.resident)
        for r in slow.readings
    ]
    assert (
        decode_waste_fast(payload.replace(RESIDENT.encode(), RESIDENT.encode() + b"\\n")) is None
    )  # Python's `$` would pass it
    assert decode_waste_fast(payload.replace(b'"schema":', b'"schema_":')) is None
