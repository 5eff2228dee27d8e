"""FHIR R4 export: health measurements as vital-signs Observations (LOINC, UCUM) in a Bundle, each
referencing the `Device` (the instrument: model, serial, IEEE 11073 specialization) that measured
it and saying the resident measured themself (`performer` = the subject).

Validated with the `fhir.resources` R4B models (R4B keeps R4's Observation, Device and Bundle
unchanged) plus the checks those models skip: code bindings, the vital-signs profile rules, each
LOINC code's property against the unit sent, and references that resolve inside the bundle.
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
MDC = "urn:iso:std:iso:11073:10101"  # IEEE 11073-10101 nomenclature (HL7 PHD IG)
DEVICE_SYSTEM = "urn:gumei:device"
RESIDENT_SYSTEM = "urn:gumei:resident-pseudonym"
MEASUREMENT_SYSTEM = "urn:gumei:measurement"
_NAMESPACE = uuid.UUID("9a6c0f0e-5b1d-4f4e-8f33-67756d656931")


@dataclass(frozen=True, slots=True)
class Code:
    """A LOINC code with its display, LOINC property, UCUM unit and FHIR profile."""

    loinc: str
    display: str
    property: str  # the LOINC PROPERTY axis (Pres, NRat, Mass, Len, Ratio, MFr, Temp, SCnc, ...)
    ucum: str | None = None
    unit: str | None = None
    profile: str | None = None  # vital-signs profile name; None when not a vital sign


# The UCUM units a LOINC property admits (the units this export can send): a code is sent only
# with a unit of its property, checked by `validate` (e.g. mmol/L needs SCnc, never MCnc).
PROPERTY_UNITS: dict[str, frozenset[str]] = {
    "Pres": frozenset({"mm[Hg]"}),  # pressure
    "NRat": frozenset({"/min"}),  # number rate
    "Mass": frozenset({"kg", "g"}),
    "Len": frozenset({"cm", "m"}),
    "Ratio": frozenset({"kg/m2"}),  # 39156-5 BMI [Ratio]
    "MFr": frozenset({"%"}),  # mass fraction (body fat; SaO2 is MFr in LOINC)
    "Temp": frozenset({"Cel"}),
    "SCnc": frozenset({"mmol/L"}),  # substance (moles) concentration
    "MCnc": frozenset({"mg/dL"}),  # mass concentration: never sent (the contract has mmol/L)
    "-": frozenset(),  # panels: no value of their own
}

BP_PANEL = Code("85354-9", "Blood pressure panel with all children optional", "-", profile="bp")
SYSTOLIC = Code("8480-6", "Systolic blood pressure", "Pres", "mm[Hg]", "mmHg")
DIASTOLIC = Code("8462-4", "Diastolic blood pressure", "Pres", "mm[Hg]", "mmHg")
MEAN_ARTERIAL = Code("8478-0", "Mean blood pressure", "Pres", "mm[Hg]", "mmHg")
HEART_RATE = Code("8867-4", "Heart rate", "NRat", "/min", "beats/minute", "heartrate")
BODY_WEIGHT = Code("29463-7", "Body weight", "Mass", "kg", "kg", "bodyweight")
BODY_HEIGHT = Code("8302-2", "Body height", "Len", "cm", "cm", "bodyheight")
BMI = Code("39156-5", "Body mass index (BMI) [Ratio]", "Ratio", "kg/m2", "kg/m2", "bmi")
BODY_FAT = Code("41982-0", "Percentage of body fat Measured", "MFr", "%", "%")
BODY_TEMPERATURE = Code("8310-5", "Body temperature", "Temp", "Cel", "C", "bodytemp")
SPO2 = Code("2708-6", "Oxygen saturation in Arterial blood", "MFr", "%", "%", "oxygensat")
SPO2_PULSE_OX = Code(
    "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "MFr", "%", "%"
)
# The hut's glucose is a capillary finger-stick on a glucometer, in mmol/L: the LOINC code of
# exactly that (property SCnc = moles/volume, system BldC, method Glucometer), not 15074-8
# (Glucose [Moles/volume] in Blood, same property, no method) and never 2339-0/2345-7 (mass/volume).
GLUCOSE = Code(
    "14743-9", "Glucose [Moles/volume] in Capillary blood by Glucometer", "SCnc", "mmol/L", "mmol/L"
)
WAIST = Code("8280-0", "Waist Circumference at umbilicus by Tape measure", "Len", "cm", "cm")
# 62409-8 is LOINC's "PhenX - hip circumference protocol 020801" (Len, cm), the code public FHIR
# implementations (e.g. the All of Us physical measurements) send for a hip circumference
HIP = Code("62409-8", "Hip circumference", "Len", "cm", "cm")
CODES: tuple[Code, ...] = (
    BP_PANEL,
    SYSTOLIC,
    DIASTOLIC,
    MEAN_ARTERIAL,
    HEART_RATE,
    BODY_WEIGHT,
    BODY_HEIGHT,
    BMI,
    BODY_FAT,
    BODY_TEMPERATURE,
    SPO2,
    SPO2_PULSE_OX,
    GLUCOSE,
    WAIST,
    HIP,
)
PROPERTY_OF: dict[str, str] = {
    **{c.loinc: c.property for c in CODES},
    "15074-8": "SCnc",  # Glucose [Moles/volume] in Blood: the code before, same property
    "2339-0": "MCnc",  # Glucose [Mass/volume] in Blood: never with mmol/L
    "41653-7": "MCnc",  # Glucose [Mass/volume] in Capillary blood by Glucometer: never with mmol/L
}


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What the registry knows of an instrument beyond its id (any may be unknown)."""

    model: str | None = None
    manufacturer: str | None = None
    serial: str | None = None


