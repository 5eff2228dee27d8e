"""Waste routes: daily tonnage per (day, site, category) as docs/contract.md shapes it, area and district
roll-ups, and the plan's targets per day."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from cloud import measurements as m
from cloud.api.deps import Operator, State, bounded
from cloud.days import date_of, day_number, days_where
from cloud.influx import quote
from contract.models import ID_PATTERN, Category, Subcategory

SUBCATEGORIES = tuple(x.value for x in Subcategory)

router = APIRouter(prefix="/api/v1/waste", tags=["waste"])
MAX_DAYS = 3660


class DailyRow(BaseModel):
    """One (date, site, category) with at least one reading (group=site, the docs/contract.md shape);
    with group=area or district, one (date[, area], category) where category may be "all",
    plus the distinct residents that deposited."""

    date: dt.date
    site: str | None = None
    area: str | None = None
    category: str
    tonnes: float
    deposits: int
    residents: int | None = None


class DailyResponse(BaseModel):
    """Rows sorted by date, site, category."""

    rows: list[DailyRow]


FIRST_DAY = dt.date(1970, 1, 1)  # contract timestamps are epoch ms >= 0
LAST_DAY = dt.date(2199, 12, 31)  # InfluxDB stores times up to 2262


def check_day(day: dt.date, name: str = "date") -> None:
    """422 for a day no reading can have (before 1970 or after 2199)."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise HTTPException(
            422, detail=f"{name} ({day}) must be between {FIRST_DAY} and {LAST_DAY}"
        )


def check_range(start: dt.date, end: dt.date) -> None:
    """422 when a day is out of bounds, end is before start, or the range is unreasonably long."""
    check_day(start, "start")
    check_day(end, "end")
    if end < start:
        raise HTTPException(422, detail=f"end ({end}) is before start ({start})")
    if (end - start).days + 1 > MAX_DAYS:
        raise HTTPException(422, detail=f"at most {MAX_DAYS} days per request")


@router.get("/daily", response_model=DailyResponse, response_model_exclude_none=True)
def daily(
    state: State,
    _: Operator,
    start: Annotated[dt.date, Query(description="first Shanghai day, YYYY-MM-DD")],
    end: Annotated[dt.date, Query(description="last Shanghai day (inclusive), YYYY-MM-DD")],
    site: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    area: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    category: Category | None = None,
    group: Annotated[
        Literal["site", "area", "district"],
        Query(description="rows per site (default), area or the whole district"),
    ] = "site",
) -> DailyResponse:
    """Daily tonnage exact to the gram, and deposit counts."""
    check_range(start, end)
    when = days_where(start, end)
    if group != "site":
        return _grouped(state, when, group, site, area, category)
    where = [when]
    for tag, value in (
        ("site", site),
        ("area", area),
        ("category", category.value if category else None),
    ):
        if value is not None:
            where.append(f'"{tag}" = {quote(value)}')
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
                    category=Category(s.tags["category"]).value,
                    tonnes=int(net_g) / 1_000_000,
                    deposits=int(deposits),
                )
            )
    bounded(len(rows), state)
    rows.sort(key=lambda r: (r.date, r.site or "", r.category))
    return DailyResponse(rows=rows)


