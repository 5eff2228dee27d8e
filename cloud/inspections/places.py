"""Which places an inspector may check: the registry's areas (居民区) and waste stations, plus the
units (单位) and public places (公共场所) of the places file (config/places.yaml)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloud.inspections.record import PLACE_PATTERN, InspectionError, Place, PlaceKind
from cloud.registry import Registry
from contract.errors import first_error

DEFAULT_PLACES = Path(__file__).resolve().parent.parent.parent / "config" / "places.yaml"


class PlaceEntry(BaseModel):
    """One unit or public place."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=PLACE_PATTERN)
    type: Literal["unit", "public"]
    area: str
    name: str = Field(max_length=200)


class PlacesFile(BaseModel):
    """The places file."""

    model_config = ConfigDict(extra="forbid")
    places: list[PlaceEntry] = []


def load_places(path: Path) -> list[PlaceEntry]:
    """The places of the file; a missing file is no places; a broken one a one-line error."""
    if not path.exists():
        return []
    try:
        doc = PlacesFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except (OSError, yaml.YAMLError) as exc:
        raise InspectionError(f"places file {path}: {str(exc).splitlines()[0]}") from None
    except ValidationError as exc:
        raise InspectionError(f"places file {path}: {first_error(exc)}") from None
    ids = [p.id for p in doc.places]
    if len(set(ids)) != len(ids):
        raise InspectionError(f"places file {path}: duplicate place ids")
    return doc.places


class LivePlaces:
    """The places file, re-read when it changes (like the registry)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._places: list[PlaceEntry] = []

    def current(self) -> list[PlaceEntry]:
        try:
            st = self.path.stat()
            stamp = (st.st_ino, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = (0, 0)
        with self._lock:
            if stamp != self._stamp:
                self._places = load_places(self.path)
                self._stamp = stamp
            return self._places


def resolve(kind: PlaceKind, place_id: str, registry: Registry, places: list[PlaceEntry]) -> Place:
    """The place an inspection names, or InspectionError when it is unknown."""
    if kind == "area":
        if any(a.id == place_id for a in registry.areas):
            return Place(kind, place_id, place_id)
    elif kind == "site":
        site = registry.site(place_id)
        if site is not None and site.kind == "waste" and not site.retired:
            return Place(kind, place_id, site.area)
    else:
        want = "unit" if kind == "unit" else "public"
        for p in places:
            if p.id == place_id and p.type == want:
                return Place(kind, place_id, p.area)
    raise _unknown(kind, place_id)


def _unknown(kind: PlaceKind, place_id: str) -> InspectionError:
    where = {
        "area": "an area of the registry",
        "site": "a waste station of the registry (WS-…, not retired)",
        "unit": "a unit of the places file",
        "public_place": "a public place of the places file",
    }[kind]
    return InspectionError(f"place: {place_id!r} is not {where}")
