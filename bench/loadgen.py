"""Known loads for the benchmark and the fault tests: valid waste batches with exact totals, and a
QoS 1 publisher (one gateway identity per site) that survives broker restarts.

The totals are kept in integer grams so "what InfluxDB holds equals what was published" is exact.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from cloud.registry import Registry, Site
from contract.models import WASTE_SCHEMA
from contract.topics import waste_readings
from runtime.mqtt import MqttEndpoint, connect_persistent, make_client


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to publish."""

    site: str
    topic: str
    payload: bytes
    readings: int
    first_ts: int


@dataclass
class Load:
    """Messages whose readings all fall in [start_ms, end_ms), with their exact totals."""

    messages: list[Outgoing] = field(default_factory=list)
    readings: int = 0
    net_g: int = 0
    start_ms: int = 0
    end_ms: int = 0

    def where(self) -> str:
        """An InfluxQL time condition selecting exactly this load's points."""
        return f"time >= {self.start_ms}ms AND time < {self.end_ms}ms"


def waste_sites(registry: Registry, count: int, skip: int = 0) -> list[Site]:
    """`count` active waste sites with at least one scale, after skipping `skip` of them."""
    sites = [
        s
        for s in registry.sites
        if s.kind == "waste" and not s.retired and any(not d.retired for d in s.devices)
    ]
    if len(sites) < skip + count:
        raise ValueError(f"the registry has {len(sites)} waste sites; {skip + count} needed")
    return sites[skip : skip + count]


def make_load(
    sites: Sequence[Site], messages: int, per_message: int, start_ms: int, seq_start: int = 1
) -> Load:
    """`messages` batches of `per_message` readings, round-robin over sites; ts unique per reading."""
    load = Load(start_ms=start_ms)
    seq = seq_start
    ts = start_ms
    for i in range(messages):
        site = sites[i % len(sites)]
        devices = [d for d in site.devices if not d.retired]
        readings = []
        first_ts = ts
        for j in range(per_message):
            d = devices[j % len(devices)]
            grams = 1 + (seq * 7919 + j) % 49_999
            readings.append(
                {
                    "device": d.id,
                    "seq": seq,
                    "ts": ts,
                    "category": str(d.category or "dry"),
                    "net_kg": grams / 1000,
                }
            )
            load.net_g += grams
            seq += 1
            ts += 1
        payload = json.dumps(
            {"schema": WASTE_SCHEMA, "site": site.id, "readings": readings}, separators=(",", ":")
        ).encode()
        load.messages.append(
            Outgoing(site.id, waste_readings(site.id), payload, per_message, first_ts)
        )
        load.readings += per_message
    load.end_ms = ts
    return load


class LoadPublisher:
    """QoS 1 publishing with one persistent MQTT v5 session per site (a gateway's own identity).

    paho keeps every unacknowledged message (also one published while disconnected) and resends
    it after a reconnect, so a broker restart loses nothing; a duplicate is harmless (point
    identity is (device, seq)). publish() from one thread; acks are counted on paho's threads.
    """

    def __init__(self, endpoint_of: Callable[[str], MqttEndpoint], sites: Sequence[str]) -> None:
        self._clients: dict[str, mqtt.Client] = {}
        self._connected: dict[str, threading.Event] = {}
        self._sent = 0
        self._acked = 0
        self._cond = threading.Condition()
        for site in sites:
            ep = endpoint_of(site)
            client = make_client(
                ep, site
            )  # a gateway's client id is its site id (bound by the broker)
            client.max_inflight_messages_set(1000)
            client.max_queued_messages_set(0)
            ready = threading.Event()
            client.on_connect = lambda _c, _u, _f, rc, _p, ready=ready: (
                None if rc.is_failure else ready.set()
            )
            client.on_disconnect = lambda *_a, ready=ready: ready.clear()
            client.on_publish = self._on_publish
            connect_persistent(client, ep)
            client.loop_start()
            self._clients[site] = client
            self._connected[site] = ready

    def _on_publish(self, *_args: object) -> None:
        with self._cond:
            self._acked += 1
            if self._acked >= self._sent:
                self._cond.notify_all()

    def wait_connected(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        for site, ready in self._connected.items():
            if not ready.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"publisher for {site} did not connect within {timeout:.0f}s")

    def publish(self, msg: Outgoing) -> None:
        with self._cond:
            self._sent += 1
        self._clients[msg.site].publish(msg.topic, msg.payload, qos=1)

    def publish_all(self, messages: Sequence[Outgoing]) -> None:
        for msg in messages:
            self.publish(msg)

    def pending(self) -> int:
        """Messages not yet acknowledged by the broker."""
        with self._cond:
            return self._sent - self._acked

    def wait_published(self, timeout: float = 120) -> None:
        """Block until the broker acknowledged everything published so far."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._acked >= self._sent, timeout):
                raise TimeoutError(
                    f"{self._sent - self._acked} messages still unacknowledged by the broker after {timeout:.0f}s"
                )

    def close(self) -> None:
        for client in self._clients.values():
            client.disconnect()
            client.loop_stop()


def paced(messages: Sequence[Outgoing], per_second: float) -> Iterator[tuple[float, Outgoing]]:
    """Yield messages at a steady rate (sleeping between them), with their scheduled time."""
    start = time.monotonic()
    for i, msg in enumerate(messages):
        due = start + i / per_second
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield due, msg
