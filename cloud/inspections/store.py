"""Inspections in InfluxDB (`inspection`, the records database) and their photos on disk by content hash."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cloud.days import days_where
from cloud.influx import InfluxClient, quote
from cloud.inspections.effectiveness import Check
from cloud.inspections.record import PLACE_KINDS, Inspection, PlaceKind
from cloud.lineproto import line
from cloud.measurements import INSPECTION
from runtime.system import replace_durably


def point_time_ns(rec: Inspection) -> int:
    """The check's ms plus a number from its id below 1e6 ns (two checks in one ms stay apart)."""
    return rec.time_ms * 1_000_000 + int(rec.id[2:12], 16) % 1_000_000


def inspection_line(rec: Inspection) -> str:
    """One line of line protocol."""
    return line(
        INSPECTION.name,
        {
            "place_type": rec.place.type,
            "place_kind": rec.place.kind,
            "place": rec.place.id,
            "area": rec.place.area,
        },
        {
            "id": rec.id,
            "score": rec.score,
            "pass_score": rec.pass_score,
            "passed": rec.passed,
            "labelled": rec.labelled,
            "containers": len(rec.containers),
            "containers_pure": rec.containers_pure,
            "container_detail": ",".join(f"{c}:{int(p)}" for c, p in rec.containers),
            "guidance": rec.guidance,
            "clean": rec.clean,
            "records": rec.records,
            "notes": rec.notes,
            "photo": rec.photo,
            "by": rec.by,
        },
        point_time_ns(rec),
    )


def write(influx: InfluxClient, rec: Inspection) -> None:
    """Store one inspection, in the records database (the API can write there, not the main one)."""
    influx.write_lines((inspection_line(rec) + "\n").encode(), db=influx.records_db)


def store_photo(folder: Path, digest: str, ext: str, data: bytes) -> str:
    """Keep a photo as <folder>/<sha256>.<ext> (atomically; an identical photo is stored once)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{digest}.{ext}"
    if not path.exists():
        replace_durably(path, data)
    return digest


def photo_path(folder: Path, digest: str) -> Path | None:
    """The stored photo of this hash, if any."""
    for ext in ("jpg", "png"):
        path = folder / f"{digest}.{ext}"
        if path.is_file():
            return path
    return None


@dataclass(frozen=True)
class Stored:
    """One stored inspection as read back."""

    id: str
    time_ms: int
    place_type: str
    place_kind: PlaceKind
    place: str
    area: str
    score: int
    pass_score: int
    passed: bool
    labelled: bool
    containers: list[tuple[str, bool]]
    guidance: bool
    clean: bool
    records: bool
    notes: str
    photo: str
    by: str

    def check(self) -> Check:
        return Check(self.place_kind, self.place, self.time_ms, self.id, self.passed)


def _detail(text: str) -> list[tuple[str, bool]]:
    out = []
    for part in (text or "").split(","):
        cat, _, pure = part.partition(":")
        if cat:
            out.append((cat, pure == "1"))
    return out


def read(
    influx: InfluxClient,
    start: dt.date,
    end: dt.date,
    place_kind: PlaceKind | None = None,
    place: str | None = None,
) -> list[Stored]:
    """Inspections of the Shanghai days start..end (inclusive), oldest first."""
    where = days_where(start, end)
    if place_kind is not None:
        where += f' AND "place_kind" = {quote(place_kind)}'
    if place is not None:
        where += f' AND "place" = {quote(place)}'
    q = (
        f"SELECT * FROM {INSPECTION.name} WHERE {where} "
        'GROUP BY "place_type", "place_kind", "place", "area"'
    )
    out: list[Stored] = []
    for s in influx.query(q, db=influx.records_db):
        kind = s.tags.get("place_kind", "")
        if kind not in PLACE_KINDS:
            continue
        for row in s.values:
            r = dict(zip(s.columns, row, strict=True))
            out.append(
                Stored(
                    id=str(r.get("id") or ""),
                    time_ms=int(r["time"]),
                    place_type=s.tags.get("place_type", ""),
                    place_kind=kind,
                    place=s.tags.get("place", ""),
                    area=s.tags.get("area", ""),
                    score=int(r.get("score") or 0),
                    pass_score=int(r.get("pass_score") or 0),
                    passed=bool(r.get("passed")),
                    labelled=bool(r.get("labelled")),
                    containers=_detail(str(r.get("container_detail") or "")),
                    guidance=bool(r.get("guidance")),
                    clean=bool(r.get("clean")),
                    records=bool(r.get("records")),
                    notes=str(r.get("notes") or ""),
                    photo=str(r.get("photo") or ""),
                    by=str(r.get("by") or ""),
                )
            )
    out.sort(key=lambda x: (x.time_ms, x.id))
    return out