def _grouped(
    state: State,
    when: str,
    group: str,
    site: str | None,
    area: str | None,
    category: Category | None,
) -> DailyResponse:
    """Area or district rows from waste_area_daily (category "all" rows carry every category)."""
    if site is not None:
        raise HTTPException(422, detail=f"site= cannot be combined with group={group}")
    if group == "district" and area is not None:
        raise HTTPException(422, detail="area= cannot be combined with group=district")
    where = [when]
    where.append(
        f'"area" = {quote(area)}'
        if area
        else ("\"area\" = 'all'" if group == "district" else "\"area\" != 'all'")
    )
    if category is not None:
        where.append(f'"category" = {quote(category.value)}')
    q = (
        f"SELECT net_g, deposits, residents FROM {m.WASTE_AREA_DAILY.name} WHERE {' AND '.join(where)} "
        'GROUP BY "area", "category"'
    )
    rows = []
    for s in state.influx.query(q):
        for t, net_g, deposits, residents in s.values:
            rows.append(
                DailyRow(
                    date=date_of(day_number(int(t))),
                    area=s.tags["area"] if group == "area" else None,
                    category=s.tags["category"],
                    tonnes=int(net_g) / 1_000_000,
                    deposits=int(deposits),
                    residents=int(residents or 0),
                )
            )
    bounded(len(rows), state)
    order = {c: i for i, c in enumerate([*(c.value for c in Category), "all"])}
    rows.sort(key=lambda r: (r.date, r.area or "", order.get(r.category, 99)))
    return DailyResponse(rows=rows)


class Recyclables(BaseModel):
    """Recyclables collected that day against the goal (tonnes/day). `source` says where `tonnes`
    comes from: weighbridge tickets (两网融合 recyclables volume, each load once at its first
    weighbridge) on a day with tickets, else the station scales (docs/aggregation.md)."""

    tonnes: float
    goal_tonnes: float
    met: bool
    source: Literal["weighbridge", "station_scales"] = "station_scales"
    station_scales_tonnes: float | None = None
    weighbridge_g: int | None = None
    subcategories_tonnes: dict[str, float] | None = None
    gap_tonnes: float | None = None  # weighbridge − station scales


class DryWaste(BaseModel):
    """Dry waste per day over the window against the reference; met when change_pct <= goal.
    `source`: weighbridge (干垃圾处置量, dry disposal tickets) or the station scales."""

    tonnes_per_day: float
    window_days: int
    reference: Literal["year_earlier", "baseline"] | None
    reference_tonnes_per_day: float | None
    change_pct: float | None
    goal_change_pct: float
    met: bool | None
    source: Literal["weighbridge", "station_scales"] = "station_scales"
    disposal_g: int | None = None  # that day's dry disposal on the weighbridges, exact grams
    station_scales_tonnes_per_day: float | None = None
    station_scales_change_pct: float | None = None


class Sorting(BaseModel):
    """Share of areas whose day met the sorting standard (`source` station_scales: the
    weight-based proxy; inspections: the 实效达标率, once wired in)."""

    areas_meeting: int
    areas: int
    pct: float
    goal_pct: float
    met: bool
    areas_below_standard: list[str]
    source: Literal["station_scales", "inspections"] = "station_scales"


class TargetsResponse(BaseModel):
    """The plan's three targets for one Shanghai day."""

    date: dt.date
    recyclables: Recyclables
    dry_waste: DryWaste
    sorting: Sorting


