"""Abnormal-value flags and plausibility checks for health measurements, as pure functions.

Thresholds and their sources are listed in docs/health.md. Kiosk glucose is capillary and
self-measured: a glucose flag means "refer for screening", never a diagnosis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

Values = Mapping[str, float | str]

# Chinese Guidelines for the Prevention and Treatment of Hypertension (2018 rev.; national standard 140/90).
HYPERTENSION = (140.0, 90.0)
SEVERE_HYPERTENSION = (180.0, 110.0)  # grade 3 hypertension
# WHO 2006 / ADA Standards of Care: fasting plasma glucose >= 7.0 mmol/L, random >= 11.1 mmol/L.
FASTING_GLUCOSE_HIGH = 7.0
RANDOM_GLUCOSE_HIGH = 11.1
GLUCOSE_LOW = 3.9  # ADA level 1 hypoglycaemia (< 70 mg/dL)
SPO2_LOW = 94.0  # BTS oxygen guideline target range 94-98 %
FEVER_C = 37.3  # Chinese clinical practice: axillary >= 37.3 degC is fever
BMI_UNDERWEIGHT, BMI_OBESE = 18.5, 28.0  # WS/T 428-2013 Chinese adult criteria

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
}

SEVERITY = {"normal": 0, "abnormal": 1, "severe": 2}


@dataclass(frozen=True, slots=True)
class Flag:
    """The verdict on one measurement: codes of what is abnormal, and the worst severity."""

    codes: tuple[str, ...]
    severity: str  # "normal" | "abnormal" | "severe"

    @property
    def abnormal(self) -> bool:
        """True when anything is outside the normal range."""
        return bool(self.codes)

    @property
    def text(self) -> str:
        """Comma-joined codes, or "normal" (the InfluxDB `flag` field)."""
        return ",".join(self.codes) or "normal"


NORMAL = Flag((), "normal")


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


def blood_pressure_flags(systolic: float, diastolic: float) -> list[tuple[str, str]]:
    """Hypertension flags: grade by the worse of systolic and diastolic."""
    if systolic >= SEVERE_HYPERTENSION[0] or diastolic >= SEVERE_HYPERTENSION[1]:
        return [("severe_hypertension", "severe")]
    if systolic >= HYPERTENSION[0] or diastolic >= HYPERTENSION[1]:
        return [("hypertensive", "abnormal")]
    return []


def glucose_flags(mmol_l: float, meal: str | None) -> list[tuple[str, str]]:
    """Screening flags: fasting >= 7.0, otherwise (post-meal, random, unknown) >= 11.1; low < 3.9."""
    if mmol_l < GLUCOSE_LOW:
        return [("glucose_low", "abnormal")]
    if meal == "fasting" and mmol_l >= FASTING_GLUCOSE_HIGH:
        return [("glucose_high_fasting_screen", "abnormal")]
    if meal != "fasting" and mmol_l >= RANDOM_GLUCOSE_HIGH:
        return [("glucose_high_random_screen", "abnormal")]
    return []


def _number(values: Values, key: str) -> float | None:
    value = values.get(key)
    return None if value is None or isinstance(value, str) else float(value)


def flag(type_: str, values: Values) -> Flag:
    """Abnormal-value flags of one (plausible) measurement."""
    found: list[tuple[str, str]] = []
    if type_ == "blood_pressure":
        found += blood_pressure_flags(
            float(values["systolic_mmhg"]), float(values["diastolic_mmhg"])
        )
    elif type_ == "blood_glucose":
        meal = values.get("meal")
        found += glucose_flags(
            float(values["glucose_mmol_l"]), meal if isinstance(meal, str) else None
        )
    elif type_ == "pulse_oximetry" and float(values["spo2_pct"]) < SPO2_LOW:
        found.append(("low_spo2", "abnormal"))
    elif type_ == "body_temperature" and float(values["temperature_c"]) >= FEVER_C:
        found.append(("fever", "abnormal"))
    elif type_ == "body_composition":
        bmi = _number(values, "bmi")
        if bmi is not None and bmi >= BMI_OBESE:
            found.append(("obese", "abnormal"))
        elif bmi is not None and bmi < BMI_UNDERWEIGHT:
            found.append(("underweight", "abnormal"))
    if not found:
        return NORMAL
    severity = max((s for _, s in found), key=SEVERITY.__getitem__)
    return Flag(tuple(code for code, _ in found), severity)


def screen(type_: str, values: Values) -> tuple[Flag | None, str | None]:
    """(flag, None) for a plausible measurement, (None, quarantine reason) for an implausible one."""
    reason = implausible(values)
    return (None, reason) if reason else (flag(type_, values), None)
