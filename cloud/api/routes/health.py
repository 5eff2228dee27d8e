"""Health routes: a resident's observations and their FHIR R4 export (health role only), and daily
hut aggregates (operators and health staff; no pseudonyms, no values)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from cloud import measurements as m
from cloud.api.deps import Health, State, bounded, require
from cloud.api.routes.waste import check_range
from cloud.auth import TokenRecord
from cloud.days import date_of, day_number, days_where, today
from cloud.health import fhir, report, ws365
from cloud.health.daily import ALL_TYPES
from cloud.health.triage import TIERS, Tier, triage
from cloud.influx import quote
from contract.models import ID_PATTERN, RESIDENT_PATTERN, VALUE_KEYS, HealthMeasurement

router = APIRouter(prefix="/api/v1/health", tags=["health"])

# Aggregates carry no pseudonym and no value: operators (dashboards) and health staff may read them.
HealthAggregates = Annotated[TokenRecord, Depends(require("operator", "admin", "health"))]
ResidentPath = Annotated[
    str, Path(pattern=RESIDENT_PATTERN, description="resident pseudonym r-<32 hex>")
]
Start = Annotated[dt.date, Query(description="first Shanghai day, YYYY-MM-DD")]
End = Annotated[dt.date, Query(description="last Shanghai day (inclusive), YYYY-MM-DD")]

# UCUM unit of every contract value key (the FHIR export's units)
UNITS: dict[str, str] = {
    "systolic_mmhg": fhir.SYSTOLIC.ucum or "",
    "diastolic_mmhg": fhir.DIASTOLIC.ucum or "",
    "mean_arterial_mmhg": fhir.MEAN_ARTERIAL.ucum or "",
    **{key: code.ucum or "" for key, code in fhir.SINGLE.items()},
}


class Observation(BaseModel):
    """One stored measurement of the resident, with UCUM units and the cloud's verdict."""

    site: str
    device: str
    seq: int
    ts: int
    time: dt.datetime
    type: str
    values: dict[str, float | str]
    units: dict[str, str]
    abnormal: bool
    flag: str
    tier: str | None  # None: stored before triage tiers existed


class ObservationsResponse(BaseModel):
    """Observations sorted by time, then device and seq."""

    resident: str
    start: dt.date
    end: dt.date
    observations: list[Observation]


def _stored(
    request: Request, state: State, resident: str, start: dt.date, end: dt.date
) -> list[Observation]:
    """A resident's measurements of the Shanghai days start..end, deduplicated on (device, seq).

    The count goes to the audit record (cloud/api/middleware.py); more than api_max_rows is a 422.
    """
    check_range(start, end)
    q = (
        f'SELECT * FROM {m.HEALTH_MEASUREMENT.name} WHERE "resident" = {quote(resident)} '
        f'AND {days_where(start, end)} GROUP BY "site", "device", "type"'
    )
    found: dict[tuple[str, int], Observation] = {}
    for s in state.influx.query(q, db=state.influx.health_db):
        required, optional = VALUE_KEYS.get(s.tags.get("type", ""), (frozenset(), frozenset()))
        for row in s.values:
            v = dict(zip(s.columns, row, strict=True))
            values = {k: v[k] for k in sorted(required | optional) if v.get(k) is not None}
            obs = Observation(
                site=s.tags["site"],
                device=s.tags["device"],
                seq=int(v["seq"]),
                ts=int(v["time"]),  # point time ts ms + (seq mod 1e6) ns, read at ms precision: ts
                time=dt.datetime.fromtimestamp(int(v["time"]) / 1000, fhir.SHANGHAI),
                type=s.tags["type"],
                values=values,
                units={k: UNITS[k] for k in values if k in UNITS},
                abnormal=bool(v["abnormal"]),
                flag=str(v["flag"]),
                tier=v.get("tier"),
            )
            found[(obs.device, obs.seq)] = obs
    bounded(len(found), state)
    request.state.audit_records = len(found)
    return sorted(found.values(), key=lambda o: (o.ts, o.device, o.seq))