@router.get("/targets", response_model=TargetsResponse)
def targets(
    state: State,
    _: Operator,
    date: Annotated[dt.date, Query(description="Shanghai day, YYYY-MM-DD")],
) -> TargetsResponse:
    """The plan's targets for one day, as the aggregator last computed them."""
    check_day(date)
    when = days_where(date, date)
    found = state.influx.query(f"SELECT * FROM {m.WASTE_TARGETS.name} WHERE {when}")
    if not found or not found[0].values:
        raise HTTPException(
            404, detail=f"no targets computed for {date} (no waste data that day yet)"
        )
    v = dict(zip(found[0].columns, found[0].values[-1], strict=True))
    below = state.influx.query(
        f"SELECT meets_standard FROM {m.WASTE_AREA_DAILY.name} WHERE \"category\" = 'all' AND \"area\" != 'all' "
        f'AND {when} GROUP BY "area"'
    )
    met_areas = {s.tags["area"] for s in below if s.values and s.values[-1][1]}
    waste_areas = sorted(
        {x.area for x in state.registry.sites if x.kind == "waste" and not x.retired}
    )
    return TargetsResponse(
        date=date,
        recyclables=_recyclables(v),
        dry_waste=DryWaste(
            tonnes_per_day=v["dry_tonnes_per_day_30d"],
            window_days=state.settings.targets.dry_window_days,
            reference=v.get("dry_reference"),
            reference_tonnes_per_day=v.get("dry_reference_tonnes_per_day"),
            change_pct=v.get("dry_change_pct"),
            goal_change_pct=v["dry_goal_change_pct"],
            met=v.get("dry_met"),
            source=v.get("dry_source") or "station_scales",
            disposal_g=_int_or_none(v.get("dry_disposal_g")),
            station_scales_tonnes_per_day=v.get("dry_scale_tonnes_per_day_30d"),
            station_scales_change_pct=v.get("dry_scale_change_pct"),
        ),
        sorting=Sorting(
            areas_meeting=int(v["sorting_areas_meeting"]),
            areas=int(v["sorting_areas"]),
            pct=v["sorting_pct"],
            goal_pct=v["sorting_goal_pct"],
            met=v["sorting_met"],
            areas_below_standard=[a for a in waste_areas if a not in met_areas],
            source=v.get("sorting_source") or "station_scales",
        ),
    )


def _int_or_none(x: object) -> int | None:
    return None if x is None else int(x)  # type: ignore[call-overload]


def _recyclables(v: dict[str, Any]) -> Recyclables:
    """The recyclables figure of a stored waste_targets point (points written before issue 15
    have no source fields: station scales)."""
    source = v.get("recyclable_source") or "station_scales"
    scale = v.get("recyclable_scale_tonnes")
    subs = {
        k: float(v[f"recyclable_{k}_tonnes"])
        for k in SUBCATEGORIES
        if v.get(f"recyclable_{k}_tonnes") is not None
    }
    return Recyclables(
        tonnes=v["recyclable_tonnes"],
        goal_tonnes=v["recyclable_goal_tonnes"],
        met=v["recyclable_met"],
        source=source,
        station_scales_tonnes=scale if scale is not None else v["recyclable_tonnes"],
        weighbridge_g=_int_or_none(v.get("recyclable_g")),
        subcategories_tonnes=subs or None,
        gap_tonnes=(
            round(v["recyclable_tonnes"] - scale, 6)
            if source == "weighbridge" and scale is not None
            else None
        ),
    )


class GapRow(BaseModel):
    """Station scales vs weighbridge for one (date, area, category): grams, tonnes, and the
    difference weighbridge − scales (diff_pct of the scale figure; null where the scales weighed
    nothing). area "all" = district, category "all" = every category."""

    date: dt.date
    area: str
    category: str
    scale_g: int
    weighbridge_g: int
    diff_g: int
    scale_tonnes: float
    weighbridge_tonnes: float
    diff_tonnes: float
    diff_pct: float | None


class ReconciliationResponse(BaseModel):
    """Rows sorted by date, area, category."""

    rows: list[GapRow]


AREA_OR_ALL = r"^(all|[A-Za-z0-9_-]{1,64})$"


