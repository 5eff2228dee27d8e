"""Waste routes: daily tonnage per (day, site, category), as CONTRACT.md shapes it."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from cloud import measurements as m
from cloud.days import date_of, day_number, day_start_ms, number_of
from cloud.api.deps import Operator, State
from contract.models import ID_PATTERN, Category

router = APIRouter(prefix="/api/v1/waste", tags=["waste"])
MAX_DAYS = 3660


class DailyRow(BaseModel):
    """One (date, site, category) with at least one reading."""

    date: dt.date
    site: str
    area: str
    category: Category
    tonnes: float
    deposits: int


class DailyResponse(BaseModel):
    """Rows sorted by date, site, category."""

    rows: list[DailyRow]


def check_range(start: dt.date, end: dt.date) -> None:
    """422 when end is before start or the range is unreasonably long."""
    if end < start:
        raise HTTPException(422, detail=f"end ({end}) is before start ({start})")
    if (end - start).days + 1 > MAX_DAYS:
        raise HTTPException(422, detail=f"at most {MAX_DAYS} days per request")


@router.get("/daily", response_model=DailyResponse)
def daily(
    state: State,
    _: Operator,
    start: Annotated[dt.date, Query(description="first Shanghai day, YYYY-MM-DD")],
    end: Annotated[dt.date, Query(description="last Shanghai day (inclusive), YYYY-MM-DD")],
    site: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    area: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    category: Category | None = None,
) -> DailyResponse:
    """Daily tonnage exact to the gram, and deposit counts."""
    check_range(start, end)
    lo = day_start_ms(number_of(start))
    hi = day_start_ms(number_of(end) + 1)
    where = [f"time >= {lo}ms", f"time < {hi}ms"]
    for tag, value in (("site", site), ("area", area), ("category", category.value if category else None)):
        if value is not None:
            where.append(f"\"{tag}\" = '{value}'")
    q = (
        f"SELECT net_g, deposits FROM {m.WASTE_DAILY.name} WHERE {' AND '.join(where)} "
        'GROUP BY "site", "area", "category"'
    )
    rows = []
    for s in state.influx.query(q):
        for t, net_g, deposits in s.values:
            rows.append(
                DailyRow(
                    date=date_of(day_number(int(t))),
                    site=s.tags["site"],
                    area=s.tags["area"],
                    category=Category(s.tags["category"]),
                    tonnes=int(net_g) / 1_000_000,
                    deposits=int(deposits),
                )
            )
    rows.sort(key=lambda r: (r.date, r.site, r.category.value))
    return DailyResponse(rows=rows)