# IEEE 11073-10101 device specializations (MDC_DEV_SPEC_PROFILE_*), as the HL7 Personal Health
# Device IG codes Device.specialization.systemType (ValueSet DeviceTypes11073MDC)
SPECIALIZATION: dict[str, tuple[str, str]] = {
    "blood_pressure": ("528391", "MDC_DEV_SPEC_PROFILE_BP"),
    "blood_glucose": ("528401", "MDC_DEV_SPEC_PROFILE_GLUCOSE"),
    "body_composition": ("528404", "MDC_DEV_SPEC_PROFILE_BCA"),
    "body_temperature": ("528392", "MDC_DEV_SPEC_PROFILE_TEMP"),
    "pulse_oximetry": ("528388", "MDC_DEV_SPEC_PROFILE_PULS_OXIM"),
    "height_weight": ("528399", "MDC_DEV_SPEC_PROFILE_SCALE"),
}

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
    "waist_cm": WAIST,
    "hip_cm": HIP,
}
# which observation of a measurement carries the abnormal-value interpretation
FLAGGED_KEY = {
    "blood_glucose": "glucose_mmol_l",
    "body_composition": "bmi",
    "body_temperature": "temperature_c",
    "pulse_oximetry": "spo2_pct",
    "height_weight": "bmi",
    "body_circumference": "waist_cm",
}
# measured by health staff, not by the resident (the performer is the staff, not the patient)
STAFF_MEASURED_TYPES = frozenset({"body_circumference"})
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


def device_id(device: str) -> str:
    """Stable Device resource id (a UUID) of an instrument."""
    return str(uuid.uuid5(_NAMESPACE, f"device/{device}"))


