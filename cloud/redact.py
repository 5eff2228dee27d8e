"""What of a rejected message may be kept: dead letters and logs never carry a personal identifier.

A gateway is not trusted to have pseudonymized anything: a broken or hostile one may send a raw
card number as `resident`, in a field the contract does not define, as a key name, or in a
payload that is not JSON at all. Pure functions; the ingestion planner passes every excerpt,
reason and topic of a dead letter through them before anything is stored or logged.

Rules (docs/security.md, "dead letters"):
- JSON payloads keep their shape and the values of contract fields (ids, seq, ts, kg, values),
  so a dead letter can still be debugged; `resident` survives only as a valid pseudonym; every
  field v1 does not define keeps its (masked) name and loses its value; a value of the wrong type
  for its field is dropped.
- Free text (non-JSON payloads, reasons, topics, field names, contract strings) has every run of
  8 or more digits (single spaces, dots or dashes between them allowed) replaced by `#`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from contract.decode import load_json
from contract.errors import ContractError
from contract.models import (
    RESIDENT_PATTERN,
    VALUE_KEYS,
    DeviceStatus,
    HealthBatch,
    HealthMeasurement,
    Status,
    WasteBatch,
    WasteReading,
)

REDACTED = "<redacted>"
EXCERPT_CHARS = 2048
_MAX_DEPTH = 12
_MAX_ITEMS = 50
_DIGITS = re.compile(r"\d(?:[ .\-]?\d){7,}")
_REASON_DIGITS = re.compile(r"(?<!seq )(?<!ts )(?<![\d.\-])\d(?:[ .\-]?\d){7,}")
_RESIDENT = re.compile(RESIDENT_PATTERN)


def _field_names(*models: type[Any]) -> set[str]:
    return {f.alias or name for m in models for name, f in m.model_fields.items()}


_KNOWN = _field_names(
    WasteBatch, WasteReading, HealthBatch, HealthMeasurement, Status, DeviceStatus
)
_VALUE_KEYS = {k for required, optional in VALUE_KEYS.values() for k in required | optional}
_STRINGS = {"schema", "site", "device", "category", "type", "state", "agent_version", "meal"}
_CONTAINERS = {"readings", "measurements", "devices", "values"}


def mask_digits(text: str) -> str:
    """Replace every run of 8+ digits (a card, phone or id number could be one) by `#`s."""
    return _DIGITS.sub(lambda m: "#" * len(m.group()), text)


def mask_reason(reason: str) -> str:
    """A dead letter's reason with digit runs masked, except the `seq N` and `ts N` our own code
    wrote from validated integer fields (stored with every reading anyway, and what tells
    redeliveries of one entry apart)."""
    return _REASON_DIGITS.sub(lambda m: "#" * len(m.group()), reason)


def _redact(value: Any, field: str | None, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return REDACTED
    if isinstance(value, dict):
        known = _VALUE_KEYS if field == "values" else _KNOWN
        return {
            mask_digits(str(k))[:64]: _redact(v, k, depth + 1) if k in known else REDACTED
            for k, v in list(value.items())[:_MAX_ITEMS]
        }
    if isinstance(value, list):
        return (
            [_redact(v, field, depth + 1) for v in value[:_MAX_ITEMS]]
            if field in _CONTAINERS or field is None
            else REDACTED
        )
    if value is None or isinstance(value, bool):
        return value
    if field == "resident":
        return value if isinstance(value, str) and _RESIDENT.fullmatch(value) else REDACTED
    if isinstance(value, str):
        return mask_digits(value)[:100] if field in _STRINGS else REDACTED
    if isinstance(value, (int, float)):
        return (
            value
            if field is not None and field not in _STRINGS and field not in _CONTAINERS
            else REDACTED
        )
    return REDACTED


def redact_entry(entry: Any) -> str:
    """A decoded JSON value (one entry, or a whole payload) as redacted JSON text."""
    return json.dumps(_redact(entry, None, 0), ensure_ascii=False, default=str)[:EXCERPT_CHARS]


def redact_payload(payload: bytes | str) -> str:
    """A received payload as it may be kept in a dead letter (redacted JSON, or masked text)."""
    raw = payload.encode() if isinstance(payload, str) else payload
    try:
        doc = load_json(raw)
    except ContractError:
        # Mask a little past the cut, so a number straddling it is masked whole.
        return mask_digits(raw[: EXCERPT_CHARS + 64].decode("utf-8", "replace"))[:EXCERPT_CHARS]
    return redact_entry(doc)
