"""A fleet of simulated waste-station gateways in one event loop, each with its own MQTT connection.

Simulated time starts in the past and runs `warp` times faster than the wall clock until it
catches up with now, then in real time, so timestamps are never in the future (unless a gateway
is given a clock skew on purpose). Every reading a gateway accepts is recorded as ground truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import aiomqtt

from cloud.registry import Registry, Site
from contract import Status, WasteBatch, WasteReading, encode
from contract.days import DAY_MS, SHANGHAI_OFFSET_MS, local_hour
from contract.topics import status as status_topic
from contract.topics import waste_readings
from runtime.mqtt import MqttEndpoint

log = logging.getLogger(__name__)

# kg per station per day, and mean kg per deposit, by category (typical Shanghai estates).
DAILY_KG = {"wet": 120.0, "dry": 90.0, "recyclable": 40.0, "hazardous": 0.6}
MEAN_DEPOSIT_KG = {"wet": 1.3, "dry": 0.8, "recyclable": 1.6, "hazardous": 0.25}
SCALE_RESOLUTION_KG = 0.01
# After a lost connection, re-send what the broker acknowledged in the last minute before it,
# once, REPLAY_DELAY_S after reconnecting: Mosquitto 2.0 does not restore shared subscriptions
# after a restart, so messages it acknowledged just before or just after can miss the workers.
# Ingestion is idempotent on (device, seq), so a replay never double-counts. See docs/decisions.md.
REPLAY_WINDOW_S = 120.0
REPLAY_DELAY_S = 10.0
PUBACK_TIMEOUT_S = 10.0
# The demo's filling bin (docs/operations.md): bins are emptied at 06:00 and 18:00 Shanghai (the
# operations rules' collection hours); the filling scale gets a deposit every FILL_STEP_S wall
# seconds once the simulated clock has caught up, until its gross weight reaches FILL_TO of capacity.
COLLECTION_PERIOD_MS = 12 * 3_600_000
COLLECTION_OFFSET_MS = 6 * 3_600_000
FILL_STEP_S = 5.0
FILL_TO = 0.95
DEFAULT_CAPACITY_KG = 240.0  # a scale without capacity_kg (the operations rules' default)


def collection_index(ts_ms: int) -> int:
    """How many scheduled collections (06:00 and 18:00 Shanghai) came before ts_ms: a bin is
    emptied when this changes."""
    return (ts_ms + SHANGHAI_OFFSET_MS - COLLECTION_OFFSET_MS) // COLLECTION_PERIOD_MS


def hour_weight(hour: float) -> float:
    """Relative deposit rate by Shanghai hour: peaks 07-09 and 18-20, little at night."""
    morning = math.exp(-((hour - 8.0) ** 2) / 1.5)
    evening = math.exp(-((hour - 19.0) ** 2) / 1.5)
    return 0.05 + morning + 0.9 * evening


_MEAN_WEIGHT = sum(hour_weight(h / 10) for h in range(240)) / 240


def deposit_kg(rng: random.Random, category: str) -> float:
    """A deposit's net weight, lognormal around the category mean, rounded to the scale resolution."""
    kg = rng.lognormvariate(math.log(MEAN_DEPOSIT_KG[category]) - 0.18, 0.6)
    kg = min(max(kg, SCALE_RESOLUTION_KG), 40.0)
    return round(round(kg / SCALE_RESOLUTION_KG) * SCALE_RESOLUTION_KG, 2)


def poisson(rng: random.Random, lam: float) -> int:
    """Knuth's Poisson sampler for small lam; normal approximation for large."""
    if lam > 30:
        return max(0, int(rng.gauss(lam, math.sqrt(lam)) + 0.5))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


