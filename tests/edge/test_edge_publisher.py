"""The shared Publisher on a real TLS broker: batches, PUBACK-only acks, status, replay, refusals.

A private Mosquitto (no ingestion workers): these messages must not reach the session's database.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from broker.dynsec import gateway_identity, monitor_identity, monitor_name
from broker.tls import make_server_cert
from contract import HealthMeasurement, WasteReading, decode_health, decode_waste
from contract.topics import health_measurements, parse, status, waste_readings
from devstack.mosquitto import Mosquitto
from edge.publisher import Publisher, PublishTuning
from edge.queue import DurableQueue
from runtime.mqtt import MqttEndpoint, make_client
from tests.support.common import wait_until


class Broker:
    """A private TLS Mosquitto with two gateways and read-only monitor identities."""

    def __init__(self, root: Path) -> None:
        identities = [gateway_identity("HH-01"), gateway_identity("WS-0707")]
        identities += [monitor_identity(monitor_name(i)) for i in (1, 2, 3)]
        self.passwords = {i.username: f"pw-{i.username}" for i in identities}
        self.mosquitto = Mosquitto(
            root, identities, self.passwords, tls=make_server_cert(root / "tls")
        )
        self.mosquitto.start()

    def endpoint(self, user: str) -> MqttEndpoint:
        m = self.mosquitto
        assert m.tls is not None
        return MqttEndpoint(
            port=m.tls_port, username=user, password=self.passwords[user], ca_file=m.tls.ca_cert
        )


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = Broker(tmp_path_factory.mktemp("edge-pub-broker"))
    yield b
    b.mosquitto.stop()


class Listener:
    """A plain subscriber with a monitor identity (client id = its name): every message on some topics."""

    def __init__(self, broker: Broker, topics: list[str], name: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        ep = broker.endpoint(name)
        self.client = make_client(ep, name)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(ep.host, ep.port, clean_start=True)
        self.client.subscribe([(t, 1) for t in topics])
        self.client.loop_start()
        assert subscribed.wait(10)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def listener(broker: Broker, request: pytest.FixtureRequest) -> Iterator[Any]:
    made: list[Listener] = []

    def make(*topics: str) -> Listener:
        made.append(Listener(broker, list(topics), monitor_name(len(made) + 1)))
        return made[-1]

    yield make
    for m in made:
        m.close()


def bp(device: str) -> Any:
    return lambda seq: HealthMeasurement(
        device=device,
        seq=seq,
        ts=1_764_201_600_000 + seq % 1000,
        type="blood_pressure",
        values={"systolic_mmhg": 120 + seq % 40, "diastolic_mmhg": 80},
    )


def test_health_entries_go_in_batches_of_at_most_1000_and_only_pubacks_ack(
    broker: Broker, listener: Any, tmp_path: Path
) -> None:
    site = "HH-01"
    lis = listener(health_measurements(site), status("health", site))
    with DurableQueue.open(tmp_path / "q.db") as q:
        for _ in range(2500):
            q.put(f"{site}-BP", bp(f"{site}-BP"))
        q.put(
            "WS-0101-S1",
            lambda s: WasteReading(device="WS-0101-S1", seq=s, ts=1, category="dry", net_kg=1.0),
        )
        pub = Publisher(
            broker.endpoint(site), site, "health", q, tuning=PublishTuning(replay_delay_s=3600)
        )
        pub.start()
        try:
            wait_until(lambda: len(q) == 1, what="2500 health entries acknowledged")
            assert pub.stats.entries_acked == 2500 and pub.stats.refused == 0
            assert [x.kind for x in q.peek()] == ["waste"]  # another kind is not this publisher's
        finally:
            pub.stop()
    wait_until(
        lambda: (
            sum(
                len(b.valid)
                for b in (
                    decode_health(p, parse(health_measurements(site)))
                    for p in lis.on(health_measurements(site))
                )
            )
            == 2500
        ),
        what="2500 measurements seen by a subscriber",
    )
    batches = [
        decode_health(p, parse(health_measurements(site)))
        for p in lis.on(health_measurements(site))
    ]
    assert [len(b.valid) for b in batches] == [1000, 1000, 500] and not any(
        b.rejected for b in batches
    )
    states = [json.loads(p)["state"] for p in lis.on(status("health", site))]
    assert states[0] == "online" and states[-1] == "offline"


def test_an_owed_replay_survives_a_restart_and_resends_the_window_once(
    broker: Broker, listener: Any, tmp_path: Path
) -> None:
    site = "WS-0707"
    dev = f"{site}-S1"
    lis = listener(waste_readings(site))
    tuning = PublishTuning(replay_delay_s=0.5, backoff_min_s=0.1, backoff_max_s=0.2)
    with DurableQueue.open(tmp_path / "q.db") as q:
        for i in range(30):

            def make(s: int, i: int = i) -> WasteReading:
                return WasteReading(
                    device=dev, seq=s, ts=1_764_201_600_000 + i, category="dry", net_kg=1.0
                )

            q.put(dev, make)
        first = Publisher(
            broker.endpoint(site), site, "waste", q, tuning=PublishTuning(replay_delay_s=3600)
        )
        first.start()
        wait_until(lambda: q.stats().acked == 30, what="30 acknowledged")
        first.stop()  # before its replay was due: the replay stays owed, in the queue file
        assert q.get_meta("replay_from_ms:waste") is not None and first.stats.replays == 0
        second = Publisher(
            broker.endpoint(site), site, "waste", q, tuning=tuning
        )  # as after a restart
        second.start()
        try:
            wait_until(lambda: second.stats.replays == 1, what="the replay")
            assert second.stats.entries_replayed == 30 and q.stats().retained == 30
            assert q.get_meta("replay_from_ms:waste") is None
        finally:
            second.stop()
    seen = [
        r.seq
        for p in lis.on(waste_readings(site))
        for r in decode_waste(p, parse(waste_readings(site))).valid
    ]
    assert len(seen) == 60 and len(set(seen)) == 30  # sent once, replayed once


def test_wrong_password_keeps_everything_queued_and_says_why(
    broker: Broker, tmp_path: Path
) -> None:
    site = "WS-0707"
    good = broker.endpoint(site)
    bad = MqttEndpoint(**{**good.model_dump(), "password": "wrong"})
    with DurableQueue.open(tmp_path / "q.db") as q:
        q.put(
            f"{site}-S1",
            lambda s: WasteReading(device=f"{site}-S1", seq=s, ts=1, category="dry", net_kg=1.0),
        )
        pub = Publisher(
            bad, site, "waste", q, tuning=PublishTuning(backoff_min_s=0.1, backoff_max_s=0.2)
        )
        pub.start()
        try:
            wait_until(lambda: pub.stats.connect_failures >= 2, what="two refused connections")
        finally:
            pub.stop()
        assert "refused" in pub.stats.last_error and pub.stats.connects == 0 and len(q) == 1
