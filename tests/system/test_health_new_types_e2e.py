"""The measurement types added to contract v1 (issue 14 part 5) through the real pipeline: a hut
batch published as HH-01 over MQTT -> ingestion worker -> InfluxDB -> the API's observations,
FHIR (validated), report and WS 365 export. A type this reader does not know is quarantined alone
(`invalid_entry`) and the rest of the batch is kept: how a v1 reader treats the new types."""

from __future__ import annotations

import csv
import io
import json
import random

import httpx
import pytest

from cloud import measurements as m
from cloud.health import fhir
from contract.days import day_start_ms, number_of
from contract.topics import health_measurements
from edge.ble.height_weight import decode_height_weight, encode_height_weight
from tests.support.common import publish, rows_of, wait_until
from tests.support.health import pseudonym

SITE = "HH-01"
DAY = "2021-06-15"  # this test's own day
T0 = day_start_ms(number_of(__import__("datetime").date(2021, 6, 15))) + 10 * 3600 * 1000


@pytest.fixture(scope="module")
def resident() -> str:
    return pseudonym()


@pytest.fixture(scope="module")
def published(stack, ingest_worker, gateway, influx, resident):
    seq = 900_000 + random.randrange(50_000)
    station = decode_height_weight(encode_height_weight(160.2, 74.35))  # BMI 29.0: obese
    batch = {
        "schema": "gumei.health.measurements.v1",
        "site": SITE,
        "measurements": [
            {
                "device": "HH-01-HW",
                "seq": seq,
                "ts": T0,
                "resident": resident,
                "type": "height_weight",
                "values": dict(station.values),
            },
            {
                "device": "HH-01-TAPE",
                "seq": seq,
                "ts": T0 + 60_000,
                "resident": resident,
                "type": "body_circumference",
                "values": {"waist_cm": 86.0, "hip_cm": 99.5, "sex": "F"},
            },
            {  # a type added after this reader: quarantined alone
                "device": "HH-01-TAPE",
                "seq": seq + 1,
                "ts": T0 + 120_000,
                "resident": resident,
                "type": "grip_strength",
                "values": {"grip_kg": 30.0},
            },
            {  # sex is required with the waist: this entry is invalid, the others are not
                "device": "HH-01-TAPE",
                "seq": seq + 2,
                "ts": T0 + 180_000,
                "resident": resident,
                "type": "body_circumference",
                "values": {"waist_cm": 95.0},
            },
        ],
    }
    publish(gateway(SITE), health_measurements(SITE), json.dumps(batch))
    q = f"SELECT * FROM {m.HEALTH_MEASUREMENT.name} WHERE \"resident\" = '{resident}'"
    wait_until(lambda: len(rows_of(influx, q, influx.health_db)) >= 2, what="stored")
    qq = (
        f"SELECT code, reason, payload FROM {m.QUARANTINE.name} "
        f"WHERE time >= {T0 - 3600_000}ms AND code = 'invalid_entry'"
    )
    wait_until(
        lambda: sum(resident in r["payload"] for r in rows_of(influx, qq, influx.health_db)) >= 2,
        what="quarantined",
    )
    return seq


def auth(stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.tokens().create('new types', 'health')}"}


def test_new_types_are_stored_triaged_and_the_unknown_quarantined(
    published, influx, resident
) -> None:
    q = f"SELECT * FROM {m.HEALTH_MEASUREMENT.name} WHERE \"resident\" = '{resident}'"
    rows = {r["type"]: r for r in rows_of(influx, q, influx.health_db)}
    assert set(rows) == {"height_weight", "body_circumference"}  # the rest of the batch is kept
    hw, circ = rows["height_weight"], rows["body_circumference"]
    assert (hw["height_cm"], hw["weight_kg"], hw["bmi"]) == (160.2, 74.35, 29.0)
    assert (hw["tier"], hw["flag"]) == ("refer", "obese")
    assert (circ["waist_cm"], circ["hip_cm"], circ["sex"]) == (86.0, 99.5, "F")
    assert (circ["tier"], circ["flag"]) == ("recheck", "central_obesity")  # women >= 85
    qq = (
        f"SELECT reason, payload FROM {m.QUARANTINE.name} "
        f"WHERE time >= {T0 - 3600_000}ms AND code = 'invalid_entry'"
    )
    mine = [r for r in rows_of(influx, qq, influx.health_db) if resident in r["payload"]]
    reasons = sorted(r["reason"] for r in mine)
    assert len(mine) == 2
    assert any("grip_strength" in r or "type" in r for r in reasons), reasons
    assert any("sex" in r for r in reasons), reasons


def test_the_api_exports_them(published, api_url, stack, resident) -> None:
    h = auth(stack)
    base = f"{api_url}/api/v1/health/residents/{resident}"
    params = {"start": DAY, "end": DAY}
    obs = httpx.get(base + "/observations", params=params, headers=h, timeout=30).json()
    units = {o["type"]: o["units"] for o in obs["observations"]}
    assert units["body_circumference"] == {"waist_cm": "cm", "hip_cm": "cm"}
    doc = httpx.get(base + "/fhir", params=params, headers=h, timeout=30).json()
    fhir.validate(doc)
    by_url = {e["fullUrl"]: e["resource"] for e in doc["entry"]}
    waist = next(
        r
        for r in by_url.values()
        if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "8280-0"
    )
    assert waist["valueQuantity"]["value"] == 86.0
    assert "type" not in waist["performer"][0]  # measured by staff, not self-measured
    assert by_url[waist["device"]["reference"]]["identifier"][0]["value"] == "HH-01-TAPE"
    devices = [r for r in by_url.values() if r["resourceType"] == "Device"]
    hw = next(d for d in devices if d["identifier"][0]["value"] == "HH-01-HW")
    assert hw["serialNumber"] == "SIM-HH01-HW-0001"
    assert hw["specialization"][0]["systemType"]["coding"][0]["code"] == "528399"
    page = httpx.get(base + "/report", params={"end": DAY}, headers=h, timeout=30).text
    assert "身高体重" in page and "腰围超标" in page and "性别 Sex: 女 female" in page
    text = httpx.get(base + "/ws365.csv", params=params, headers=h, timeout=30).text
    got = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    by_name = {g["数据元名称"]: g for g in got}
    assert (
        by_name["身高"]["数据元标识符"] == "DE04.10.167.00"
        and by_name["身高"]["测量方式"] == "自测"
    )
    assert by_name["腰围"]["数据元值"] == "86" and by_name["腰围"]["测量方式"] == "工作人员测量"