@router.get("/residents/{resident}/observations", response_model=ObservationsResponse)
def resident_observations(
    request: Request, state: State, _: Health, resident: ResidentPath, start: Start, end: End
) -> ObservationsResponse:
    """A resident's stored measurements over a range of Shanghai days (end inclusive); audited."""
    return ObservationsResponse(
        resident=resident,
        start=start,
        end=end,
        observations=_stored(request, state, resident, start, end),
    )


@router.get(
    "/residents/{resident}/fhir",
    response_class=JSONResponse,
    responses={
        200: {"content": {"application/fhir+json": {}}, "description": "FHIR R4 collection Bundle"}
    },
)
def resident_fhir(
    request: Request, state: State, _: Health, resident: ResidentPath, start: Start, end: End
) -> JSONResponse:
    """The same measurements as a validated FHIR R4 Bundle of vital-signs Observations; audited."""
    stored = _stored(request, state, resident, start, end)
    doc = fhir.bundle(
        (
            HealthMeasurement.model_validate(
                {
                    "device": o.device,
                    "seq": o.seq,
                    "ts": o.ts,
                    "resident": resident,
                    "type": o.type,
                    "values": o.values,
                }
            )
            for o in stored
        ),
        devices=device_infos(state, {o.device for o in stored}),
    )
    return JSONResponse(doc, media_type="application/fhir+json")


def device_infos(state: State, devices: set[str]) -> dict[str, fhir.DeviceInfo]:
    """What the registry knows of these instruments (model, manufacturer, serial)."""
    out: dict[str, fhir.DeviceInfo] = {}
    for site in state.registry.sites:
        for d in site.devices:
            if d.id in devices:
                out[d.id] = fhir.DeviceInfo(d.model, d.manufacturer, d.serial)
    return out


ReportEnd = Annotated[
    dt.date | None, Query(description="last Shanghai day of the report (default: today)")
]
ReportMonths = Annotated[
    int, Query(ge=1, le=12, description="trend window: the last 30 x months days up to end")
]
PNG_EXTRA = "render"


def _tier(o: Observation) -> Tier:
    for t in TIERS:
        if o.tier == t:
            return t
    return triage(o.type, o.values).tier  # stored before tiers existed: the table's verdict


def _report(
    request: Request, state: State, resident: str, end: dt.date | None, months: int
) -> report.Report:
    last = end or today()
    first = last - dt.timedelta(days=30 * months - 1)
    stored = _stored(request, state, resident, first, last)
    readings = [
        report.Reading(
            ts=o.ts,
            type=o.type,
            values=o.values,
            tier=_tier(o),
            codes=tuple(c for c in o.flag.split(",") if c and c != "normal"),
        )
        for o in stored
    ]
    return report.build(resident, readings, first, last, dt.datetime.now(dt.UTC))


@router.get(
    "/residents/{resident}/report",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}, "description": "printable report"}},
)
def resident_report(
    request: Request,
    state: State,
    _: Health,
    resident: ResidentPath,
    end: ReportEnd = None,
    months: ReportMonths = 3,
) -> HTMLResponse:
    """The report the resident takes home (HTML, printable, Chinese with English labels): the
    latest measurements with their tier in plain words, the advice per tier, trends; audited."""
    page = report.html(_report(request, state, resident, end, months))
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@router.get(
    "/residents/{resident}/report.png",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "the report as a PNG page"},
        501: {"description": "the API was installed without matplotlib (extra [render])"},
    },
)
def resident_report_png(
    request: Request,
    state: State,
    _: Health,
    resident: ResidentPath,
    end: ReportEnd = None,
    months: ReportMonths = 3,
) -> Response:
    """The same report as one PNG page (needs matplotlib, the optional extra [render]); audited."""
    try:
        from cloud.health import report_png
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "matplotlib":
            raise
        raise HTTPException(
            501,
            detail=f"the PNG report needs matplotlib: install the API with the [{PNG_EXTRA}] extra",
        ) from None
    image = report_png.png(_report(request, state, resident, end, months))
    return Response(image, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get(
    "/residents/{resident}/ws365.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "WS 365 data elements, CSV"}},
)
def resident_ws365(
    request: Request, state: State, _: Health, resident: ResidentPath, start: Start, end: End
) -> Response:
    """A resident's measurements as WS 365 / WS 363 data elements (one CSV row per value, UTF-8
    with a BOM for spreadsheet programs), for the district's health-record system; audited."""
    stored = _stored(request, state, resident, start, end)
    text = ws365.csv_text(
        ws365.Row(
            resident,
            o.ts,
            o.type,
            o.device,
            o.values,
            _tier(o),
            staff_entered=o.type in fhir.STAFF_MEASURED_TYPES,
        )
        for o in stored
    )
    return Response(
        "\ufeff" + text,
        media_type="text/csv; charset=utf-8",
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="ws365-{resident}-{start}-{end}.csv"',
        },
    )


