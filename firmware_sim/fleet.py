"""A simulated fleet of waste-station gateways publishing contract-v1 readings over MQTT (QoS 1).

Simulated time starts in the past and runs `warp` times faster than the wall clock until it
catches up with now, then runs in real time, so timestamps are never in the future.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from cloud.registry import Registry, Site
from contract import Status, WasteBatch, WasteReading, encode
from contract.topics import status as status_topic
from contract.topics import waste_readings
from gumei.mqtt import MqttEndpoint, Will, make_client

# kg per station per day, and mean kg per deposit, by category (typical Shanghai estates).
DAILY_KG = {"wet": 120.0, "dry": 90.0, "recyclable": 40.0, "hazardous": 0.6}
MEAN_DEPOSIT_KG = {"wet": 1.3, "dry": 0.8, "recyclable": 1.6, "hazardous": 0.25}
SCALE_RESOLUTION_KG = 0.01


def hour_weight(hour: float) -> float:
    """Relative deposit rate by Shanghai hour: peaks 07-09 and 18-20, little at night."""
    morning = math.exp(-((hour - 8.0) ** 2) / 1.5)
    evening = math.exp(-((hour - 19.0) ** 2) / 1.5)
    return 0.05 + morning + 0.9 * evening


_MEAN_WEIGHT = sum(hour_weight(h / 10) for h in range(240)) / 240


def deposit_kg(rng: random.Random, category: str) -> float:
    """A deposit's net weight, lognormal around the category mean, rounded to the scale resolution."""
    mean = MEAN_DEPOSIT_KG[category]
    kg = rng.lognormvariate(math.log(mean) - 0.18, 0.6)
    kg = min(max(kg, SCALE_RESOLUTION_KG), 40.0)
    return round(round(kg / SCALE_RESOLUTION_KG) * SCALE_RESOLUTION_KG, 2)


@dataclass
class Scale:
    """One simulated scale: its device id, category and next sequence number."""

    device: str
    category: str
    seq: int


class Gateway:
    """One simulated gateway: its own MQTT connection, credentials, status and Last Will."""

    def __init__(self, site: Site, endpoint: MqttEndpoint, seq_base: int) -> None:
        self.site = site
        self.scales = [Scale(d.id, d.category.value, seq_base) for d in site.devices if d.category]
        will = Will(status_topic("waste", site.id), encode(Status(site=site.id, state="offline")))
        self.client = make_client(endpoint, f"sim-{site.id}", will=will)
        self.client.on_connect = self._on_connect
        self.endpoint = endpoint
        self.published = 0
        self.acked = 0
        self.client.on_publish = self._on_publish

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object) -> None:
        if not reason.is_failure:
            status = Status(site=self.site.id, state="online", ts=int(time.time() * 1000), agent_version="sim",
                            buffered=0, devices=[{"device": s.device, "ok": True} for s in self.scales])  # type: ignore[list-item]
            client.publish(status_topic("waste", self.site.id), encode(status), qos=1, retain=True)

    def _on_publish(self, *_: object) -> None:
        self.acked += 1

    def start(self) -> None:
        self.client.connect_async(self.endpoint.host, self.endpoint.port, keepalive=self.endpoint.keepalive_s)
        self.client.loop_start()

    def publish(self, readings: list[WasteReading]) -> None:
        for i in range(0, len(readings), 1000):
            batch = WasteBatch(site=self.site.id, readings=readings[i : i + 1000])
            self.client.publish(waste_readings(self.site.id), encode(batch), qos=1)
            self.published += 1

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Fleet:
    """Many gateways driven by one clock thread. start(), then stop()."""

    def __init__(
        self,
        registry: Registry,
        endpoint_of: Callable[[str], MqttEndpoint],
        warp: float = 60.0,
        start_ms: int | None = None,
        tick_s: float = 1.0,
        seed: int = 1,
        on_readings: Callable[[list[WasteReading]], None] | None = None,
    ) -> None:
        seq_base = time.time_ns() // 1000  # microseconds: strictly increasing across restarts
        sites = [s for s in registry.sites if s.kind == "waste" and not s.retired]
        self.gateways = [Gateway(s, endpoint_of(s.id), seq_base) for s in sites]
        self.warp = warp
        self.tick_s = tick_s
        self.rng = random.Random(seed)
        now = int(time.time() * 1000)
        self.sim_ms = start_ms if start_ms is not None else now
        self.on_readings = on_readings
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleet-clock", daemon=True)

    def start(self) -> None:
        for g in self.gateways:
            g.start()
        self._thread.start()

    def _advance(self) -> int:
        """Move simulated time on by one tick; never past the wall clock."""
        now = int(time.time() * 1000)
        step = int(self.tick_s * 1000 * self.warp)
        new = min(self.sim_ms + step, now)
        return max(new, self.sim_ms)

    def readings_between(self, gateway: Gateway, t0: int, t1: int) -> list[WasteReading]:
        """Deposits of one gateway's scales in [t0, t1), Poisson by hour of day."""
        out: list[WasteReading] = []
        if t1 <= t0:
            return out
        hour = (((t0 + t1) / 2 + 8 * 3_600_000) % 86_400_000) / 3_600_000
        for scale in gateway.scales:
            per_ms = DAILY_KG[scale.category] / MEAN_DEPOSIT_KG[scale.category] / 86_400_000
            lam = per_ms * (t1 - t0) * hour_weight(hour) / _MEAN_WEIGHT
            n = _poisson(self.rng, lam)
            for ts in sorted(self.rng.randrange(t0, t1) for _ in range(n)):
                scale.seq += 1
                out.append(WasteReading(device=scale.device, seq=scale.seq, ts=ts, category=scale.category,  # type: ignore[arg-type]
                                        net_kg=deposit_kg(self.rng, scale.category)))
        return out

    def step(self) -> int:
        """Publish one tick of readings for every gateway; return how many readings."""
        t0 = self.sim_ms
        t1 = self._advance()
        total = 0
        for g in self.gateways:
            readings = self.readings_between(g, t0, t1)
            if readings:
                g.publish(readings)
                if self.on_readings:
                    self.on_readings(readings)
                total += len(readings)
        self.sim_ms = t1
        self.sent += total
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            self.step()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for g in self.gateways:
            g.stop()


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's Poisson sampler (lam is small per tick); normal approximation when large."""
    if lam > 30:
        return max(0, int(rng.gauss(lam, math.sqrt(lam)) + 0.5))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
