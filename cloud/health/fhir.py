"""FHIR R4 export: health measurements as vital-signs Observations (LOINC, UCUM) in a Bundle.

Validated with the `fhir.resources` R4B models (R4B keeps R4's Observation and Bundle unchanged).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from cloud.health.flags import Flag, flag
from contract.models import HealthMeasurement

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
PROFILE = "http://hl7.org/fhir/StructureDefinition/"
RESIDENT_SYSTEM = "urn:gumei:resident-pseudonym"
MEASUREMENT_SYSTEM = "urn:gumei:measurement"
_NAMESPACE = uuid.UUID("9a6c0f0e-5b1d-4f4e-8f33-67756d656931")
SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")


@dataclass(frozen=True, slots=True)
class Code:
    """A LOINC code with its display, UCUM unit and FHIR profile."""

    loinc: str
    display: str
    ucum: str | None = None
    unit: str | None = None
    profile: str | None = None  # vital-signs profile name; None when not a vital sign


BP_PANEL = Code("85354-9", "Blood pressure panel with all children optional", profile="bp")
SYSTOLIC = Code("8480-6", "Systolic blood pressure", "mm[Hg]", "mmHg")
DIASTOLIC = Code("8462-4", "Diastolic blood pressure", "mm[Hg]", "mmHg")
MEAN_ARTERIAL = Code("8478-0", "Mean blood pressure", "mm[Hg]", "mmHg")
HEART_RATE = Code("8867-4", "Heart rate", "/min", "beats/minute", "heartrate")
BODY_WEIGHT = Code("29463-7", "Body weight", "kg", "kg", "bodyweight")
BODY_HEIGHT = Code("8302-2", "Body height", "cm", "cm", "bodyheight")
BMI = Code("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", "kg/m2", "bmi")
BODY_FAT = Code("41982-0", "Percentage of body fat Measured", "%", "%")
BODY_TEMPERATURE = Code("8310-5", "Body temperature", "Cel", "C", "bodytemp")
SPO2 = Code("2708-6", "Oxygen saturation in Arterial blood", "%", "%", "oxygensat")
SPO2_PULSE_OX = Code("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", "%")
GLUCOSE = Code("15074-8", "Glucose [Moles/volume] in Blood", "mmol/L", "mmol/L")

# contract value key -> the code of the Observation it becomes (blood pressure goes in one panel)
SINGLE: dict[str, Code] = {
    "pulse_bpm": HEART_RATE,
    "weight_kg": BODY_WEIGHT,
    "height_cm": BODY_HEIGHT,
    "bmi": BMI,
    "body_fat_pct": BODY_FAT,
    "temperature_c": BODY_TEMPERATURE,
    "spo2_pct": SPO2,
    "glucose_mmol_l": GLUCOSE,
}
# which observation of a measurement carries the abnormal-value interpretation
FLAGGED_KEY = {"blood_glucose": "glucose_mmol_l", "body_composition": "bmi", "body_temperature": "temperature_c",
               "pulse_oximetry": "spo2_pct"}
LOW_CODES = {"low_spo2", "glucose_low", "underweight"}


def _coding(code: Code) -> dict[str, str]:
    return {"system": LOINC, "code": code.loinc, "display": code.display}


def _quantity(value: float, code: Code) -> dict[str, Any]:
    return {"value": float(value), "unit": code.unit, "system": UCUM, "code": code.ucum}


def _interpretation(verdict: Flag) -> list[dict[str, Any]]:
    if not verdict.abnormal:
        return [{"coding": [{"system": INTERPRETATION_SYSTEM, "code": "N", "display": "Normal"}]}]
    low = any(c in LOW_CODES for c in verdict.codes)
    code = ("LL" if low else "HH") if verdict.severity == "severe" else ("L" if low else "H")
    display = {"H": "High", "HH": "Critical high", "L": "Low", "LL": "Critical low"}[code]
    return [{"coding": [{"system": INTERPRETATION_SYSTEM, "code": code, "display": display}],
             "text": verdict.text}]


def effective(ts_ms: int) -> str:
    """FHIR dateTime of an epoch-ms timestamp, in Shanghai time with its offset."""
    return dt.datetime.fromtimestamp(ts_ms / 1000, SHANGHAI).isoformat(timespec="milliseconds")


def observation_id(device: str, seq: int, key: str) -> str:
    """Stable Observation id (a UUID) of one value of one measurement: re-exports give the same ids."""
    return str(uuid.uuid5(_NAMESPACE, f"{device}/{seq}/{key}"))


def _base(m: HealthMeasurement, key: str, code: Code, coding: list[dict[str, str]]) -> dict[str, Any]:
    if m.resident is None:
        raise ValueError(f"measurement {m.device}/{m.seq} has no resident: it belongs to no health record")
    category = "vital-signs" if code.profile or code is BP_PANEL else (
        "laboratory" if code is GLUCOSE else "exam")
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": observation_id(m.device, m.seq, key),
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": category}]}],
        "code": {"coding": coding, "text": code.display},
        "subject": {"identifier": {"system": RESIDENT_SYSTEM, "value": m.resident}},
        "effectiveDateTime": effective(m.ts),
        "identifier": [{"system": MEASUREMENT_SYSTEM, "value": f"{m.device}/{m.seq}/{key}"}],
        "device": {"display": m.device},
    }
    if code.profile:
        resource["meta"] = {"profile": [PROFILE + "vitalsigns", PROFILE + code.profile]}
    return resource


def observations(m: HealthMeasurement) -> list[dict[str, Any]]:
    """FHIR Observation resources (as dicts) of one measurement that carries a resident pseudonym."""
    values: Mapping[str, float | str] = m.values
    verdict = flag(m.type.value, values)
    out: list[dict[str, Any]] = []
    if m.type.value == "blood_pressure":
        panel = _base(m, "bp", BP_PANEL, [_coding(BP_PANEL)])
        panel["component"] = [
            {"code": {"coding": [_coding(code)]}, "valueQuantity": _quantity(float(values[key]), code)}
            for key, code in (("systolic_mmhg", SYSTOLIC), ("diastolic_mmhg", DIASTOLIC),
                              ("mean_arterial_mmhg", MEAN_ARTERIAL))
            if key in values
        ]
        panel["interpretation"] = _interpretation(verdict)
        out.append(panel)
    for key, code in SINGLE.items():
        value = values.get(key)
        if value is None or isinstance(value, str):
            continue
        coding = [_coding(code)] + ([_coding(SPO2_PULSE_OX)] if code is SPO2 else [])
        resource = _base(m, key, code, coding)
        resource["valueQuantity"] = _quantity(value, code)
        if FLAGGED_KEY.get(m.type.value) == key:
            resource["interpretation"] = _interpretation(verdict)
        if code is GLUCOSE:
            meal = values.get("meal", "unknown")
            resource["note"] = [{"text": f"Capillary self-test at a health hut (meal: {meal}); screening only, "
                                         "not a diagnosis."}]
        out.append(resource)
    return out


def bundle(measurements: Iterable[HealthMeasurement], now: dt.datetime | None = None) -> dict[str, Any]:
    """A FHIR R4 `collection` Bundle of the Observations of some measurements, validated, as JSON-ready dict."""
    entries = [
        {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource}
        for m in measurements
        for resource in observations(m)
    ]
    stamp = (now or dt.datetime.now(dt.timezone.utc)).astimezone(SHANGHAI).isoformat(timespec="seconds")
    doc: dict[str, Any] = {"resourceType": "Bundle", "type": "collection", "timestamp": stamp, "entry": entries}
    validate(doc)
    return doc


def validate(doc: Mapping[str, Any]) -> None:
    """Raise pydantic.ValidationError unless `doc` is a valid FHIR Bundle (R4/R4B structure)."""
    Bundle.model_validate(dict(doc))
