"""Inspections: inspectors record 五有 checks (JSON for apps; the web form is inspection_form.py);
operators, admins and inspectors list them and read the sorting-effectiveness rate (docs/inspections.md)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, ValidationError

from cloud.api.deps import AppState, Inspector, State, bounded, require
from cloud.auth import TokenRecord
from cloud.days import SHANGHAI
from cloud.inspections import store
from cloud.inspections.effectiveness import effectiveness
from cloud.inspections.places import LivePlaces, resolve
from cloud.inspections.record import (
    PHOTO_PATTERN,
    PLACE_PATTERN,
    PLACE_TYPES,
    Inspection,
    InspectionError,
    InspectionIn,
    PlaceKind,
    build,
    check_photo,
    decode_photo,
)
from contract.errors import first_error

router = APIRouter(prefix="/api/v1/inspections", tags=["inspections"])
Readers = Annotated[TokenRecord, Depends(require("operator", "admin", "inspector"))]
MAX_DAYS = 366
BODY_SLACK = 64 * 1024  # the form fields and multipart framing beside the photo


def body_limit(state: AppState) -> int:
    """The largest request body accepted: the photo limit (as base64 for JSON) plus the fields."""
    return (state.settings.inspections.photo_max_bytes * 4) // 3 + 4 + BODY_SLACK


async def read_bounded(request: Request, limit: int) -> bytes:
    """The request body, refused (413) before reading when Content-Length is over the limit and
    refused (411) without one; never more than `limit` bytes are held."""
    length = request.headers.get("content-length")
    if length is None:
        if "transfer-encoding" in request.headers:
            raise HTTPException(
                status.HTTP_411_LENGTH_REQUIRED, detail="send a Content-Length (no chunked bodies)"
            )
        return b""
    if not length.isdigit():
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="bad Content-Length")
    if int(length) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"request body of {length} bytes is over the limit of {limit}",
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail="request body too large")
        chunks.append(chunk)
    return b"".join(chunks)


def places_of(state: AppState, request: Request) -> LivePlaces:
    """The app's live places file (made on first use)."""
    live = getattr(request.app.state, "inspection_places", None)
    if live is None or live.path != state.settings.inspections.places:
        live = request.app.state.inspection_places = LivePlaces(state.settings.inspections.places)
    return live


def submit(
    state: AppState,
    live: LivePlaces,
    body: InspectionIn,
    photo: bytes | None,
    declared: str | None,
    by: str,
) -> Inspection:
    """Validate everything, then keep the photo and write the record; InspectionError before
    anything is stored."""
    cfg = state.settings.inspections
    place = resolve(body.place_kind, body.place, state.registry, live.current())
    digest = ext = ""
    if photo:
        digest, ext = check_photo(photo, cfg.photo_max_bytes, declared)
    rec = build(
        body,
        place,
        pass_score=cfg.pass_score,
        notes_limit=cfg.notes_max_chars,
        max_age_days=cfg.max_age_days,
        photo=digest,
        by=by,
        now=dt.datetime.now(dt.UTC),
    )
    if photo:
        store.store_photo(state.settings.photo_dir(), digest, ext, photo)
    store.write(state.influx, rec)
    return rec


class ContainerOut(BaseModel):
    category: str
    pure: bool


class InspectionOut(BaseModel):
    """One stored inspection (time in Shanghai time)."""

    id: str
    time: dt.datetime
    place_type: str
    place_kind: str
    place: str
    area: str
    labelled: bool
    containers: list[ContainerOut]
    guidance: bool
    clean: bool
    records: bool
    score: int
    pass_score: int
    passed: bool
    notes: str
    photo: str | None
    by: str


def _time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, SHANGHAI)


def out_of_record(rec: Inspection) -> InspectionOut:
    return InspectionOut(
        id=rec.id,
        time=_time(rec.time_ms),
        place_type=rec.place.type,
        place_kind=rec.place.kind,
        place=rec.place.id,
        area=rec.place.area,
        labelled=rec.labelled,
        containers=[ContainerOut(category=c, pure=p) for c, p in rec.containers],
        guidance=rec.guidance,
        clean=rec.clean,
        records=rec.records,
        score=rec.score,
        pass_score=rec.pass_score,
        passed=rec.passed,
        notes=rec.notes,
        photo=rec.photo or None,
        by=rec.by,
    )