def device_resource(
    device: str, type_: str | None, info: DeviceInfo | None = None
) -> dict[str, Any]:
    """The FHIR Device of an instrument: its id in the registry, model, manufacturer, serial and
    IEEE 11073 specialization (the HL7 PHD IG's mapping of the MDS attributes)."""
    info = info or DeviceInfo()
    resource: dict[str, Any] = {
        "resourceType": "Device",
        "id": device_id(device),
        "identifier": [{"system": DEVICE_SYSTEM, "value": device}],
        "status": "active",
        "deviceName": [{"name": device, "type": "user-friendly-name"}],
    }
    if info.model:
        resource["deviceName"].append({"name": info.model, "type": "model-name"})
        resource["modelNumber"] = info.model
    if info.manufacturer:
        resource["manufacturer"] = info.manufacturer
    if info.serial:
        resource["serialNumber"] = info.serial
    if type_ in SPECIALIZATION:
        code, display = SPECIALIZATION[type_]
        concept = {"coding": [{"system": MDC, "code": code, "display": display}]}
        resource["type"] = concept
        resource["specialization"] = [{"systemType": concept}]
    return resource


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
        # self-measured at the hut: the resident is the performer (staff for a tape measure)
        "performer": [
            {"display": "health staff at a health hut (tape measure)"}
            if m.type.value in STAFF_MEASURED_TYPES
            else {
                "type": "Patient",
                "identifier": {"system": RESIDENT_SYSTEM, "value": m.resident},
                "display": "self-measured at a health hut",
            }
        ],
        "device": {"reference": f"urn:uuid:{device_id(m.device)}"},
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
    measurements: Iterable[HealthMeasurement],
    now: dt.datetime | None = None,
    devices: Mapping[str, DeviceInfo] | None = None,
) -> dict[str, Any]:
    """A FHIR R4 `collection` Bundle of the Observations of some measurements and the Devices that
    measured them (`devices`: what the registry knows of each), validated, as a JSON-ready dict."""
    ms = list(measurements)
    entries = [
        {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource}
        for m in ms
        for resource in observations(m)
    ]
    instruments: dict[str, str] = {}
    for m in ms:
        instruments.setdefault(m.device, m.type.value)
    entries += [
        {
            "fullUrl": f"urn:uuid:{device_id(device)}",
            "resource": device_resource(device, type_, (devices or {}).get(device)),
        }
        for device, type_ in sorted(instruments.items())
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


def _check_property(
    code: Mapping[str, Any], quantity: Mapping[str, Any] | None, where: str
) -> None:
    """A known LOINC code's property must admit the UCUM unit sent (mmol/L is SCnc, never MCnc)."""
    if quantity is None:
        return
    for coding in code.get("coding", []):
        prop = PROPERTY_OF.get(coding.get("code", "")) if coding.get("system") == LOINC else None
        if prop is not None and quantity.get("code") not in PROPERTY_UNITS[prop]:
            raise FhirExportError(
                f"{where}: LOINC {coding['code']} ({prop}) cannot carry a value in "
                f"{quantity.get('code')!r}"
            )


def _check_units(o: Mapping[str, Any]) -> None:
    where = f"Observation/{o.get('id')}"
    _check_property(o.get("code", {}), o.get("valueQuantity"), where)
    for component in o.get("component", []):
        _check_property(component.get("code", {}), component.get("valueQuantity"), where)


def validate(doc: Mapping[str, Any]) -> None:
    """Raise ValueError unless `doc` is a valid FHIR Bundle (R4/R4B models plus code bindings and profile)."""
    Bundle.model_validate(dict(doc))  # pydantic.ValidationError is a ValueError
    if doc.get("type") not in BUNDLE_TYPES:
        raise FhirExportError(f"Bundle.type {doc.get('type')!r} is not a BundleType code")
    full_urls = {
        e.get("fullUrl"): e.get("resource", {}).get("resourceType") for e in doc.get("entry", [])
    }
    for entry in doc.get("entry", []):
        resource = entry.get("resource", {})
        if resource.get("resourceType") == "Observation":
            _check_observation(resource)
            _check_units(resource)
            ref = resource.get("device", {}).get("reference")
            if ref is not None and full_urls.get(ref) != "Device":
                raise FhirExportError(
                    f"Observation/{resource.get('id')}: device {ref!r} is not a Device in the bundle"
                )
