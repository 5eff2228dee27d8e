"""An inspection record: what an inspector submits, how it is checked, and what is derived (pure).

达标 (passed) is DERIVED, never trusted: passed = score >= pass mark AND all five 五有 items hold
(containers present and labelled, every container judged >= 85 % pure, guidance at drop-off
times, clean surroundings, records kept). A client may send `passed`; if it contradicts the
derivation the record is refused (422), so an app with a stale pass mark cannot store a wrong
figure. A full score (100) with a failing item is refused as contradictory.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cloud.redact import mask_digits
from contract.models import CATEGORIES

PlaceKind = Literal["site", "area", "unit", "public_place"]
PlaceType = Literal["residential", "unit", "public"]
PLACE_KINDS: tuple[PlaceKind, ...] = ("site", "area", "unit", "public_place")
PLACE_TYPES: tuple[PlaceType, ...] = ("residential", "unit", "public")
TYPE_OF_KIND: dict[PlaceKind, PlaceType] = {
    "site": "residential",
    "area": "residential",
    "unit": "unit",
    "public_place": "public",
}
PLACE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9-]{0,39}$"
INSPECTION_PATTERN = r"^i-[0-9a-f]{20}$"
PHOTO_PATTERN = r"^[0-9a-f]{64}$"
Category = Literal["wet", "dry", "recyclable", "hazardous"]
assert set(CATEGORIES) == {"wet", "dry", "recyclable", "hazardous"}  # one list of categories
MAX_CONTAINERS = 40
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PHOTO_TYPES = {"image/jpeg": (JPEG_MAGIC, "jpg"), "image/png": (PNG_MAGIC, "png")}
_MARKUP = re.compile(r"[<>\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
FUTURE_SLACK = dt.timedelta(minutes=5)  # clock skew of a phone


class InspectionError(ValueError):
    """A record that cannot be stored (one line says why); the API answers 422."""


class Container(BaseModel):
    """One container at the place and the inspector's purity judgement (>= 85 % pure or not)."""

    model_config = ConfigDict(extra="forbid")
    category: Category
    pure: bool


class InspectionIn(BaseModel):
    """What an inspector submits (JSON route; the web form builds the same)."""

    model_config = ConfigDict(extra="forbid")
    time: dt.datetime = Field(description="when the check was made (with a UTC offset)")
    place_kind: PlaceKind
    place: Annotated[str, StringConstraints(pattern=PLACE_PATTERN)]
    labelled: bool = Field(
        description="设施: sorting containers present and labelled (五有: 有设施设备)"
    )
    containers: list[Container] = Field(min_length=1, max_length=MAX_CONTAINERS)
    guidance: bool = Field(description="引导: guidance at drop-off times (五有: 有长效管理)")
    clean: bool = Field(description="环境: clean surroundings (五有: 有长效管理)")
    records: bool = Field(description="台账: records kept (五有: 有物流去向)")
    score: int = Field(ge=0, le=100)
    passed: bool | None = Field(None, description="optional; must equal the derived 达标")
    notes: str = Field("", max_length=4000)
    photo: str | None = Field(
        None, max_length=30_000_000, description="base64 JPEG/PNG (JSON route)"
    )


@dataclass(frozen=True)
class Place:
    """A checked place as known to the registry or the places file."""

    kind: PlaceKind
    id: str
    area: str

    @property
    def type(self) -> PlaceType:
        return TYPE_OF_KIND[self.kind]


@dataclass(frozen=True)
class Inspection:
    """A validated record, ready to store."""

    id: str
    time_ms: int
    place: Place
    labelled: bool
    containers: tuple[tuple[str, bool], ...]
    guidance: bool
    clean: bool
    records: bool
    score: int
    pass_score: int
    passed: bool
    notes: str
    photo: str  # sha256 of the stored photo, "" when none
    by: str

    @property
    def purity_ok(self) -> bool:
        return all(pure for _, pure in self.containers)

    @property
    def containers_pure(self) -> int:
        return sum(1 for _, pure in self.containers if pure)