@router.get("/reconciliation", response_model=ReconciliationResponse)
def reconciliation(
    state: State,
    _: Operator,
    start: Annotated[dt.date, Query(description="first Shanghai day, YYYY-MM-DD")],
    end: Annotated[dt.date, Query(description="last Shanghai day (inclusive), YYYY-MM-DD")],
    area: Annotated[str | None, Query(pattern=AREA_OR_ALL, description="an area or all")] = None,
    category: Annotated[
        Literal["dry", "wet", "recyclable", "hazardous", "all"] | None, Query()
    ] = None,
) -> ReconciliationResponse:
    """Station-scale tonnage against weighbridge tonnage of the same source area, per day, area
    and category, as the aggregator last computed it (docs/aggregation.md, reconciliation)."""
    check_range(start, end)
    where = [days_where(start, end)]
    if area is not None:
        where.append(f'"area" = {quote(area)}')
    if category is not None:
        where.append(f'"category" = {quote(category)}')
    q = (
        "SELECT scale_g, weighbridge_g, diff_g, diff_pct FROM "
        f'{m.WASTE_RECONCILIATION.name} WHERE {" AND ".join(where)} GROUP BY "area", "category"'
    )
    rows = []
    for s in state.influx.query(q):
        for t, sg, wg, dg, pct in s.values:
            rows.append(
                GapRow(
                    date=date_of(day_number(int(t))),
                    area=s.tags["area"],
                    category=s.tags["category"],
                    scale_g=int(sg),
                    weighbridge_g=int(wg),
                    diff_g=int(dg),
                    scale_tonnes=int(sg) / 1_000_000,
                    weighbridge_tonnes=int(wg) / 1_000_000,
                    diff_tonnes=int(dg) / 1_000_000,
                    diff_pct=pct,
                )
            )
        bounded(len(rows), state)
    order = {c: i for i, c in enumerate([*(c.value for c in Category), "all"])}
    rows.sort(key=lambda r: (r.date, r.area == "all", r.area, order.get(r.category, 99)))
    return ReconciliationResponse(rows=rows)


class SortingRow(BaseModel):
    """The weight-based sorting standard against the inspection result for one (date, area):
    scale_meets is false where the area has no row that day (scale_data false); inspection_passed
    and inspected_at are null where the area had no inspection of place kind "area" in the window."""

    date: dt.date
    area: str
    scale_data: bool
    scale_meets: bool
    inspected: bool
    inspection_passed: bool | None
    inspected_at: dt.datetime | None
    disagree: bool
    status: Literal["agree", "disagree", "not_inspected"]


class SortingComparisonResponse(BaseModel):
    """Rows sorted by date, area."""

    rows: list[SortingRow]


@router.get("/sorting-comparison", response_model=SortingComparisonResponse)
def sorting_comparison(
    state: State,
    _: Operator,
    start: Annotated[dt.date, Query(description="first Shanghai day, YYYY-MM-DD")],
    end: Annotated[dt.date, Query(description="last Shanghai day (inclusive), YYYY-MM-DD")],
    area: Annotated[str | None, Query(pattern=ID_PATTERN, description="one area")] = None,
    disagree: Annotated[bool | None, Query(description="only rows that (dis)agree")] = None,
) -> SortingComparisonResponse:
    """Per day and area, whether the area's day meets the weight-based sorting standard beside
    its latest inspection's 达标, as the aggregator last computed it (docs/aggregation.md)."""
    check_range(start, end)
    where = [days_where(start, end)]
    if area is not None:
        where.append(f'"area" = {quote(area)}')
    if disagree is not None:
        where.append(f'"disagree" = {str(disagree).lower()}')
    q = (
        "SELECT scale_data, scale_meets, inspected, inspection_passed, inspection_ms, disagree, "
        f'status FROM {m.WASTE_SORTING_COMPARISON.name} WHERE {" AND ".join(where)} GROUP BY "area"'
    )
    rows = []
    for s in state.influx.query(q):
        for t, data, meets, inspected, passed, at_ms, dis, status in s.values:
            rows.append(
                SortingRow(
                    date=date_of(day_number(int(t))),
                    area=s.tags["area"],
                    scale_data=bool(data),
                    scale_meets=bool(meets),
                    inspected=bool(inspected),
                    inspection_passed=None if passed is None else bool(passed),
                    inspected_at=(
                        None
                        if at_ms is None
                        else dt.datetime.fromtimestamp(int(at_ms) / 1000, dt.UTC)
                    ),
                    disagree=bool(dis),
                    status=status,
                )
            )
        bounded(len(rows), state)
    rows.sort(key=lambda r: (r.date, r.area))
    return SortingComparisonResponse(rows=rows)
