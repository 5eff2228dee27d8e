"""Line-protocol encoding of health measurements for the `health_measurement` InfluxDB measurement."""

from __future__ import annotations

from collections.abc import Iterable

from cloud.health.flags import Flag, flag
from cloud.lineproto import line, point_time_ns
from cloud.measurements import HEALTH_MEASUREMENT
from contract.models import HealthMeasurement


def health_fields(
    m: HealthMeasurement, verdict: Flag
) -> dict[str, float | int | bool | str | None]:
    """Fields of one point: seq, resident, abnormal, flag, tier, then one float per value (meal as a string)."""
    fields: dict[str, float | int | bool | str | None] = {
        "seq": m.seq,
        "resident": m.resident,
        "abnormal": verdict.abnormal,
        "flag": verdict.text,
        "tier": verdict.tier,
    }
    for key, value in sorted(m.values.items()):
        fields[key] = value if isinstance(value, str) else float(value)
    return fields


def health_line(site: str, m: HealthMeasurement, verdict: Flag | None = None) -> str:
    """One line of line protocol; point time makes (device, seq) the identity, as for waste readings."""
    verdict = verdict if verdict is not None else flag(m.type.value, m.values)
    tags = {"site": site, "device": m.device, "type": m.type.value}
    return line(
        HEALTH_MEASUREMENT.name, tags, health_fields(m, verdict), point_time_ns(m.ts, m.seq)
    )


def health_lines(site: str, measurements: Iterable[HealthMeasurement]) -> list[str]:
    """Line protocol for a batch of (already screened, plausible) health measurements of one hut."""
    return [health_line(site, m) for m in measurements]
