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

from cloud.days import SHANGHAI
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
    "weight_kg": BODY_WEIGHT,
    "height_cm": BODY_HEIGHT,
    "bmi": BMI,
    "body_fat_pct": BODY_FAT,
    "temperature_c": BODY_TEMPERATURE,
    "spo2_pct": SPO2,
    "glucose_mmol_l": GLUCOSE,
    "pulse_bpm": HEART_RATE,
}
# which observation of a measurement carries the abnormal-value interpretation
FLAGGED_KEY = {
    "blood_glucose": "glucose_mmol_l",
    "body_composition": "bmi",
    "body_temperature": "temperature_c",
    "pulse_oximetry": "spo2_pct",
}
LOW_CODES = {
    "spo2_low",
    "spo2_very_low",
    "glucose_low",
    "glucose_very_low",
    "underweight",
    "temperature_low",
}


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
    return [
        {
            "coding": [{"system": INTERPRETATION_SYSTEM, "code": code, "display": display}],
            "text": verdict.text,
        }
    ]


def effective(ts_ms: int) -> str:
    """FHIR dateTime of an epoch-ms timestamp, in Shanghai time with its offset."""
    return dt.datetime.fromtimestamp(ts_ms / 1000, SHANGHAI).isoformat(timespec="milliseconds")


def observation_id(device: str, seq: int, key: str) -> str:
    """Stable Observation id (a UUID) of one value of one measurement: re-exports give the same ids."""
    return str(uuid.uuid5(_NAMESPACE, f"{device}/{seq}/{key}"))


def _base(
    m: HealthMeasurement, key: str, code: Code, coding: list[dict[str, str]]
) -> dict[str, Any]:
    if m.resident is None:
        raise ValueError(
            f"measurement {m.device}/{m.seq} has no resident: it belongs to no health record"
        )
    category = (
        "vital-signs"
        if code.profile or code is BP_PANEL
        else ("laboratory" if code is GLUCOSE else "exam")
    )
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
            {
                "code": {"coding": [_coding(code)]},
                "valueQuantity": _quantity(float(values[key]), code),
            }
            for key, code in (
                ("systolic_mmhg", SYSTOLIC),
                ("diastolic_mmhg", DIASTOLIC),
                ("mean_arterial_mmhg", MEAN_ARTERIAL),
            )
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
            resource["note"] = [
                {
                    "text": f"Capillary self-test at a health hut (meal: {meal}); screening only, "
                    "not a diagnosis."
                }
            ]
        out.append(resource)
    return out


def bundle(
    measurements: Iterable[HealthMeasurement], now: dt.datetime | None = None
) -> dict[str, Any]:
    """A FHIR R4 `collection` Bundle of the Observations of some measurements, validated, as JSON-ready dict."""
    entries = [
        {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource}
        for m in measurements
        for resource in observations(m)
    ]
    stamp = (now or dt.datetime.now(dt.UTC)).astimezone(SHANGHAI).isoformat(timespec="seconds")
    doc: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": stamp,
    }
    if entries:  # FHIR JSON forbids empty arrays: an empty export has no entry element
        doc["entry"] = entries
    validate(doc)
    return doc


BUNDLE_TYPES = frozenset(
    {
        "document",
        "message",
        "transaction",
        "transaction-response",
        "batch",
        "batch-response",
        "history",
        "searchset",
        "collection",
    }
)
OBSERVATION_STATUS = frozenset(
    {
        "registered",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "cancelled",
        "entered-in-error",
        "unknown",
    }
)


class FhirExportError(ValueError):
    """A resource that breaks a rule the fhir.resources models do not check (code bindings, vital-signs profile)."""


def _check_quantity(q: Mapping[str, Any], where: str) -> None:
    if q.get("system") != UCUM or not q.get("code") or not isinstance(q.get("value"), int | float):
        raise FhirExportError(f"{where}: a vital sign needs a numeric UCUM valueQuantity")


def _check_observation(o: Mapping[str, Any]) -> None:
    where = f"Observation/{o.get('id')}"
    if o.get("status") not in OBSERVATION_STATUS:
        raise FhirExportError(
            f"{where}: status {o.get('status')!r} is not an ObservationStatus code"
        )
    if PROFILE + "vitalsigns" not in o.get("meta", {}).get("profile", []):
        return
    categories = [c.get("code") for cat in o.get("category", []) for c in cat.get("coding", [])]
    if "vital-signs" not in categories or "subject" not in o or "effectiveDateTime" not in o:
        raise FhirExportError(
            f"{where}: vital signs need category vital-signs, a subject and effective[x]"
        )
    if not any(c.get("system") == LOINC for c in o["code"].get("coding", [])):
        raise FhirExportError(f"{where}: vital signs need a LOINC code")
    if "valueQuantity" in o:
        _check_quantity(o["valueQuantity"], where)
    for component in o.get("component", []):
        _check_quantity(component.get("valueQuantity", {}), where)
    if "valueQuantity" not in o and not o.get("component"):
        raise FhirExportError(f"{where}: a vital sign needs a value or components")


def validate(doc: Mapping[str, Any]) -> None:
    """Raise ValueError unless `doc` is a valid FHIR Bundle (R4/R4B models plus code bindings and profile)."""
    Bundle.model_validate(dict(doc))  # pydantic.ValidationError is a ValueError
    if doc.get("type") not in BUNDLE_TYPES:
        raise FhirExportError(f"Bundle.type {doc.get('type')!r} is not a BundleType code")
    for entry in doc.get("entry", []):
        resource = entry.get("resource", {})
        if resource.get("resourceType") == "Observation":
            _check_observation(resource)