def out_of_stored(s: store.Stored) -> InspectionOut:
    return InspectionOut(
        id=s.id,
        time=_time(s.time_ms),
        place_type=s.place_type,
        place_kind=s.place_kind,
        place=s.place,
        area=s.area,
        labelled=s.labelled,
        containers=[ContainerOut(category=c, pure=p) for c, p in s.containers],
        guidance=s.guidance,
        clean=s.clean,
        records=s.records,
        score=s.score,
        pass_score=s.pass_score,
        passed=s.passed,
        notes=s.notes,
        photo=s.photo or None,
        by=s.by,
    )


def _inline(node: object, defs: dict[str, object]) -> object:
    """A JSON schema with its local $refs replaced by their definitions (for openapi_extra)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


_SCHEMA = InspectionIn.model_json_schema()
_BODY = {
    "required": True,
    "content": {"application/json": {"schema": _inline(_SCHEMA, _SCHEMA.pop("$defs", {}))}},
}


@router.post(
    "",
    response_model=InspectionOut,
    status_code=status.HTTP_201_CREATED,
    openapi_extra={"requestBody": _BODY},  # the body is read by hand (bounded), not by FastAPI
)
async def create_inspection(request: Request, state: State, token: Inspector) -> InspectionOut:
    """Record one check (JSON; `photo` as base64 JPEG/PNG). 422 with one line for any bad field;
    nothing is stored unless the whole record is valid."""
    raw = await read_bounded(request, body_limit(state))
    try:
        body = InspectionIn.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise HTTPException(422, detail=first_error(exc)) from None
    try:
        photo = decode_photo(body.photo) if body.photo else None
        live = places_of(state, request)
        rec = await run_in_threadpool(submit, state, live, body, photo, None, token.name)
    except InspectionError as exc:
        raise HTTPException(422, detail=str(exc)) from None
    return out_of_record(rec)


def _period(start: dt.date, end: dt.date) -> None:
    if end < start:
        raise HTTPException(422, detail="end is before start")
    if (end - start).days >= MAX_DAYS:
        raise HTTPException(422, detail=f"at most {MAX_DAYS} days at once")


@router.get("", response_model=list[InspectionOut])
def list_inspections(
    state: State,
    _: Readers,
    start: Annotated[dt.date, Query(description="first Shanghai day, YYYY-MM-DD")],
    end: Annotated[dt.date, Query(description="last Shanghai day (inclusive)")],
    place_kind: Annotated[
        PlaceKind | None, Query(description="site, area, unit, public_place")
    ] = None,
    place: Annotated[str | None, Query(pattern=PLACE_PATTERN, description="a place id")] = None,
) -> list[InspectionOut]:
    """Inspections of a period (and place), oldest first."""
    _period(start, end)
    rows = store.read(state.influx, start, end, place_kind, place)
    bounded(len(rows), state)
    return [out_of_stored(s) for s in rows]


class RateOut(BaseModel):
    """Places inspected, those whose latest check in the period is 达标, and the share (null: none)."""

    places: int
    passed: int
    pct: float | None


class EffectivenessOut(BaseModel):
    """实效达标率 of a period: per place type and overall (docs/inspections.md)."""

    start: dt.date
    end: dt.date
    source: str
    overall: RateOut
    by_type: dict[str, RateOut]


@router.get("/effectiveness", response_model=EffectivenessOut)
def sorting_effectiveness(
    state: State,
    _: Readers,
    start: Annotated[dt.date, Query(description="first Shanghai day, YYYY-MM-DD")],
    end: Annotated[dt.date, Query(description="last Shanghai day (inclusive)")],
) -> EffectivenessOut:
    """Share of inspected places whose latest inspection in the period is 达标."""
    _period(start, end)
    rates = effectiveness([s.check() for s in store.read(state.influx, start, end)])

    def out(key: str) -> RateOut:
        r = rates[key]
        return RateOut(places=r.places, passed=r.passed, pct=r.pct)

    return EffectivenessOut(
        start=start,
        end=end,
        source="inspections",
        overall=out("all"),
        by_type={t: out(t) for t in PLACE_TYPES},
    )


@router.get("/photos/{digest}")
def photo(
    state: State,
    _: Readers,
    digest: Annotated[str, Path(pattern=PHOTO_PATTERN, description="sha256 of the photo")],
) -> FileResponse:
    """A stored inspection photo by its hash."""
    path = store.photo_path(state.settings.photo_dir(), digest)
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no photo {digest}")
    media = "image/png" if path.suffix == ".png" else "image/jpeg"
    return FileResponse(path, media_type=media, headers={"X-Content-Type-Options": "nosniff"})