@dataclass
class GroundTruth:
    """Every reading the simulated gateways accepted, and how many the broker acknowledged."""

    readings: list[WasteReading] = field(default_factory=list)
    site_of: dict[str, str] = field(default_factory=dict)  # device -> site
    acked_messages: int = 0
    published_messages: int = 0
    replayed_messages: int = 0
    message_of: dict[tuple[str, int], bytes] = field(default_factory=dict)  # reading -> its payload
    acked_at: dict[bytes, list[float]] = field(default_factory=dict)  # payload -> PUBACK wall times
    events: list[tuple[float, str]] = field(default_factory=list)  # (wall time, what) for diagnosis
    latencies_ms: list[float] = field(default_factory=list)

    def add(self, site: str, readings: list[WasteReading]) -> None:
        self.readings.extend(readings)
        for r in readings:
            self.site_of[r.device] = site


@dataclass
class SimClock:
    """Simulated epoch ms: from start_ms at `warp`× speed, never ahead of the wall clock."""

    start_ms: int
    warp: float
    _mono0: float = field(default_factory=time.monotonic)

    def now_ms(self) -> int:
        sim = self.start_ms + int((time.monotonic() - self._mono0) * 1000 * self.warp)
        return min(sim, int(time.time() * 1000))

    def caught_up(self) -> bool:
        """Simulated time has reached the wall clock (it runs in real time from now on)."""
        return self.start_ms + (time.monotonic() - self._mono0) * 1000 * self.warp >= (
            time.time() * 1000
        )


