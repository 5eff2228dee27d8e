"""Health hut end to end on the real broker and database: simulated instruments -> socket frames ->
edge decoding and sessions -> durable queue -> MQTT (the hut's own credentials) -> ingestion worker ->
InfluxDB -> aggregator -> API observations, FHIR export and daily aggregates."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import random
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle

from broker.dynsec import monitor_name
from cloud import measurements as m
from cloud.aggregate.runner import Aggregator
from cloud.health import fhir
from cloud.influx import InfluxClient
from cloud.registry import Registry
from contract import HealthBatch, pseudonymize
from devstack.stack import LocalStack
from edge.ble.transport import SocketTransport
from edge.health_session import SessionTracker
from edge.hut import HutAgent
from edge.publisher import Publisher
from edge.queue import DurableQueue
from firmware_sim.health import HealthHutSim, make_residents, measure
from firmware_sim.health.hut import Visit
from runtime.mqtt import make_client
from tests.support.common import gumei, rows_of, wait_until

SITE = "HH-01"
WITNESS = monitor_name(1)
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
UCUM = {
    "systolic_mmhg": "mm[Hg]",
    "diastolic_mmhg": "mm[Hg]",
    "mean_arterial_mmhg": "mm[Hg]",
    "pulse_bpm": "/min",
    "weight_kg": "kg",
    "height_cm": "cm",
    "bmi": "kg/m2",
    "body_fat_pct": "%",
    "temperature_c": "Cel",
    "spo2_pct": "%",
    "glucose_mmol_l": "mmol/L",
}


@dataclasses.dataclass
class Run:
    """What the simulated morning at the hut sent, and what the gateway made of it."""

    key: bytes
    cards: dict[str, str]  # pseudonym -> raw card (the test's ground truth only)
    expected: dict[
        str, list[tuple[str, str, dict[str, Any]]]
    ]  # pseudonym -> (device, type, values)
    implausible: dict[str, int]  # systolic value -> how many sent
    edge_rejected: Counter[str]
    agent: HutAgent
    witnessed: list[bytes]
    start_ms: int
    anonymous: int


@pytest.fixture(scope="module")
def run(
    stack: LocalStack,
    ingest_worker: Any,
    influx: InfluxClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Run]:
    start_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000) - 1000
    key = os.urandom(16)  # a fresh district key: this run's pseudonyms exist nowhere else
    rng = random.Random(5)
    witnessed: list[bytes] = []
    witness = make_client(stack.endpoint(WITNESS), WITNESS)  # a read-only monitor identity
    witness.on_message = lambda _c, _u, msg: witnessed.append(
        msg.topic.encode() + b" " + msg.payload
    )
    subscribed = threading.Event()
    witness.on_subscribe = lambda *_: subscribed.set()
    ep = stack.endpoint(WITNESS)
    witness.connect(ep.host, ep.port)
    witness.loop_start()
    witness.subscribe("gumei/v1/#", qos=1)
    assert subscribed.wait(10)

    queue = DurableQueue.open(tmp_path_factory.mktemp("hut") / "queue.db")
    publisher = Publisher(stack.endpoint(SITE), SITE, "health", queue)  # the hut's own identity
    publisher.start()
    with HealthHutSim(SITE, seed=9) as hut:
        sources = {d: SocketTransport(*addr) for d, addr in hut.endpoints().items()}
        agent = HutAgent(
            sources,
            hut.card_reader,
            SessionTracker(key, timeout_s=600),
            queue.put,
            publisher.notify,
        )
        agent.start()
        assert hut.wait_connected()
        sent = 0
        cards: dict[str, str] = {}
        expected: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
        edge_rejected: Counter[str] = Counter()
        implausible: Counter[str] = Counter()

        def visit(resident: Any, truth: Any, malformed: float = 0.0) -> Visit:
            nonlocal sent
            if resident is not None:  # tap first and let the gateway open the session
                hut.tap(resident.card)
                sent += 1
                assert agent.wait_for(lambda s: s.notifications >= sent, 10)
            hut.malformed_rate = malformed
            when = dt.datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0)
            v = hut.visit(None, when, truth)
            sent += len(v.sent)
            assert agent.wait_for(lambda s: s.notifications >= sent, 10)
            return v

        residents = make_residents(5, seed=21)
        for i, res in enumerate(residents):
            truth = measure(res, rng)
            if i == 3:
                truth = dataclasses.replace(
                    truth, systolic=400
                )  # decodes; the cloud must quarantine it
            if i == 4:
                truth = dataclasses.replace(truth, systolic=20)
            v = visit(res, truth)
            pseudonym = pseudonymize(key, res.card)
            cards[pseudonym] = res.card
            for s in v.sent:
                if s.expected is None:
                    continue
                if s.expected[0] == "blood_pressure" and i >= 3:
                    implausible[str(truth.systolic)] += 1
                    continue
                expected.setdefault(pseudonym, []).append((s.device, *s.expected))
        # a malformed visit: frames the gateway rejects (or, a plausible-looking systolic 400, the cloud)
        bad = residents[0]
        v = visit(bad, measure(bad, rng), malformed=1.0)
        for s in v.sent:
            if s.malformed == "implausible":
                implausible["400"] += 1
            elif s.malformed:
                edge_rejected[s.malformed] += 1
        agent.tracker.end()
        walk_in = visit(None, measure(residents[1], rng))  # no tap: delivered without a resident
        anonymous = sum(1 for s in walk_in.sent if s.expected)
        agent.flush()
        agent.stop()

    try:
        wait_until(
            lambda: len(queue) == 0 and publisher.stats.entries_acked == agent.stats.measurements,
            what="the publisher to deliver every queued measurement",
        )
    finally:
        publisher.stop()
        queue.close()
    total_implausible = sum(implausible.values())
    stored = sum(len(x) for x in expected.values()) + anonymous
    hdb = influx.health_db
    wait_until(
        lambda: (
            _count(
                influx,
                f"SELECT count(seq) FROM {m.HEALTH_MEASUREMENT.name} WHERE time >= {start_ms}ms",
                hdb,
            )
            >= stored
            and _count(
                influx,
                f"SELECT count(reason) FROM {m.QUARANTINE.name} WHERE code = 'implausible' AND time >= {start_ms}ms",
                hdb,
            )
            >= total_implausible
        ),
        what="health measurements and quarantine in InfluxDB",
    )
    witness.disconnect()
    witness.loop_stop()
    yield Run(
        key, cards, expected, implausible, edge_rejected, agent, witnessed, start_ms, anonymous
    )


def _count(influx: InfluxClient, q: str, db: str | None = None) -> int:
    """A count in the main database, or in the health database with db = influx.health_db."""
    s = influx.query(q, db=db)
    return int(s[0].values[0][1]) if s and s[0].values else 0


def _day() -> str:
    return dt.datetime.now(SHANGHAI).date().isoformat()


def _get(api_url: str, path: str, token: str | None, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(
        api_url + path,
        params=params or {"start": _day(), "end": _day()},
        headers=headers,
        timeout=30,
    )


@pytest.fixture(scope="module")
def health_token(stack: LocalStack) -> str:
    return stack.tokens().create("health e2e", "health")


def test_observations_exact_values_and_units(run: Run, api_url: str, health_token: str) -> None:
    assert len(run.expected) == 5  # residents 4 and 5 keep their other (plausible) instruments
    for pseudonym, want in run.expected.items():
        r = _get(api_url, f"/api/v1/health/residents/{pseudonym}/observations", health_token)
        assert r.status_code == 200, r.text
        got = [(o["device"], o["type"], o["values"]) for o in r.json()["observations"]]
        assert sorted(got, key=str) == sorted(want, key=str)
        for o in r.json()["observations"]:
            assert o["units"] == {k: UCUM[k] for k in o["values"] if k != "meal"}
            assert o["time"].endswith("+08:00")
    # implausible blood pressures were not stored for anyone
    for pseudonym in run.cards:
        r = _get(api_url, f"/api/v1/health/residents/{pseudonym}/observations", health_token)
        assert all(
            o["values"].get("systolic_mmhg") not in (20.0, 400.0) for o in r.json()["observations"]
        )


def test_fhir_export_validates_with_loinc_and_ucum(
    run: Run, api_url: str, health_token: str
) -> None:
    pseudonym, want = next(iter(run.expected.items()))
    r = _get(api_url, f"/api/v1/health/residents/{pseudonym}/fhir", health_token)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    doc = r.json()
    Bundle.model_validate(doc)
    fhir.validate(doc)  # the models plus bindings, LOINC property vs unit, device references
    obs = [e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Observation"]
    devices = {
        e["fullUrl"]: e["resource"]
        for e in doc["entry"]
        if e["resource"]["resourceType"] == "Device"
    }
    assert {o["subject"]["identifier"]["value"] for o in obs} == {pseudonym}
    assert all(o["performer"][0]["identifier"]["value"] == pseudonym for o in obs)  # self-measured
    # each Observation references its instrument, as the registry describes it
    assert {devices[o["device"]["reference"]]["identifier"][0]["value"] for o in obs} == {
        f"HH-01-{s}" for s in ("BP", "BC", "TEMP", "GLU", "SPO2")
    }
    assert {d["serialNumber"] for d in devices.values()} == {
        f"SIM-HH01-{s}-0001" for s in ("BP", "BC", "TEMP", "GLU", "SPO2")
    }
    (bp,) = [o for o in obs if o["code"]["coding"][0]["code"] == "85354-9"]
    bp_want = next(v for _, t, v in want if t == "blood_pressure")
    comps = {c["code"]["coding"][0]["code"]: c["valueQuantity"] for c in bp["component"]}
    assert comps["8480-6"] == {
        "value": bp_want["systolic_mmhg"],
        "unit": "mmHg",
        "system": "http://unitsofmeasure.org",
        "code": "mm[Hg]",
    }
    assert comps["8462-4"]["value"] == bp_want["diastolic_mmhg"]
    (temp,) = [o for o in obs if o["code"]["coding"][0]["code"] == "8310-5"]
    assert (
        temp["valueQuantity"]["value"]
        == next(v for _, t, v in want if t == "body_temperature")["temperature_c"]
    )
    assert temp["valueQuantity"]["code"] == "Cel"
    empty = _get(api_url, f"/api/v1/health/residents/r-{'0' * 32}/fhir", health_token)
    assert empty.status_code == 200 and "entry" not in empty.json()
    Bundle.model_validate(empty.json())


def test_quarantined_with_reasons_and_counted(run: Run, influx: InfluxClient) -> None:
    q = f"SELECT reason, payload FROM {m.QUARANTINE.name} WHERE code = 'implausible' AND time >= {run.start_ms}ms"
    rows = rows_of(
        influx, q, influx.health_db
    )  # health dead letters hold values: the health database
    stubs = rows_of(influx, q)  # the main database keeps their count only
    assert len(stubs) == len(rows) and all(
        r["payload"] == "" and "health database" in r["reason"] for r in stubs
    )
    reasons = Counter(
        r.split(": ", 1)[1] for r in {r["reason"] for r in rows}
    )  # distinct (device, seq)
    assert reasons == Counter(
        {
            f"systolic_mmhg {v} outside plausible range 40..300": n
            for v, n in run.implausible.items()
        }
    )
    assert all(r["reason"].startswith("HH-01-BP seq ") for r in rows)
    # frames the gateway could not decode never left it; it counted them by reason
    assert run.edge_rejected and run.agent.stats.rejected == run.edge_rejected
    assert run.agent.stats.taps == 6


def test_no_card_number_downstream_of_the_gateway(run: Run, influx: InfluxClient) -> None:
    assert len(run.witnessed) >= 2
    traffic = b"\n".join(run.witnessed)
    assert b"HH-01" in traffic and any(
        p.encode() in traffic for p in run.cards
    )  # the witness saw the batches
    stored = json.dumps(
        [
            s.values
            for s in influx.query(f"SELECT * FROM {m.HEALTH_MEASUREMENT.name}", db=influx.health_db)
        ]
    )
    stored += json.dumps(
        [s.values for s in influx.query(f"SELECT * FROM {m.QUARANTINE.name}", db=influx.health_db)]
    )
    stored += json.dumps([s.values for s in influx.query(f"SELECT * FROM {m.QUARANTINE.name}")])
    assert any(p in stored for p in run.cards)
    for card in run.cards.values():
        assert card.encode() not in traffic and card not in stored
        assert card[2:].encode() not in traffic and card[2:] not in stored  # not even the digits


def test_daily_aggregates_for_operators_and_health(
    run: Run,
    api_url: str,
    stack: LocalStack,
    influx: InfluxClient,
    registry: Registry,
    operator_token: str,
    health_token: str,
) -> None:
    with InfluxClient(
        stack.influx_config("aggregate")
    ) as own:  # the aggregator's own grants suffice
        Aggregator(own, registry).run_incremental()
    stored = sum(len(x) for x in run.expected.values()) + run.anonymous
    # health staff: exact figures
    r = _get(api_url, "/api/v1/health/daily", health_token, start=_day(), end=_day(), site=SITE)
    assert r.status_code == 200, r.text
    assert r.json()["k"] is None
    (row,) = r.json()["rows"]
    assert (
        row["visits"] == 5 and row["measurements"] == stored and row["anonymous"] == run.anonymous
    )
    assert (
        sum(row["by_type"].values()) == stored and row["by_type"]["blood_pressure"] == 4
    )  # 3 residents + walk-in
    assert row["abnormal_rate"] == pytest.approx(row["abnormal"] / stored)
    assert not row["suppressed"] and row["suppressed_types"] == []
    # operators: the hut total (5 residents + the walk-in) is shown; blood pressure (4 people) is not,
    # nor is a second type (complementary), so total minus the shown types never gives it back
    r = _get(api_url, "/api/v1/health/daily", operator_token, start=_day(), end=_day(), site=SITE)
    assert r.status_code == 200, r.text
    assert r.json()["k"] == 5
    (op,) = r.json()["rows"]
    assert op["visits"] == 5 and op["measurements"] == stored and not op["suppressed"]
    hidden = op["suppressed_types"]
    assert "blood_pressure" in hidden and len(hidden) >= 2
    assert {t: v for t, v in op["by_type"].items() if t not in hidden} == {
        t: v for t, v in row["by_type"].items() if t not in hidden
    }
    assert all(op["by_type"][t] is None and op["abnormal_by_type"][t] is None for t in hidden)
    for text in (r.text,):
        assert "resident" not in text and not any(p in text for p in run.cards)


def test_roles_and_input_checks(
    run: Run, api_url: str, operator_token: str, health_token: str
) -> None:
    pseudonym = next(iter(run.expected))
    for path in (
        f"/api/v1/health/residents/{pseudonym}/observations",
        f"/api/v1/health/residents/{pseudonym}/fhir",
    ):
        assert _get(api_url, path, None).status_code == 401
        assert _get(api_url, path, operator_token).status_code == 403
    bad = _get(api_url, "/api/v1/health/residents/1234567890/observations", health_token)
    assert bad.status_code == 422 and "resident" in bad.json()["detail"]
    back = _get(
        api_url,
        f"/api/v1/health/residents/{pseudonym}/observations",
        health_token,
        start="2026-11-27",
        end="2026-11-01",
    )
    assert back.status_code == 422 and "before start" in back.json()["detail"]
    garbled = _get(
        api_url, "/api/v1/health/daily", health_token, start="27/11/2026", end="2026-11-27"
    )
    assert garbled.status_code == 422 and "start" in garbled.json()["detail"]
    assert _get(api_url, "/api/v1/health/daily", None).status_code == 401


def test_batch_is_contract_shaped(run: Run) -> None:
    assert all(b" " in w for w in run.witnessed)
    payloads = [
        w.split(b" ", 1)
        for w in run.witnessed
        if w.startswith(b"gumei/v1/health/HH-01/measurements")
    ]
    assert payloads
    for _, body in payloads:
        HealthBatch.model_validate_json(body)


def test_gumei_sim_health_publishes_through_the_gateway_loop(
    run: Run, stack: LocalStack, influx: InfluxClient, tmp_path: Path
) -> None:
    key_file = tmp_path / "district.key"
    key_file.write_text(os.urandom(16).hex())
    key_file.chmod(0o600)
    before = _count(
        influx,
        f"SELECT count(seq) FROM {m.HEALTH_MEASUREMENT.name} WHERE time >= {run.start_ms}ms",
        influx.health_db,
    )
    ep = stack.endpoint(SITE)
    out = gumei(
        "sim",
        "health",
        "--port",
        str(ep.port),
        "--secrets",
        str(stack.root / "secrets" / "mqtt.json"),
        "--district-key-file",
        str(key_file),
        "--ca-file",
        str(ep.ca_file),
        "--visits",
        "3",
        "--seed",
        "4",
        "--malformed-rate",
        "0",
        timeout=60,
    ).stdout
    assert "hut HH-01: 3 visits, " in out and "frames rejected at the gateway: none" in out
    published = int(out.split(" published")[0].rsplit(" ", 1)[1])
    assert published >= 15  # five instruments per visit
    wait_until(
        lambda: (
            _count(
                influx,
                f"SELECT count(seq) FROM {m.HEALTH_MEASUREMENT.name} WHERE time >= {run.start_ms}ms",
                influx.health_db,
            )
            >= before + published
        ),
        what="simulated hut measurements in InfluxDB",
    )
