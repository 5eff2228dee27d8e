"""A seeded set of demo inspections (`gumei inspections seed`; `gumei run` may call `seed`): every
registry area, a few waste stations and every unit and public place of the places file, checked
once or twice over the last days, built through the same rules as an inspector's records."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence

from cloud.days import SHANGHAI
from cloud.influx import InfluxClient
from cloud.inspections.places import PlaceEntry
from cloud.inspections.record import (
    CATEGORIES,
    Container,
    Inspection,
    InspectionIn,
    Place,
    build,
)
from cloud.inspections.store import inspection_line
from cloud.registry import Registry


def demo_records(
    registry: Registry,
    places: Sequence[PlaceEntry],
    now: dt.datetime,
    *,
    days: int = 28,
    seed: int = 15,
    pass_score: int = 90,
    good_share: float = 0.85,
) -> list[Inspection]:
    """Deterministic inspections in the `days` Shanghai days before today (ids, times and verdicts
    from the seed: a re-run on the same day writes the same points again)."""
    rng = random.Random(seed)
    local = now.astimezone(SHANGHAI)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    targets: list[Place] = [Place("area", a.id, a.id) for a in registry.areas]
    stations = [s for s in registry.sites if s.kind == "waste" and not s.retired]
    targets += [Place("site", s.id, s.area) for s in stations[:: max(1, len(stations) // 10)]]
    targets += [Place("unit" if p.type == "unit" else "public_place", p.id, p.area) for p in places]
    out = []
    for place in targets:
        for _ in range(rng.choice((1, 1, 2))):
            good = rng.random() < good_share
            pure = [good or rng.random() < 0.5 for _ in CATEGORIES]
            if not good and all(pure):
                pure[0] = False
            when = (
                midnight
                - dt.timedelta(days=rng.randint(1, days))
                + dt.timedelta(hours=rng.randint(7, 18), minutes=rng.randrange(60))
            )
            body = InspectionIn(
                time=when,
                place_kind=place.kind,
                place=place.id,
                labelled=True,
                containers=[
                    Container.model_validate({"category": c, "pure": p})
                    for c, p in zip(CATEGORIES, pure, strict=True)
                ],
                guidance=good or rng.random() < 0.7,
                clean=True,
                records=True,
                score=rng.randint(pass_score, 99) if good else rng.randint(70, 95),
            )
            out.append(
                build(
                    body,
                    place,
                    pass_score=pass_score,
                    notes_limit=500,
                    max_age_days=days + 1,
                    photo="",
                    by="demo seed",
                    now=now,
                    inspection_id=f"i-{rng.getrandbits(80):020x}",
                )
            )
    return out


def seed(influx: InfluxClient, records: Sequence[Inspection]) -> int:
    """Write the records in one request."""
    if records:
        body = ("\n".join(inspection_line(r) for r in records) + "\n").encode()
        influx.write_lines(body, db=influx.records_db)
    return len(records)
