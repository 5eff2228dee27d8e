"""Plausibility checks and the stored verdict of health measurements, as pure functions.

The thresholds live in ONE table, `cloud/health/triage.py` (`RULES`, printed with sources in
docs/health.md); this module only screens for implausible values and turns a triage into the
stored verdict. Kiosk glucose is capillary and self-measured: a glucose tier means "see the family
doctor for screening", never a diagnosis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cloud.health.triage import Tier, triage

Values = Mapping[str, float | str]

# Physiologically or instrumentally plausible ranges; values outside are quarantined, not flagged.
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "systolic_mmhg": (40.0, 300.0),
    "diastolic_mmhg": (20.0, 200.0),
    "mean_arterial_mmhg": (25.0, 250.0),
    "pulse_bpm": (20.0, 250.0),
    "glucose_mmol_l": (0.5, 40.0),
    "weight_kg": (2.0, 350.0),
    "height_cm": (40.0, 250.0),
    "bmi": (8.0, 80.0),
    "body_fat_pct": (2.0, 75.0),
    "temperature_c": (30.0, 44.0),
    "spo2_pct": (50.0, 100.0),
    "waist_cm": (40.0, 200.0),
    "hip_cm": (50.0, 200.0),
}

SEVERITY: dict[str, str] = {
    "normal": "normal",
    "recheck": "abnormal",
    "refer": "abnormal",
    "urgent": "severe",
}  # tier -> the FHIR interpretation's severity


@dataclass(frozen=True, slots=True)
class Flag:
    """The stored verdict on one measurement: its triage tier and the codes of the rows at that tier."""

    codes: tuple[str, ...]
    tier: Tier = "normal"

    @property
    def abnormal(self) -> bool:
        """True when the tier is above normal."""
        return self.tier != "normal"

    @property
    def severity(self) -> str:
        """normal | abnormal (recheck, refer) | severe (urgent)."""
        return SEVERITY[self.tier]

    @property
    def text(self) -> str:
        """Comma-joined codes, or "normal" (the InfluxDB `flag` field)."""
        return ",".join(self.codes) or "normal"


NORMAL = Flag(())


def implausible(values: Values) -> str | None:
    """Quarantine reason when a value cannot be a real reading (e.g. systolic 20 or 400), else None."""
    for key, value in values.items():
        if key in PLAUSIBLE and not isinstance(value, str):
            low, high = PLAUSIBLE[key]
            if not low <= value <= high:
                return f"{key} {value:g} outside plausible range {low:g}..{high:g}"
    sys_, dia = values.get("systolic_mmhg"), values.get("diastolic_mmhg")
    if isinstance(sys_, float | int) and isinstance(dia, float | int) and dia >= sys_:
        return f"diastolic {dia:g} not below systolic {sys_:g}"
    return None


def flag(type_: str, values: Values) -> Flag:
    """The verdict of one (plausible) measurement, from the triage table."""
    t = triage(type_, values)
    return Flag(t.codes, t.tier)


def screen(type_: str, values: Values) -> tuple[Flag | None, str | None]:
    """(flag, None) for a plausible measurement, (None, quarantine reason) for an implausible one."""
    reason = implausible(values)
    return (None, reason) if reason else (flag(type_, values), None)