def new_id() -> str:
    """A fresh inspection id, i-<20 hex>."""
    return "i-" + secrets.token_hex(10)


def items_hold(labelled: bool, containers: list[Container], *rest: bool) -> bool:
    """All five 五有 items hold."""
    return labelled and all(c.pure for c in containers) and all(rest)


def derive_passed(body: InspectionIn, pass_score: int) -> bool:
    """达标: score at or above the pass mark and every 五有 item holding; refuse contradictions."""
    items = items_hold(body.labelled, body.containers, body.guidance, body.clean, body.records)
    if body.score == 100 and not items:
        raise InspectionError("score: 100 points with a failing 五有 item is contradictory")
    passed = body.score >= pass_score and items
    if body.passed is not None and body.passed != passed:
        why = (
            f"score {body.score} is below the pass mark {pass_score}"
            if body.score < pass_score
            else "a 五有 item fails"
            if not items
            else f"score {body.score} and every item meet the pass mark {pass_score}"
        )
        raise InspectionError(f"passed: {str(body.passed).lower()} contradicts the record ({why})")
    return passed


def clean_notes(text: str, limit: int) -> str:
    """Notes as stored: bounded, no markup or control characters, digit runs (phone, id and card
    numbers) masked like dead letters (cloud/redact.py)."""
    text = text.replace("\r\n", "\n").strip()
    if len(text) > limit:
        raise InspectionError(f"notes: at most {limit} characters (got {len(text)})")
    if _MARKUP.search(text):
        raise InspectionError("notes: no markup (< >) or control characters")
    return mask_digits(text)


def check_time(when: dt.datetime, now: dt.datetime, max_age_days: int) -> int:
    """The check's time in epoch ms; refused when naive, in the future or too old."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise InspectionError("time: give a UTC offset, e.g. 2026-12-01T09:30:00+08:00")
    if when > now + FUTURE_SLACK:
        raise InspectionError("time: in the future")
    if when < now - dt.timedelta(days=max_age_days):
        raise InspectionError(f"time: more than {max_age_days} days ago")
    return int(when.timestamp() * 1000)


def decode_photo(b64: str) -> bytes:
    """The bytes of a base64 photo (JSON route)."""
    try:
        return base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise InspectionError("photo: not valid base64") from None


def check_photo(data: bytes, max_bytes: int, declared: str | None = None) -> tuple[str, str]:
    """(sha256, extension) of a JPEG or PNG photo within the size limit; the declared content
    type, when given, must be one of those and agree with the file's magic bytes."""
    if len(data) > max_bytes:
        raise InspectionError(f"photo: {len(data)} bytes, more than the limit of {max_bytes}")
    if declared is not None and declared not in PHOTO_TYPES:
        raise InspectionError(
            f"photo: content type {declared[:40]!r} is not image/jpeg or image/png"
        )
    for ctype, (magic, ext) in PHOTO_TYPES.items():
        if data.startswith(magic) and declared in (None, ctype):
            return hashlib.sha256(data).hexdigest(), ext
    raise InspectionError("photo: not a JPEG or PNG file")


def build(
    body: InspectionIn,
    place: Place,
    *,
    pass_score: int,
    notes_limit: int,
    max_age_days: int,
    photo: str,
    by: str,
    now: dt.datetime,
    inspection_id: str | None = None,
) -> Inspection:
    """The record to store, or InspectionError (nothing stored)."""
    return Inspection(
        id=inspection_id or new_id(),
        time_ms=check_time(body.time, now, max_age_days),
        place=place,
        labelled=body.labelled,
        containers=tuple((c.category, c.pure) for c in body.containers),
        guidance=body.guidance,
        clean=body.clean,
        records=body.records,
        score=body.score,
        pass_score=pass_score,
        passed=derive_passed(body, pass_score),
        notes=clean_notes(body.notes, notes_limit),
        photo=photo,
        by=by,
    )
