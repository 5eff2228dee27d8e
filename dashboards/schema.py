"""The InfluxDB names panels may use (all from cloud.measurements and the contract), and the plan's targets."""

from __future__ import annotations

from cloud import measurements as m
from contract.models import VALUE_KEYS, Category

WASTE_TARGETS = m.WASTE_TARGETS

# The plan's yearly targets (DESIGN.md).
RECYCLABLE_TARGET_T = 80.0
DRY_CHANGE_TARGET_PCT = -20.0
EFFECTIVE_TARGET_PCT = 85.0

CATEGORIES: tuple[str, ...] = tuple(c.value for c in Category)
CATEGORY_LABELS = {
    "dry": "干垃圾 Dry",
    "wet": "湿垃圾 Wet",
    "recyclable": "可回收物 Recyclable",
    "hazardous": "有害垃圾 Hazardous",
}
HEALTH_VALUE_FIELDS: tuple[str, ...] = tuple(
    sorted(
        {
            k
            for required, optional in VALUE_KEYS.values()
            for k in required | optional
            if k != "meal"
        }
    )
)


def catalogue() -> dict[str, m.Measurement]:
    """Every measurement a panel may read, by name, with health value fields spelled out."""
    out = {x.name: x for x in m.ALL}
    health = out[m.HEALTH_MEASUREMENT.name]
    out[health.name] = m.Measurement(
        health.name, health.tags, {**health.fields, **{f: "float" for f in HEALTH_VALUE_FIELDS}}
    )
    return out
