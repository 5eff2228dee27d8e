"""A fast decoder (msgspec) for waste readings batches that are valid as a whole.

`decode_waste_fast` accepts a subset of what `contract.decode.decode_waste` accepts and, for that
subset, yields the same values as `contract.models.WasteBatch`; for anything else it returns None
and the caller uses the pydantic path, which knows how to quarantine entry by entry with reasons.

The structs mirror `WasteBatch` / `WasteReading` field for field and constraint for constraint:
ints strict (no bool, no float), `seq` <= 2**63 - 1 (msgspec cannot say lt=2**63), floats accept
JSON integers as pydantic's strict float does, NaN/Infinity literals are malformed JSON here, unknown
fields are forbidden, optional fields take null. Differences, all on the rejecting side or covered
by the caller:

- `device` is NOT checked against `ID_PATTERN`: the ingestion fast path accepts a batch only when
  every device is a registered device of the topic's site, and registry ids pass that pattern.
- `site` is not pattern-checked either: the caller requires it to equal a registry site id.
- `schema` is required (the pydantic model has a default and also takes the key `schema_`).
- A duplicate key is validated at each occurrence (the last one wins, as in pydantic).
- `resident` is checked for length 34 by msgspec and for `^r-[0-9a-f]{32}$` in one regex pass
  over the whole batch (msgspec's per-string pattern check costs ~0.6 µs; Python's `$` would
  also accept a trailing newline that pydantic's Rust regex rejects, which the length rules out).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec

from contract.models import MAX_BATCH, MAX_NET_KG, MAX_PAYLOAD_BYTES, RESIDENT_PATTERN

__all__ = ["FastWasteBatch", "FastWasteReading", "decode_waste_fast"]

# RESIDENT_PATTERN (fixed length 34) repeated: matches the concatenation of 34-char residents
# exactly when each of them matches.
RESIDENT_LENGTH = 34
_RESIDENTS = re.compile("(?:" + RESIDENT_PATTERN.removeprefix("^").removesuffix("$") + ")*")

Category = Literal["dry", "wet", "recyclable", "hazardous"]


class FastWasteReading(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """One deposit (see contract.models.WasteReading); device not pattern-checked."""

    device: str
    seq: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    ts: Annotated[int, msgspec.Meta(ge=0, lt=10**14)]
    category: Category
    net_kg: Annotated[float, msgspec.Meta(gt=0, le=MAX_NET_KG)]
    gross_kg: Annotated[float, msgspec.Meta(ge=0, le=10_000)] | None = None
    resident: (
        Annotated[str, msgspec.Meta(min_length=RESIDENT_LENGTH, max_length=RESIDENT_LENGTH)] | None
    ) = None


class FastWasteBatch(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """A waste readings batch (see contract.models.WasteBatch); site not pattern-checked."""

    schema: Literal["gumei.waste.readings.v1"]
    site: str
    readings: Annotated[list[FastWasteReading], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


_DECODER = msgspec.json.Decoder(FastWasteBatch)


def decode_waste_fast(payload: bytes) -> FastWasteBatch | None:
    """The batch when the payload is valid as a whole (bar device and site ids), else None."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None
    try:
        batch = _DECODER.decode(payload)
    except (msgspec.MsgspecError, RecursionError):  # malformed, too deep, not the schema, or with
        return None  # fields v1 does not define: the pydantic path says why (or counts them)
    residents = [r.resident for r in batch.readings if r.resident is not None]
    if residents and _RESIDENTS.fullmatch("".join(residents)) is None:
        return None
    return batch