class SimGateway:
    """One simulated gateway: scales, an in-memory outbox, reconnects and resends until acked."""

    def __init__(
        self,
        site: Site,
        endpoint: MqttEndpoint,
        clock: SimClock,
        truth: GroundTruth,
        seed: int,
        seq_base: int,
        skew_ms: int = 0,
    ) -> None:
        self.site = site
        self.endpoint = endpoint
        self.clock = clock
        self.truth = truth
        self.rng = random.Random(seed)
        self.scales = [
            (d.id, d.category.value) for d in site.devices if d.category and not d.retired
        ]
        self.seq = {d: seq_base for d, _ in self.scales}
        self.skew_ms = skew_ms
        self.outbox: deque[tuple[bytes, float]] = deque()
        self.last_ms = clock.now_ms()
        self.connected = False
        self.offline_until = 0.0  # monotonic time; while offline the gateway keeps weighing
        self.recent: deque[tuple[float, bytes]] = (
            deque()
        )  # (acked at, payload) within the replay window
        self.replay_at = 0.0
        self.replay_from = 0.0
        # the demo's filling bin: gross_kg on this scale's readings, rising past 90 % of capacity
        self.filling: str | None = None
        self.fill_step_kg = 0.0
        self.capacity = {d.id: d.capacity_kg or DEFAULT_CAPACITY_KG for d in site.devices}
        self.gross_kg = 0.0
        self.emptied = collection_index(self.last_ms)
        self.next_fill = 0.0  # monotonic time of the next filling deposit
        # the demo's killed gateway: at this monotonic time its connection is cut without a
        # DISCONNECT (the broker publishes its Last Will) and it never comes back
        self.kill_at = 0.0
        self.killed = False

    def fill(self, device: str, seconds: float) -> None:
        """Make `device` a bin that fills: its readings carry gross_kg, and once the simulated
        clock has caught up it gets a deposit every FILL_STEP_S until FILL_TO of capacity, about
        `seconds` after that (emptied again at each scheduled collection)."""
        if device not in dict(self.scales):
            raise ValueError(f"{device} is not an active scale of {self.site.id}")
        self.filling = device
        self.fill_step_kg = round(self.capacity[device] * FILL_TO * FILL_STEP_S / seconds, 2)

    def kill_after(self, seconds: float) -> None:
        """Cut this gateway off for good after `seconds`, as a power cut would (its Last Will)."""
        self.kill_at = time.monotonic() + seconds

    def _fill_readings(self, t1: int) -> list[WasteReading]:
        """The filling scale's extra deposit, when one is due (rising towards FILL_TO)."""
        assert self.filling is not None
        now = time.monotonic()
        full = self.gross_kg >= self.capacity[self.filling] * FILL_TO
        if full or not self.clock.caught_up() or now < self.next_fill:
            return []
        self.next_fill = now + FILL_STEP_S
        category = dict(self.scales)[self.filling]
        self.seq[self.filling] += 1
        return [
            WasteReading(
                device=self.filling,
                seq=self.seq[self.filling],
                ts=t1 + self.skew_ms,
                category=category,
                net_kg=self.fill_step_kg,
            )
        ]

    def _with_gross(self, readings: list[WasteReading]) -> list[WasteReading]:
        """The filling scale's readings with the bin's weight after each deposit."""
        out = []
        for r in sorted(readings, key=lambda r: r.ts):
            if r.device == self.filling:
                self.gross_kg = min(self.gross_kg + r.net_kg, 10_000.0)
                r = r.model_copy(update={"gross_kg": round(self.gross_kg, 2)})
            out.append(r)
        return out

    def go_offline(self, seconds: float) -> None:
        """Cut this gateway's network for a while (the scales keep weighing into the outbox)."""
        self.offline_until = time.monotonic() + seconds

    def generate(self) -> list[WasteReading]:
        """Deposits of this gateway's scales since the last call (Poisson by hour of day)."""
        t1 = self.clock.now_ms()
        t0, self.last_ms = self.last_ms, t1
        if t1 <= t0:
            return []
        if collection_index(t1) != self.emptied:
            self.emptied, self.gross_kg = collection_index(t1), 0.0
        hour = local_hour((t0 + t1) / 2)
        out = []
        for device, category in self.scales:
            per_ms = DAILY_KG[category] / MEAN_DEPOSIT_KG[category] / DAY_MS
            n = poisson(self.rng, per_ms * (t1 - t0) * hour_weight(hour) / _MEAN_WEIGHT)
            for ts in sorted(self.rng.randrange(t0, t1) for _ in range(n)):
                self.seq[device] += 1
                out.append(
                    WasteReading(
                        device=device,
                        seq=self.seq[device],
                        ts=ts + self.skew_ms,
                        category=category,
                        net_kg=deposit_kg(self.rng, category),
                    )
                )
        if self.filling is not None:
            out = self._with_gross(out + self._fill_readings(t1))
        return out

    def accept(self) -> int:
        """Generate readings, record them as truth, and queue them for publishing."""
        readings = self.generate()
        if readings:
            self.truth.add(self.site.id, readings)
            for i in range(0, len(readings), 1000):
                batch = WasteBatch(site=self.site.id, readings=readings[i : i + 1000])
                payload = encode(batch)
                for r in batch.readings:
                    self.truth.message_of[(r.device, r.seq)] = payload
                self.outbox.append((payload, time.monotonic()))
        return len(readings)

    def _client(self) -> aiomqtt.Client:
        ep = self.endpoint
        tls = None
        if ep.ca_file is not None:
            tls = aiomqtt.TLSParameters(
                ca_certs=str(ep.ca_file),
                certfile=str(ep.cert_file) if ep.cert_file else None,
                keyfile=str(ep.key_file) if ep.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        will = aiomqtt.Will(
            status_topic("waste", self.site.id),
            encode(Status(site=self.site.id, state="offline")),
            qos=1,
            retain=True,
        )
        return aiomqtt.Client(
            ep.host,
            ep.port,
            username=ep.username,
            password=ep.password,
            identifier=self.site.id,
            will=will,
            tls_params=tls,
            keepalive=ep.keepalive_s,
            timeout=30,
        )

    async def run(
        self,
        stop: asyncio.Event,
        tick_s: float,
        connect_gate: asyncio.Semaphore,
        flush_s: float = 60.0,
    ) -> None:
        """Publish until stop is set and the outbox is empty, or flush_s after stop at the latest."""
        backoff = 0.5
        deadline = 0.0
        while True:
            if stop.is_set():
                deadline = deadline or time.monotonic() + flush_s
                if not self.outbox or time.monotonic() > deadline:
                    return
            while time.monotonic() < self.offline_until and not stop.is_set():
                self.accept()
                await asyncio.sleep(tick_s)
            try:
                async with connect_gate:
                    client = self._client()
                    await client.__aenter__()
                self.connected, backoff = True, 0.5
                try:
                    await client.publish(
                        status_topic("waste", self.site.id), self._status(), qos=1, retain=True
                    )
                    if not await self._publish_loop(client, stop, tick_s):
                        if self.killed:
                            return
                        self._schedule_replay()
                        continue  # network cut: reconnect after the outage
                    offline = encode(
                        Status(site=self.site.id, state="offline", ts=int(time.time() * 1000))
                    )
                    await client.publish(
                        status_topic("waste", self.site.id), offline, qos=1, retain=True
                    )
                finally:
                    self.connected = False
                    if self.killed:
                        await self._abandon(client)
                    else:
                        await client.__aexit__(None, None, None)
                return
            except aiomqtt.MqttError as exc:
                self.connected = False
                self._schedule_replay()
                log.debug("%s: %s; reconnecting in %.1fs", self.site.id, exc, backoff)
                await asyncio.sleep(backoff * (0.5 + self.rng.random()))
                backoff = min(backoff * 2, 10.0)

    async def _publish_loop(
        self, client: aiomqtt.Client, stop: asyncio.Event, tick_s: float
    ) -> bool:
        """Publish ticks until stop (True) or until the gateway goes offline (False)."""
        while True:
            if time.monotonic() < self.offline_until:
                return False
            if self.kill_at and time.monotonic() >= self.kill_at:
                self._cut(client)
                return False
            if not stop.is_set():
                self.accept()
            self._replay_if_due()
            while self.outbox:
                payload, queued = self.outbox[0]
                self.truth.published_messages += 1
                # aiomqtt does not fail a pending publish when the connection drops: bound the wait.
                await client.publish(self.topic(), payload, qos=1, timeout=PUBACK_TIMEOUT_S)
                self.outbox.popleft()  # only after the PUBACK
                now = time.monotonic()
                self.truth.acked_at.setdefault(payload, []).append(time.time())
                self.recent.append((now, payload))
                while self.recent and self.recent[0][0] < now - REPLAY_WINDOW_S:
                    self.recent.popleft()
                self.truth.acked_messages += 1
                self.truth.latencies_ms.append((now - queued) * 1000)
            if stop.is_set():
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), tick_s * (0.8 + 0.4 * self.rng.random()))

    def _cut(self, client: aiomqtt.Client) -> None:
        """End the TCP connection without an MQTT DISCONNECT: the broker sees the connection
        drop and publishes this gateway's Last Will (offline, retained)."""
        self.killed = True
        self.truth.events.append((time.time(), f"{self.site.id} killed"))
        sock = client._client.socket()  # paho's socket: aiomqtt has no abort
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    async def _abandon(self, client: aiomqtt.Client) -> None:
        """Let go of a cut connection (paho notices the dead socket; no DISCONNECT reaches the
        broker, whose Will stands)."""
        deadline = time.monotonic() + 5.0
        while not client._disconnected.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # paho reads the end of the stream and reports it lost
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError, OSError):
            await asyncio.wait_for(client.__aexit__(None, None, None), 5.0)

    def _schedule_replay(self) -> None:
        """After a lost connection, re-send what the broker acknowledged shortly before it."""
        now = time.monotonic()
        self.truth.events.append((time.time(), f"{self.site.id} lost connection"))
        if not self.replay_at:
            self.replay_from = now - REPLAY_WINDOW_S / 2
        self.replay_at = now + REPLAY_DELAY_S

    def _replay_if_due(self) -> None:
        if self.replay_at and time.monotonic() >= self.replay_at:
            again = [(p, time.monotonic()) for t, p in self.recent if t >= self.replay_from]
            self.outbox.extendleft(reversed(again))
            self.truth.events.append((time.time(), f"{self.site.id} replays {len(again)} messages"))
            self.truth.replayed_messages += len(again)
            self.replay_at = 0.0

    made: int = 0  # tickets made (a transfer station); readings are in the ground truth

    def topic(self) -> str:
        """Where this gateway publishes its entries."""
        return waste_readings(self.site.id)

    def entries(self, payload: bytes) -> int:
        """How many entries a queued payload holds."""
        return len(WasteBatch.model_validate_json(payload).readings)

    def status_devices(self) -> list[str]:
        """The devices this gateway reports in its status."""
        return [d for d, _ in self.scales]

    def _status(self) -> bytes:
        devices = [{"device": d, "ok": True} for d in self.status_devices()]
        return encode(
            Status(
                site=self.site.id,
                state="online",
                ts=int(time.time() * 1000),
                agent_version="sim",
                buffered=len(self.outbox),
                devices=devices,
            )
        )


