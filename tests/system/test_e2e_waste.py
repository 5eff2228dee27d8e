"""End to end on the real broker and database: gateway → worker → InfluxDB → aggregator → API."""

from __future__ import annotations

import json

import httpx
import pytest

from contract import WasteBatch, WasteReading, encode
from contract.topics import waste_readings
from tests.support.common import count, gumei, ms, publish, rows_of, wait_until

SITE = "WS-0101"  # area A01 in the default registry; S1 dry, S2 wet, S3 recyclable, S4 hazardous


def reading(device: str, seq: int, ts: int, category: str, net_kg: float) -> WasteReading:
    return WasteReading(device=device, seq=seq, ts=ts, category=category, net_kg=net_kg)


LAST_MS = ms(2025, 3, 10, 23, 59, 59, 999)
FIRST_MS = ms(2025, 3, 11, 0, 0, 0, 0)
SAME_TS = ms(2025, 3, 10, 8, 15)

GOOD = [
    reading(f"{SITE}-S1", 1, LAST_MS, "dry", 1.234),  # last millisecond of 03-10
    reading(f"{SITE}-S1", 2, FIRST_MS, "dry", 2.5),  # first millisecond of 03-11
    reading(f"{SITE}-S3", 10, SAME_TS, "recyclable", 0.333),  # two distinct readings, equal ts
    reading(f"{SITE}-S3", 11, SAME_TS, "recyclable", 0.667),
    reading(f"{SITE}-S2", 5, ms(2025, 3, 10, 19), "wet", 3.001),
]


@pytest.fixture(scope="module")
def published(stack, ingest_worker, gateway, influx):
    """Publish the scenario once; wait until every accepted reading and dead letter is stored."""
    client = gateway(SITE)
    topic = waste_readings(SITE)
    publish(client, topic, encode(WasteBatch(site=SITE, readings=GOOD[:3])))
    # a redelivered duplicate of (S3, 10) inside a later message, plus the rest
    publish(client, topic, encode(WasteBatch(site=SITE, readings=[GOOD[2], GOOD[3], GOOD[4]])))
    # one invalid entry (negative weight) among valid ones
    mixed = json.loads(
        encode(
            WasteBatch(
                site=SITE, readings=[reading(f"{SITE}-S2", 6, ms(2025, 3, 10, 20), "wet", 0.5)]
            )
        )
    )
    mixed["readings"].append(
        {
            "device": f"{SITE}-S2",
            "seq": 7,
            "ts": ms(2025, 3, 10, 20),
            "category": "wet",
            "net_kg": -4,
        }
    )
    publish(client, topic, json.dumps(mixed))
    publish(client, topic, b"{not json")
    other = encode(
        WasteBatch(
            site="WS-0102", readings=[reading("WS-0102-S1", 1, ms(2025, 3, 10, 9), "dry", 9.0)]
        )
    )
    publish(client, topic, other)  # site differs from the topic

    where = f"site = '{SITE}' AND time >= '2025-03-09T16:00:00Z' AND time < '2025-03-11T16:00:00Z'"
    wait_until(
        lambda: count(influx, f"SELECT count(net_kg) FROM waste_reading WHERE {where}") == 6,
        what="6 readings stored",
    )
    wait_until(
        lambda: count(influx, f"SELECT count(entries) FROM quarantine WHERE site = '{SITE}'") >= 3,
        what="3 dead letters",
    )
    gumei("aggregate", "run", "--config", str(stack.root / "cloud.toml"))
    return where


def test_every_valid_reading_stored_once(published, influx):
    rows = rows_of(influx, f"SELECT net_kg, seq, device FROM waste_reading WHERE {published}")
    assert sorted((r["device"], r["seq"]) for r in rows) == [
        (f"{SITE}-S1", 1),
        (f"{SITE}-S1", 2),
        (f"{SITE}-S2", 5),
        (f"{SITE}-S2", 6),
        (f"{SITE}-S3", 10),
        (f"{SITE}-S3", 11),
    ]


def test_rejections_visible_with_reasons(published, influx):
    rows = rows_of(
        influx, f"SELECT reason, entries, payload FROM quarantine WHERE site = '{SITE}' GROUP BY *"
    )
    codes = {r["code"]: r for r in rows}
    assert {"invalid_entry", "not_json", "site_mismatch"} <= set(codes)
    assert "net_kg" in codes["invalid_entry"]["reason"]
    assert "WS-0102" in codes["site_mismatch"]["reason"]
    assert codes["not_json"]["payload"] == "{not json"


def test_api_rows_exact_to_the_gram(published, api_url, operator_token):
    r = httpx.get(
        f"{api_url}/api/v1/waste/daily",
        params={"start": "2025-03-10", "end": "2025-03-11", "site": SITE},
        headers={"Authorization": f"Bearer {operator_token}"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "rows": [
            {
                "date": "2025-03-10",
                "site": SITE,
                "area": "A01",
                "category": "dry",
                "tonnes": 0.001234,
                "deposits": 1,
            },
            {
                "date": "2025-03-10",
                "site": SITE,
                "area": "A01",
                "category": "recyclable",
                "tonnes": 0.001,
                "deposits": 2,
            },
            {
                "date": "2025-03-10",
                "site": SITE,
                "area": "A01",
                "category": "wet",
                "tonnes": 0.003501,
                "deposits": 2,
            },
            {
                "date": "2025-03-11",
                "site": SITE,
                "area": "A01",
                "category": "dry",
                "tonnes": 0.0025,
                "deposits": 1,
            },
        ]
    }


def test_api_filters(published, api_url, operator_token):
    h = {"Authorization": f"Bearer {operator_token}"}
    r = httpx.get(
        f"{api_url}/api/v1/waste/daily",
        params={"start": "2025-03-10", "end": "2025-03-10", "area": "A01", "category": "wet"},
        headers=h,
    )
    assert [(x["site"], x["tonnes"]) for x in r.json()["rows"]] == [(SITE, 0.003501)]
