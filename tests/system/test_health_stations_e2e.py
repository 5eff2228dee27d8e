"""The height/weight station and the staff's waist/hip entries through the whole real pipeline:
simulated station frames and terminal entries -> socket transport -> HutAgent (card sessions,
decoders) -> durable queue -> Publisher (MQTT as HH-01) -> ingestion worker -> InfluxDB, each
measurement stored once with its resident's pseudonym and its tier; malformed station frames are
rejected at the gateway by reason and never leave it."""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from cloud import measurements as m
from cloud.health.triage import triage
from cloud.influx import InfluxClient
from contract import pseudonymize
from devstack.stack import LocalStack
from edge.ble.height_weight import FRAME_UUID
from edge.ble.staff_entry import ENTRY_UUID
from edge.ble.transport import SocketTransport
from edge.health_session import CARD_TAP_UUID, SessionTracker
from edge.hut import HutAgent
from edge.publisher import Publisher
from edge.queue import DurableQueue
from firmware_sim.health import PeripheralServer, make_residents
from firmware_sim.health.height_weight import malformed, measure_station, tape_entry
from tests.support.common import rows_of, wait_until

SITE = "HH-01"


@dataclass
class Run:
    expected: dict[str, list[tuple[str, dict[str, Any]]]]  # pseudonym -> (type, values)
    rejected: Counter[str]  # malformed station frames sent, by reason
    agent: HutAgent


def handled(agent: HutAgent, n: int) -> bool:
    """Wait until the agent has handled n notifications."""
    return agent.wait_for(lambda s: s.notifications >= n, 10)


@pytest.fixture(scope="module")
def run(
    stack: LocalStack, ingest_worker: Any, influx: InfluxClient, tmp_path_factory: Any
) -> Iterator[Run]:
    key = os.urandom(16)  # this run's pseudonyms exist nowhere else
    rng = random.Random(11)
    queue = DurableQueue.open(tmp_path_factory.mktemp("stations") / "queue.db")
    publisher = Publisher(stack.endpoint(SITE), SITE, "health", queue)
    publisher.start()
    servers = {d: PeripheralServer(d).start() for d in ("HH-01-CARD", "HH-01-HW", "HH-01-TAPE")}
    sources = {d: SocketTransport(*s.address) for d, s in servers.items()}
    agent = HutAgent(
        sources, "HH-01-CARD", SessionTracker(key, timeout_s=600), queue.put, publisher.notify
    )
    agent.start()
    assert all(s.wait_connected(10) for s in servers.values())
    expected: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    rejected: Counter[str] = Counter()
    sent = 0
    try:
        for person in make_residents(6, seed=31):
            servers["HH-01-CARD"].notify(CARD_TAP_UUID, person.card.encode())
            sent += 1
            assert handled(agent, sent)
            good = measure_station(person, rng)
            bad = malformed(person, rng)
            entry, want = tape_entry(person, rng)
            servers["HH-01-HW"].notify(FRAME_UUID, bad.data)
            servers["HH-01-HW"].notify(FRAME_UUID, good.data)
            servers["HH-01-TAPE"].notify(ENTRY_UUID, entry)
            sent += 3
            assert handled(agent, sent)
            assert good.expected is not None and bad.reason is not None
            rejected[bad.reason] += 1
            expected[pseudonymize(key, person.card)] = [good.expected, want]
        agent.flush()
        wait_until(
            lambda: len(queue) == 0 and publisher.stats.entries_acked == agent.stats.measurements,
            what="the publisher to deliver every queued measurement",
        )
    finally:
        agent.stop()
        publisher.stop()
        queue.close()
        for s in servers.values():
            s.close()
    names = " OR ".join(f"\"resident\" = '{p}'" for p in expected)
    q = f"SELECT count(seq) FROM {m.HEALTH_MEASUREMENT.name} WHERE {names}"

    def stored() -> int:
        series = influx.query(q, db=influx.health_db)
        return int(series[0].values[0][1]) if series else 0

    wait_until(lambda: stored() >= 2 * len(expected), what="every measurement stored")
    yield Run(expected, rejected, agent)


def test_every_measurement_stored_once_with_its_pseudonym_and_tier(
    run: Run, influx: InfluxClient
) -> None:
    for pseudonym, want in run.expected.items():
        q = f"SELECT * FROM {m.HEALTH_MEASUREMENT.name} WHERE \"resident\" = '{pseudonym}'"
        rows = rows_of(influx, q, influx.health_db)
        got = sorted(
            (r["type"], {k: r[k] for k in values}, r["tier"])
            for r in rows
            for t, values in want
            if r["type"] == t
        )
        assert got == sorted((t, v, triage(t, v).tier) for t, v in want), pseudonym
        assert {r["device"] for r in rows} == {"HH-01-HW", "HH-01-TAPE"}


def test_malformed_station_frames_never_leave_the_gateway(run: Run) -> None:
    assert run.agent.stats.measurements == 2 * len(run.expected)
    assert sum(run.rejected.values()) == len(run.expected)
    assert run.agent.stats.rejected == run.rejected