class HutDayRow(BaseModel):
    """One hut's Shanghai day: visits (distinct residents), measurements by type, abnormal rate.

    For operators, a figure from fewer than k distinct residents (or the cell that would give it
    back by subtraction) is null and flagged: `suppressed` for the whole-hut figures,
    `suppressed_types` for types. Health staff get exact figures (never suppressed)."""

    date: dt.date
    site: str
    visits: int | None
    measurements: int | None
    anonymous: int | None
    abnormal: int | None
    abnormal_rate: float | None
    by_type: dict[str, int | None]
    abnormal_by_type: dict[str, int | None]
    suppressed: bool = False
    suppressed_types: list[str] = []


class HealthDailyResponse(BaseModel):
    """Rows sorted by date, then site; k = the distinct-resident threshold of suppressed cells
    (None: exact figures, health role)."""

    k: int | None
    rows: list[HutDayRow]


@router.get("/daily", response_model=HealthDailyResponse)
def health_daily(
    state: State,
    token: HealthAggregates,
    start: Start,
    end: End,
    site: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
) -> HealthDailyResponse:
    """Daily aggregates per hut as the aggregator last computed them: exact for the health role,
    small cells suppressed for operators (the same copy Grafana reads)."""
    check_range(start, end)
    exact = token.role == "health"
    where = [days_where(start, end)]
    if site is not None:
        where.append(f'"site" = {quote(site)}')
    q = (
        f'SELECT "visits", "measurements", "anonymous", "abnormal", "suppressed" FROM {m.HEALTH_DAILY.name} '
        f'WHERE {" AND ".join(where)} GROUP BY "site", "type"'
    )
    rows: dict[tuple[dt.date, str], dict[str, Any]] = {}
    for s in state.influx.query(q, db=state.influx.health_db if exact else None):
        for t, visits, n, anonymous, abnormal, suppressed in s.values:
            key = (date_of(day_number(int(t))), s.tags["site"])
            row = rows.setdefault(
                key, {"by_type": {}, "abnormal_by_type": {}, "suppressed_types": []}
            )
            hidden = bool(suppressed) or n is None
            if s.tags["type"] == ALL_TYPES:
                row["present"] = True
                if hidden:
                    row.update(
                        visits=None,
                        measurements=None,
                        anonymous=None,
                        abnormal=None,
                        suppressed=True,
                    )
                else:
                    row.update(
                        visits=int(visits or 0),
                        measurements=int(n),
                        anonymous=int(anonymous or 0),
                        abnormal=int(abnormal),
                    )
            elif hidden:
                row["by_type"][s.tags["type"]] = row["abnormal_by_type"][s.tags["type"]] = None
                row["suppressed_types"].append(s.tags["type"])
            else:
                row["by_type"][s.tags["type"]] = int(n)
                row["abnormal_by_type"][s.tags["type"]] = int(abnormal)
    out = []
    for (date, site_id), row in sorted(rows.items()):
        if "present" not in row:
            continue
        n, bad = row["measurements"], row["abnormal"]
        out.append(
            HutDayRow(
                date=date,
                site=site_id,
                visits=row["visits"],
                measurements=n,
                anonymous=row["anonymous"],
                abnormal=bad,
                abnormal_rate=None if n is None else (bad / n if n else 0.0),
                by_type=dict(sorted(row["by_type"].items())),
                abnormal_by_type=dict(sorted(row["abnormal_by_type"].items())),
                suppressed=row.get("suppressed", False),
                suppressed_types=sorted(row["suppressed_types"]),
            )
        )
    return HealthDailyResponse(k=None if exact else state.settings.health_min_residents, rows=out)
