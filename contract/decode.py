"""Decode payloads from bytes into valid entries and quarantined ones, with reasons."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError

from contract.errors import PayloadRejected, first_error
from contract.models import (
    FUTURE_TOLERANCE_MS,
    HEALTH_SCHEMA,
    MAX_BATCH,
    MAX_PAYLOAD_BYTES,
    TICKETS_SCHEMA,
    WASTE_SCHEMA,
    HealthBatch,
    HealthMeasurement,
    Status,
    WasteBatch,
    WasteReading,
    WeighbridgeTicket,
    WeighbridgeTickets,
    device_belongs,
    ignored_fields,
    now_ms,
)
from contract.topics import Topic

E = TypeVar("E", WasteReading, HealthMeasurement, WeighbridgeTicket)


@dataclass(frozen=True, slots=True)
class RejectedEntry:
    """One entry of a batch that was quarantined, with its reason."""

    index: int
    code: str
    reason: str
    raw: Any


@dataclass(slots=True)
class Decoded(Generic[E]):
    """The outcome of decoding one batch payload: valid entries, rejected ones, and the names of
    fields v1 does not define that were ignored (with how often each occurred)."""

    site: str
    valid: list[E] = field(default_factory=list)
    rejected: list[RejectedEntry] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)


def load_json(payload: bytes) -> Any:
    """Parse a payload as strict JSON (no NaN/Infinity, bounded nesting); PayloadRejected otherwise.

    Any input, however shaped, ends in a value or a PayloadRejected: never a RecursionError."""
    try:
        return json.loads(
            payload.decode("utf-8"), parse_constant=_no_constant
        )  # UTF-8 only: no UTF-16/32 guessing
    except RecursionError:
        raise PayloadRejected("not_json", "JSON nested too deeply") from None
    except (
        UnicodeDecodeError,
        ValueError,
    ) as exc:  # JSONDecodeError, NaN/Infinity, >4300-digit ints
        raise PayloadRejected("not_json", f"payload is not UTF-8 JSON ({str(exc)[:120]})") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_WASTE_FAST = TypeAdapter(WasteBatch)
_HEALTH_FAST = TypeAdapter(HealthBatch)
_TICKETS_FAST = TypeAdapter(WeighbridgeTickets)


def _check_entry(
    entry: WasteReading | HealthMeasurement | WeighbridgeTicket, site: str, limit_ms: int
) -> tuple[str, str] | None:
    if not device_belongs(entry.device, site):
        return "device_not_of_site", f"device {entry.device} does not belong to site {site}"
    if entry.ts > limit_ms:
        return "future_ts", f"ts {entry.ts} is more than 5 minutes in the future"
    return None


def _load_envelope(payload: bytes, schema: str, list_key: str) -> tuple[str, list[Any], list[str]]:
    doc = load_json(payload)
    if not isinstance(doc, dict):
        raise PayloadRejected("bad_schema", "payload is not a JSON object")
    if doc.get("schema") != schema:
        raise PayloadRejected(
            "bad_schema", f"schema must be {schema!r}, got {type(doc.get('schema')).__name__}"
        )
    extra = sorted(set(doc) - {"schema", "site", list_key})
    site = doc.get("site")
    entries = doc.get(list_key)
    if not isinstance(site, str):
        raise PayloadRejected("bad_schema", "site must be a string")
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_BATCH:
        raise PayloadRejected(
            "bad_schema", f"{list_key} must be a list of 1 to {MAX_BATCH} entries"
        )
    return site, entries, extra


def _decode(
    payload: bytes,
    topic: Topic,
    fast: TypeAdapter[Any],
    model: type[E],
    schema: str,
    list_key: str,
    now: int | None,
) -> Decoded[E]:
    limit = (now_ms() if now is None else now) + FUTURE_TOLERANCE_MS
    entries: Iterable[Any]
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadRejected("too_large", f"payload of {len(payload)} bytes exceeds 256 KiB")
    try:
        batch = fast.validate_json(payload)
        site, entries, raw_entries, extra = (
            batch.site,
            getattr(batch, list_key),
            None,
            ignored_fields(batch),
        )
    except ValidationError:
        site, raw_entries, extra = _load_envelope(payload, schema, list_key)
        entries = raw_entries
    if site != topic.site:
        raise PayloadRejected(
            "site_mismatch", f"payload site {site[:64]!r} differs from topic site {topic.site!r}"
        )
    out: Decoded[E] = Decoded(site=site)
    out.ignored.update(extra)
    for i, item in enumerate(entries):
        if raw_entries is not None:
            try:
                item = model.model_validate(item)
            except ValidationError as exc:
                out.rejected.append(RejectedEntry(i, "invalid_entry", first_error(exc), item))
                continue
        if item.model_extra:
            out.ignored.update(f"{list_key}[].{name}" for name in item.model_extra)
        problem = _check_entry(item, site, limit)
        if problem:
            out.rejected.append(
                RejectedEntry(i, problem[0], problem[1], item.model_dump(mode="json"))
            )
        else:
            out.valid.append(item)
    return out


def decode_waste(payload: bytes, topic: Topic, now: int | None = None) -> Decoded[WasteReading]:
    """Decode a waste readings payload; raise PayloadRejected when the whole payload is bad."""
    return _decode(payload, topic, _WASTE_FAST, WasteReading, WASTE_SCHEMA, "readings", now)


def decode_health(
    payload: bytes, topic: Topic, now: int | None = None
) -> Decoded[HealthMeasurement]:
    """Decode a health measurements payload; raise PayloadRejected when the whole payload is bad."""
    return _decode(
        payload, topic, _HEALTH_FAST, HealthMeasurement, HEALTH_SCHEMA, "measurements", now
    )


def decode_tickets(
    payload: bytes, topic: Topic, now: int | None = None
) -> Decoded[WeighbridgeTicket]:
    """Decode a weighbridge tickets payload; raise PayloadRejected when the whole payload is bad."""
    return _decode(payload, topic, _TICKETS_FAST, WeighbridgeTicket, TICKETS_SCHEMA, "tickets", now)


def decode_status(payload: bytes, topic: Topic) -> Status:
    """Decode a retained status payload (or a Last Will)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadRejected("too_large", f"payload of {len(payload)} bytes exceeds 256 KiB")
    try:
        status = Status.model_validate_json(payload)
    except ValidationError as exc:
        code = "not_json" if exc.errors()[0]["type"] == "json_invalid" else "bad_schema"
        raise PayloadRejected(code, first_error(exc)) from None
    if status.site != topic.site:
        raise PayloadRejected(
            "site_mismatch", f"payload site {status.site!r} differs from topic site {topic.site!r}"
        )
    return status


DECODERS: dict[str, Callable[..., Any]] = {
    "readings": decode_waste,
    "measurements": decode_health,
    "tickets": decode_tickets,
}
