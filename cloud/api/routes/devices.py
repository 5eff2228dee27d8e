"""Device routes: which gateways are online, when each was last seen, and how full the bins are."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from cloud.api.deps import Operator, State, bounded
from cloud.status import read_statuses
from contract.models import ID_PATTERN

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])


def _at(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


class DeviceOut(BaseModel):
    """One scale or instrument, as its gateway last reported it."""

    device: str
    ok: bool | None
    fill_pct: float | None
    reported_at: dt.datetime | None


class GatewayOut(BaseModel):
    """One site's gateway."""

    site: str
    kind: str
    area: str
    state: Literal["online", "offline", "unknown"]
    last_seen: dt.datetime | None
    state_since: dt.datetime | None
    buffered: int | None
    devices: list[DeviceOut]


class DevicesResponse(BaseModel):
    """Gateways sorted by site id, with counts by state."""

    online: int
    offline: int
    unknown: int
    gateways: list[GatewayOut]


@router.get("", response_model=DevicesResponse)
def devices(
    state: State,
    _: Operator,
    site: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    area: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    status: Literal["online", "offline", "unknown"] | None = None,
) -> DevicesResponse:
    """Every active gateway with online/offline (Last Will), last seen, buffered count and fill levels."""
    rows = read_statuses(state.influx, state.registry, site=site, area=area)
    counts = {"online": 0, "offline": 0, "unknown": 0}
    for g in rows:
        counts[g.state] += 1
    out = [
        GatewayOut(
            site=g.site,
            kind=g.kind,
            area=g.area,
            state=g.state,
            last_seen=_at(g.last_seen_ms),
            state_since=_at(g.changed_ms),
            buffered=g.buffered,
            devices=[
                DeviceOut(
                    device=d.device, ok=d.ok, fill_pct=d.fill_pct, reported_at=_at(d.reported_ms)
                )
                for d in g.devices
            ],
        )
        for g in sorted(rows, key=lambda g: g.site)
        if status is None or g.state == status
    ]
    bounded(len(out), state)  # rows are gateways (each with its few registered devices)
    return DevicesResponse(gateways=out, **counts)