class Fleet:
    """Many simulated gateways in one event loop. `await run(stop)` until stop is set."""

    def __init__(
        self,
        registry: Registry,
        endpoint_of: Callable[[str], MqttEndpoint],
        warp: float = 60.0,
        start_ms: int | None = None,
        tick_s: float = 1.0,
        seed: int = 1,
        limit: int | None = None,
        skew_ms: dict[str, int] | None = None,
        fill: tuple[str, float] | None = None,
        kill: tuple[str, float] | None = None,
    ) -> None:
        """fill = (scale, seconds): that bin fills past 90 % in about that many seconds once the
        clock has caught up; kill = (site, seconds): that gateway is cut off for good after that
        many seconds (the demo's operations events, docs/operations.md)."""
        sites = [s for s in registry.sites if s.kind == "waste" and not s.retired][:limit]
        self.clock = SimClock(start_ms if start_ms is not None else int(time.time() * 1000), warp)
        self.truth = GroundTruth()
        seq_base = time.time_ns() // 1000  # microseconds: strictly increasing across restarts
        skew = skew_ms or {}
        self.gateways = [
            SimGateway(
                s,
                endpoint_of(s.id),
                self.clock,
                self.truth,
                seed * 100_003 + i,
                seq_base,
                skew.get(s.id, 0),
            )
            for i, s in enumerate(sites)
        ]
        self.tick_s = tick_s
        self.transfer: SimGateway | None = None  # the demo's transfer station (add_transfer)
        if fill is not None:
            device, seconds = fill
            owner = next((g for g in self.gateways if device in dict(g.scales)), None)
            if owner is None:
                raise ValueError(f"cannot fill {device}: not an active scale of this fleet")
            if not 0 < seconds <= 86_400:
                raise ValueError(f"fill seconds must be in (0, 86400], not {seconds}")
            owner.fill(device, seconds)
        if kill is not None:
            site, seconds = kill
            victim = next((g for g in self.gateways if g.site.id == site), None)
            if victim is None:
                raise ValueError(f"cannot kill {site}: not a waste station of this fleet")
            if not 0 <= seconds <= 86_400:
                raise ValueError(f"kill seconds must be in [0, 86400], not {seconds}")
            victim.kill_after(seconds)

    def add_transfer(self, registry: Registry, site_id: str, endpoint: MqttEndpoint) -> SimGateway:
        """A transfer station whose trucks collect this fleet's bins and are weighed on the
        weighbridge `site_id` (firmware_sim/transfer.py)."""
        from firmware_sim.transfer import SimTransferStation

        site = registry.site(site_id)
        if site is None or site.kind != "weighbridge" or not site.devices:
            raise ValueError(f"{site_id} is not a weighbridge with an indicator in the registry")
        station = SimTransferStation(
            site, endpoint, self.clock, self.truth, registry, time.time_ns() // 1000
        )
        self.transfer = station
        self.gateways.append(station)
        return station

    def unsent(self) -> int:
        """Readings still queued at their gateway (accepted, never acknowledged by the broker)."""
        return sum(g.entries(p) for g in self.gateways for p, _ in g.outbox)

    @property
    def connected(self) -> int:
        """Gateways connected right now."""
        return sum(1 for g in self.gateways if g.connected)

    async def run(self, stop: asyncio.Event, concurrent_connects: int = 64) -> None:
        """Run every gateway until stop is set; then flush what is queued and disconnect."""
        gate = asyncio.Semaphore(concurrent_connects)
        await asyncio.gather(*(g.run(stop, self.tick_s, gate) for g in self.gateways))
