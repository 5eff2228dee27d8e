"""Dead letters keep enough to debug and never a value that could be a card number or identifier."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.redact import REDACTED, mask_digits, mask_reason, redact_entry, redact_payload

CARD = "6222021234567890"
PSEUDONYM = "r-5f0c2a9b41d07e3c8a66b1f2d9e04c17"


def reading(**over: object) -> dict[str, object]:
    return {
        "device": "WS-0101-S1",
        "seq": 7,
        "ts": 1764201600000,
        "category": "dry",
        "net_kg": 1.5,
        **over,
    }


def test_contract_values_survive_and_a_pseudonym_is_kept() -> None:
    doc = {
        "schema": "gumei.waste.readings.v1",
        "site": "WS-0101",
        "readings": [reading(resident=PSEUDONYM, gross_kg=57.1)],
    }
    assert json.loads(redact_payload(json.dumps(doc).encode())) == doc


@pytest.mark.parametrize(
    "doc",
    [
        {"readings": [reading(resident=CARD)]},  # a raw card number as resident
        {"readings": [reading(card=CARD)]},  # in a field the contract does not define
        {"readings": [reading(**{CARD: 1})]},  # as a key name
        {"readings": [reading(device=CARD)]},  # in a contract string field
        {"readings": [reading(site=int(CARD))]},  # a number where the contract has a string
        {
            "schema": "gumei.health.measurements.v1",
            "measurements": [{"values": {"systolic_mmhg": 120, "card": CARD}}],
        },
        [CARD, {"x": CARD}],  # not the contract's shape at all
        {"readings": [reading(resident="6222 0212 3456 7890")]},
        {"note": f"card {CARD[:8]}-{CARD[8:]}"},
    ],
)
def test_no_identifier_survives(doc: object) -> None:
    text = redact_payload(json.dumps(doc).encode())
    assert CARD not in text.replace(" ", "").replace("-", "") and CARD[:8] not in text, text


def test_unknown_fields_keep_a_masked_name_and_lose_their_value() -> None:
    out = json.loads(redact_entry(reading(firmware="2.1", **{f"id{CARD}": "x"})))
    assert out["firmware"] == REDACTED and out["id" + "#" * 16] == REDACTED


@pytest.mark.parametrize(
    "payload",
    [
        f"card={CARD}".encode(),
        f"{{not json {CARD}".encode(),
        b"[" * 5000 + CARD.encode(),
        ("x" * 2040 + CARD).encode(),
        b"\xff\xfe" + CARD.encode(),
    ],
)
def test_text_that_is_not_json_has_its_numbers_masked(payload: bytes) -> None:
    text = redact_payload(payload)
    assert CARD[:8] not in text and len(text) <= 2048


def test_short_numbers_and_site_ids_stay_readable() -> None:
    assert mask_digits("WS-0101 seq 1042 at 12:30") == "WS-0101 seq 1042 at 12:30"


_KEYS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["resident", "device", "site", "readings", "values", "agent_version"]),
)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(_KEYS, c, max_size=4),
        max_leaves=30,
    )
)
def test_any_json_value_redacts_to_bounded_json(value: object) -> None:
    """Whatever the shape, no run of 8+ digits survives outside the contract's numeric fields
    (seq, ts, kg, values: those keep their numbers by design)."""
    text = redact_entry(value)
    assert len(text) <= 2048
    assert not re.search(r"\d{8,}", text), text


def test_reasons_keep_our_seq_and_ts_and_mask_everything_else() -> None:
    assert (
        mask_reason("HH-01-BP seq 1764201600123: systolic_mmhg 400")
        == "HH-01-BP seq 1764201600123: systolic_mmhg 400"
    )
    assert (
        mask_reason("entry 3: ts 1764201600000 is in the future")
        == "entry 3: ts 1764201600000 is in the future"
    )
    assert CARD not in mask_reason(f"device {CARD} is not registered")
    assert CARD[:8] not in mask_reason(f"seq 1 {CARD}") and CARD[:8] not in mask_reason(
        f"site '{CARD[:8]}-{CARD[8:]}'"
    )
