"""Device status, read side: each gateway's latest status (or Last Will) and its devices, from InfluxDB.

The ingestion workers write every status message the gateways publish (retained status on
connect and on change, the broker's Last Will when a gateway vanishes) as `gateway_status` and
`device_status` points stamped with the time they were received. This module reads the latest
of each, so any number of API processes agree without sharing memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from cloud import measurements as m
from cloud.influx import InfluxClient, Series, quote
from cloud.registry import Registry

GatewayState = Literal["online", "offline", "unknown"]


@dataclass(frozen=True)
class DeviceReport:
    """The last report about one device as stored by the cloud (read side; the wire model is
    `contract.DeviceStatus`, from its gateway's status message)."""

    device: str
    ok: bool | None
    fill_pct: float | None
    reported_ms: int | None


@dataclass
class GatewayStatus:
    """What the cloud last heard from one gateway."""

    site: str
    kind: str
    area: str
    state: GatewayState
    last_seen_ms: int | None  # when it last reported itself online
    changed_ms: int | None  # when the latest status (online, or the Last Will) arrived
    buffered: int | None
    devices: list[DeviceReport] = field(default_factory=list)


def _latest_by(series: list[Series], tag: str) -> dict[str, dict[str, Any]]:
    """The first row of each series by its `tag`: column -> value as InfluxDB's JSON gives it."""
    out: dict[str, dict[str, Any]] = {}
    for s in series:
        if s.values:
            out[s.tags[tag]] = dict(zip(s.columns, s.values[0], strict=True))
    return out


def read_statuses(
    influx: InfluxClient, registry: Registry, site: str | None = None, area: str | None = None
) -> list[GatewayStatus]:
    """Every active gateway of the registry (optionally one site or area) with its latest status."""
    where = f' WHERE "site" = {quote(site)}' if site else ""
    latest = _latest_by(
        influx.query(
            f'SELECT "online", "buffered" FROM {m.GATEWAY_STATUS.name}{where} GROUP BY "site" ORDER BY time DESC LIMIT 1'
        ),
        "site",
    )
    online_where = f"{where} AND" if where else " WHERE"
    seen = _latest_by(
        influx.query(
            f'SELECT "online" FROM {m.GATEWAY_STATUS.name}{online_where} "online" = true '
            'GROUP BY "site" ORDER BY time DESC LIMIT 1'
        ),
        "site",
    )
    devices = _latest_by(
        influx.query(
            f'SELECT "ok", "fill_pct" FROM {m.DEVICE_STATUS.name}{where} GROUP BY "device" ORDER BY time DESC LIMIT 1'
        ),
        "device",
    )
    out = []
    for s in registry.sites:
        if s.retired or (site and s.id != site) or (area and s.area != area):
            continue
        last = latest.get(s.id)
        state: GatewayState = (
            "unknown" if last is None else ("online" if last["online"] else "offline")
        )
        buffered = last.get("buffered") if last else None
        dev = []
        for d in s.devices:
            if d.retired:
                continue
            rep = devices.get(d.id)
            dev.append(
                DeviceReport(
                    d.id,
                    None if rep is None or rep.get("ok") is None else bool(rep["ok"]),
                    None if rep is None or rep.get("fill_pct") is None else float(rep["fill_pct"]),
                    None if rep is None else int(rep["time"]),
                )
            )
        out.append(
            GatewayStatus(
                site=s.id,
                kind=s.kind,
                area=s.area,
                state=state,
                last_seen_ms=int(seen[s.id]["time"]) if s.id in seen else None,
                changed_ms=int(last["time"]) if last else None,
                buffered=int(buffered) if buffered is not None else None,
                devices=dev,
            )
        )
    return out
