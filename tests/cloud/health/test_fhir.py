"""FHIR R4 export: vital-signs Observations with LOINC and UCUM, a Bundle that validates."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from cloud.health.fhir import (
    CODES,
    LOINC,
    MDC,
    PROPERTY_UNITS,
    UCUM,
    DeviceInfo,
    FhirExportError,
    bundle,
    device_id,
    observations,
    validate,
)
from contract import HealthMeasurement

R1 = "r-" + "a" * 32
T0 = 1_795_743_000_000  # 2026-11-27 09:30 Shanghai
NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def m(
    type_: str, values: dict[str, Any], device: str = "HH-01-X", seq: int = 1
) -> HealthMeasurement:
    return HealthMeasurement.model_validate(
        {"device": device, "seq": seq, "ts": T0, "resident": R1, "type": type_, "values": values}
    )


def codes(resource: dict[str, Any]) -> list[str]:
    return [c["code"] for c in resource["code"]["coding"]]


def quantity(resource: dict[str, Any]) -> tuple[float, str]:
    q = resource["valueQuantity"]
    assert q["system"] == UCUM
    return q["value"], q["code"]


def test_blood_pressure_panel_with_components_and_heart_rate() -> None:
    panel, heart = observations(
        m(
            "blood_pressure",
            {
                "systolic_mmhg": 150,
                "diastolic_mmhg": 95,
                "mean_arterial_mmhg": 113.3,
                "pulse_bpm": 72,
            },
        )
    )
    assert codes(panel) == ["85354-9"]
    assert panel["meta"]["profile"][-1] == "http://hl7.org/fhir/StructureDefinition/bp"
    comps = {c["code"]["coding"][0]["code"]: c["valueQuantity"] for c in panel["component"]}
    assert comps["8480-6"] == {"value": 150.0, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}
    assert comps["8462-4"]["value"] == 95.0 and comps["8478-0"]["value"] == 113.3
    assert "valueQuantity" not in panel
    assert panel["interpretation"][0]["coding"][0]["code"] == "H"
    assert codes(heart) == ["8867-4"] and quantity(heart) == (72.0, "/min")
    assert panel["category"][0]["coding"][0]["code"] == "vital-signs"
    assert panel["subject"]["identifier"]["value"] == R1
    assert panel["effectiveDateTime"] == "2026-11-27T09:30:00.000+08:00"


def test_severe_blood_pressure_is_critical_high() -> None:
    (panel,) = observations(m("blood_pressure", {"systolic_mmhg": 190, "diastolic_mmhg": 100}))
    assert panel["interpretation"][0]["coding"][0]["code"] == "HH"


def test_body_composition_observations() -> None:
    obs = observations(
        m(
            "body_composition",
            {"weight_kg": 70.5, "height_cm": 170.0, "bmi": 24.4, "body_fat_pct": 21.5},
        )
    )
    by_code = {codes(o)[0]: o for o in obs}
    assert quantity(by_code["29463-7"]) == (70.5, "kg")
    assert quantity(by_code["8302-2"]) == (170.0, "cm")
    assert quantity(by_code["39156-5"]) == (24.4, "kg/m2")
    assert quantity(by_code["41982-0"]) == (21.5, "%")
    assert (
        by_code["39156-5"]["interpretation"][0]["coding"][0]["code"] == "H"
    )  # overweight >= 24 (WS/T 428)
    assert "meta" not in by_code["41982-0"]  # body fat is not a vital sign


def test_temperature_spo2_glucose() -> None:
    (temp,) = observations(m("body_temperature", {"temperature_c": 37.8}))
    assert codes(temp) == ["8310-5"] and quantity(temp) == (37.8, "Cel")
    assert temp["interpretation"][0]["coding"][0]["code"] == "H"
    spo2, heart = observations(m("pulse_oximetry", {"spo2_pct": 92, "pulse_bpm": 88}))
    assert codes(spo2) == ["2708-6", "59408-5"] and quantity(spo2) == (92.0, "%")
    assert spo2["interpretation"][0]["coding"][0]["code"] == "L"
    assert codes(heart) == ["8867-4"]
    (glucose,) = observations(m("blood_glucose", {"glucose_mmol_l": 7.2, "meal": "fasting"}))
    assert codes(glucose) == ["14743-9"] and quantity(glucose) == (7.2, "mmol/L")
    assert glucose["category"][0]["coding"][0]["code"] == "laboratory"
    assert "screening" in glucose["note"][0]["text"] and "fasting" in glucose["note"][0]["text"]


def test_bundle_validates_and_is_stable() -> None:
    ms = [
        m(
            "blood_pressure",
            {"systolic_mmhg": 120, "diastolic_mmhg": 80, "pulse_bpm": 70},
            "HH-01-BP",
            1,
        ),
        m(
            "body_composition",
            {"weight_kg": 60.0, "bmi": 22.0, "height_cm": 165.1},
            "HH-01-SCALE",
            1,
        ),
        m("body_temperature", {"temperature_c": 36.6}, "HH-01-TEMP", 1),
        m("pulse_oximetry", {"spo2_pct": 98, "pulse_bpm": 70}, "HH-01-SPO2", 1),
        m("blood_glucose", {"glucose_mmol_l": 5.4}, "HH-01-GLU", 1),
    ]
    doc = bundle(ms, now=NOW)
    assert doc["resourceType"] == "Bundle" and doc["type"] == "collection"
    # BP panel + heart rate, 3 body, temperature, SpO2 + heart rate, glucose; 5 instruments
    assert len(doc["entry"]) == 9 + 5
    parsed = Bundle.model_validate_json(json.dumps(doc))  # what a FHIR client would do
    assert parsed.entry is not None and parsed.entry[0].resource is not None
    ids = [e["resource"]["id"] for e in doc["entry"]]
    assert len(set(ids)) == 14
    assert [e["resource"]["id"] for e in bundle(ms, now=NOW)["entry"]] == ids
    assert all(e["fullUrl"] == f"urn:uuid:{e['resource']['id']}" for e in doc["entry"])
    obs = [e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Observation"]
    assert all(c["system"] == LOINC for o in obs for c in o["code"]["coding"])


def test_empty_bundle_validates() -> None:
    assert "entry" not in bundle([], now=NOW)  # FHIR JSON: no empty arrays


def test_validation_catches_broken_resources() -> None:
    (temp,) = observations(m("body_temperature", {"temperature_c": 36.6}))
    no_code = {k: v for k, v in temp.items() if k != "code"}  # Observation.code is 1..1
    bad_value = dict(temp, valueQuantity={"value": "warm", "system": UCUM, "code": "Cel"})
    for broken in (no_code, bad_value):
        with pytest.raises(ValidationError):
            validate(
                {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": broken}]}
            )
    with pytest.raises(FhirExportError, match="BundleType"):
        validate({"resourceType": "Bundle", "type": "not-a-bundle-type"})
    wrong_status = dict(temp, status="finished")
    no_ucum = dict(temp, valueQuantity={"value": 36.6, "unit": "C"})
    no_category = dict(temp, category=[])
    for broken in (wrong_status, no_ucum, no_category):
        with pytest.raises(FhirExportError):
            validate(
                {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": broken}]}
            )


def test_measurement_without_resident_is_not_exported() -> None:
    anonymous = HealthMeasurement(
        device="HH-01-TEMP",
        seq=1,
        ts=T0,
        type="body_temperature",
        values={"temperature_c": 36.6},
    )
    with pytest.raises(ValueError, match="no resident"):
        observations(anonymous)


def test_every_loinc_code_is_sent_with_a_unit_of_its_property() -> None:
    for code in CODES:
        if code.ucum is None:
            assert code.property == "-", code  # a panel has no value of its own
        else:
            assert code.ucum in PROPERTY_UNITS[code.property], code
    glucose = next(c for c in CODES if c.ucum == "mmol/L")
    assert (glucose.loinc, glucose.property) == ("14743-9", "SCnc")  # moles/volume, glucometer


def test_a_unit_that_does_not_fit_the_code_s_property_is_refused() -> None:
    (glucose,) = observations(m("blood_glucose", {"glucose_mmol_l": 5.4, "meal": "fasting"}))
    doc = bundle([m("blood_glucose", {"glucose_mmol_l": 5.4}, "HH-01-X", 1)], now=NOW)
    devices = [e for e in doc["entry"] if e["resource"]["resourceType"] == "Device"]
    mg = dict(
        glucose, valueQuantity={"value": 97.3, "unit": "mg/dL", "system": UCUM, "code": "mg/dL"}
    )
    mass_code = dict(
        glucose, code={"coding": [{"system": LOINC, "code": "2339-0"}], "text": "glucose"}
    )
    for broken in (mg, mass_code):
        with pytest.raises(FhirExportError, match="cannot carry"):
            validate(
                {
                    "resourceType": "Bundle",
                    "type": "collection",
                    "entry": [{"fullUrl": "urn:uuid:x", "resource": broken}, *devices],
                }
            )


def test_each_observation_references_its_instrument_and_is_self_measured() -> None:
    ms = [
        m(
            "blood_pressure",
            {"systolic_mmhg": 120, "diastolic_mmhg": 80, "pulse_bpm": 70},
            "HH-01-BP",
            1,
        ),
        m("blood_pressure", {"systolic_mmhg": 125, "diastolic_mmhg": 82}, "HH-01-BP", 2),
        m("blood_glucose", {"glucose_mmol_l": 5.4}, "HH-01-GLU", 1),
    ]
    info = {"HH-01-BP": DeviceInfo("Model BP-9", "Acme Medical", "SN123")}
    doc = bundle(ms, now=NOW, devices=info)
    by_url = {e["fullUrl"]: e["resource"] for e in doc["entry"]}
    devices = [r for r in by_url.values() if r["resourceType"] == "Device"]
    assert len(devices) == 2  # one per instrument, however many readings
    obs = [r for r in by_url.values() if r["resourceType"] == "Observation"]
    for o in obs:
        device = by_url[o["device"]["reference"]]
        assert device["resourceType"] == "Device"
        assert o["performer"][0]["identifier"] == o["subject"]["identifier"]  # the resident
        assert o["performer"][0]["type"] == "Patient"
    bp = by_url[f"urn:uuid:{device_id('HH-01-BP')}"]
    assert bp["serialNumber"] == "SN123" and bp["modelNumber"] == "Model BP-9"
    assert bp["manufacturer"] == "Acme Medical"
    assert {"name": "Model BP-9", "type": "model-name"} in bp["deviceName"]
    assert bp["identifier"] == [{"system": "urn:gumei:device", "value": "HH-01-BP"}]
    assert bp["specialization"][0]["systemType"]["coding"][0] == {
        "system": MDC,
        "code": "528391",
        "display": "MDC_DEV_SPEC_PROFILE_BP",
    }
    glu = by_url[f"urn:uuid:{device_id('HH-01-GLU')}"]
    assert "serialNumber" not in glu and glu["type"]["coding"][0]["code"] == "528401"
    dangling = [e for e in doc["entry"] if e["resource"]["resourceType"] == "Observation"]
    with pytest.raises(FhirExportError, match="not a Device in the bundle"):
        validate({"resourceType": "Bundle", "type": "collection", "entry": dangling})
