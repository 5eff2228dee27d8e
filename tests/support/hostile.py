"""Harness for tests/system/test_hostile_gateway.py: a private stack with one real worker, an honest gateway
publishing a known ledger while an attacker with its own valid credentials does its worst, and the
checks that the honest ledger is stored to the gram."""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from cloud import measurements as m
from cloud import registry as registry_mod
from cloud.influx import InfluxClient
from cloud.ingest.handler import DEFAULT_MAX_AGE_DAYS
from contract.models import WASTE_SCHEMA
from contract.topics import waste_readings
from devstack.services import stop_process
from devstack.stack import LocalStack
from runtime.mqtt import MqttEndpoint, make_client, session_properties
from tests.support.common import rows_of

THREAD_DIED = "Exception in thread"  # what threading's excepthook prints when a worker thread dies


class Gateway:
    """One MQTT session with a site's own credentials and client id equal to the site id."""

    def __init__(self, endpoint: MqttEndpoint, site: str, inflight: int = 1000) -> None:
        self.site = site
        self.client = make_client(endpoint, site)
        self.client.max_inflight_messages_set(inflight)
        self.client.max_queued_messages_set(0)
        self.acks: dict[int, mqtt.ReasonCode] = {}
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.disconnects = 0
        self._cond = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.connect(endpoint.host, endpoint.port, keepalive=endpoint.keepalive_s)
        self.client.loop_start()
        assert self.connected.wait(10), f"{site}: no CONNACK"

    def _on_connect(
        self, _c: mqtt.Client, _u: object, _f: object, rc: mqtt.ReasonCode, _p: object
    ) -> None:
        if not rc.is_failure:
            self.disconnected.clear()
            self.connected.set()

    def _on_disconnect(self, *_: object) -> None:
        self.disconnects += 1
        self.connected.clear()
        self.disconnected.set()

    def _on_publish(
        self, _c: mqtt.Client, _u: object, mid: int, rc: mqtt.ReasonCode, _p: object
    ) -> None:
        with self._cond:
            self.acks[mid] = rc
            self._cond.notify_all()

    def send(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, timeout: float = 30
    ) -> mqtt.ReasonCode:
        """Publish and wait until sent (QoS 0) or acknowledged (PUBACK / PUBCOMP); the reason code."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        with self._cond:
            assert self._cond.wait_for(lambda: info.mid in self.acks, timeout), (
                f"{self.site}: no ack for {topic} (rc {info.rc})"
            )
            return self.acks.pop(info.mid)

    def send_nowait(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=qos, retain=retain)

    def wait_all(
        self, infos: list[mqtt.MQTTMessageInfo], timeout: float = 120
    ) -> list[mqtt.ReasonCode]:
        """Wait until every one of these publishes is sent / acknowledged; their reason codes."""
        mids = [i.mid for i in infos]
        with self._cond:
            ok = self._cond.wait_for(lambda: all(mid in self.acks for mid in mids), timeout)
            done = sum(1 for mid in mids if mid in self.acks)
            assert ok, (
                f"{self.site}: only {done} of {len(mids)} publishes acknowledged within {timeout}s"
            )
            return [self.acks.pop(mid) for mid in mids]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass(frozen=True)
class Reading:
    device: str
    seq: int
    ts: int
    category: str
    grams: int

    def as_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "seq": self.seq,
            "ts": self.ts,
            "category": self.category,
            "net_kg": self.grams / 1000,
        }


@dataclass
class Ledger:
    """Readings of one site with distinct (device, seq) and ts, and known grams; what was acknowledged."""

    site: str
    devices: list[tuple[str, str]]  # (device id, registered category)
    start_ms: int
    first_seq: int = 1
    seq: int = 0
    sent: dict[tuple[str, int], Reading] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(12))

    def __post_init__(self) -> None:
        self.seq = self.first_seq

    def make(self, n: int) -> list[Reading]:
        out = []
        for _ in range(n):
            dev, cat = self.devices[self.seq % len(self.devices)]
            out.append(
                Reading(
                    dev,
                    self.seq,
                    self.start_ms + (self.seq - self.first_seq + 1) * 1000,
                    cat,
                    self.rng.randint(1, 30_000),
                )
            )
            self.seq += 1
        return out

    def payload(self, readings: list[Reading], **extra: Any) -> bytes:
        return json.dumps(
            {
                "schema": WASTE_SCHEMA,
                "site": self.site,
                "readings": [r.as_json() for r in readings],
                **extra,
            }
        ).encode()

    def acknowledged(self, readings: list[Reading]) -> None:
        for r in readings:
            self.sent[(r.device, r.seq)] = r


class HonestTraffic(threading.Thread):
    """The honest gateway publishing QoS 1 batches until stopped (and at least min_messages)."""

    def __init__(
        self,
        gw: Gateway,
        ledger: Ledger,
        per_message: int = 20,
        min_messages: int = 10,
        max_messages: int = 400,
        interval_s: float = 0.02,
    ) -> None:
        super().__init__(daemon=True, name="honest")
        self.gw, self.ledger = gw, ledger
        self.per_message, self.min_messages, self.max_messages, self.interval_s = (
            per_message,
            min_messages,
            max_messages,
            interval_s,
        )
        self.readings: list[Reading] = []
        self.errors: list[str] = []
        self._stop_evt = threading.Event()

    def run(self) -> None:
        topic = waste_readings(self.ledger.site)
        n = 0
        while n < self.max_messages and (n < self.min_messages or not self._stop_evt.is_set()):
            batch = self.ledger.make(self.per_message)
            try:
                rc = self.gw.send(topic, self.ledger.payload(batch), qos=1, timeout=60)
            except AssertionError as exc:
                self.errors.append(str(exc))
                return
            if rc.is_failure:
                self.errors.append(f"PUBACK {rc}")
                return
            self.ledger.acknowledged(batch)
            self.readings.extend(batch)
            n += 1
            time.sleep(self.interval_s)

    def finish(self, timeout: float = 120) -> list[Reading]:
        self._stop_evt.set()
        self.join(timeout)
        assert not self.is_alive(), "the honest gateway did not finish publishing"
        assert not self.errors, f"the honest gateway could not publish: {self.errors}"
        return self.readings


def ns(ms: int) -> int:
    return ms * 1_000_000


class Hostile:
    """A private broker and influxd, one real `gumei ingest` worker, an honest and an attacking gateway."""

    def __init__(
        self,
        root: Path,
        registry: registry_mod.Registry,
        worker: str,
        honest: str,
        attacker: str,
        honest_start_ms: int,
        attacker_start_ms: int,
    ) -> None:
        self.worker_name, self.honest_site, self.attacker_site = worker, honest, attacker
        self.registry = registry
        self.stack = LocalStack(root, registry)
        self.stack.start()
        self.config = self.stack.write_cloud_config(registry_mod.DEFAULT_PATH)
        self.influx = InfluxClient(self.stack.influx_config())
        self.log = self.stack.root / "logs" / "ingest.log"
        self.proc: subprocess.Popen[bytes] = self._spawn()
        self.honest = Ledger(honest, self.devices(honest), honest_start_ms)
        # a seq space of its own: an attack that mixes H's seqs with X's devices cannot collide with X's ledger
        self.attacker_ledger = Ledger(
            attacker, self.devices(attacker), attacker_start_ms, first_seq=1_000_000
        )
        self.h = Gateway(self.stack.endpoint(honest), honest)
        self.recoveries: list[str] = []
        self.log_mark = 0
        self.t0_ns = time.time_ns()

    def devices(self, site: str) -> list[tuple[str, str]]:
        s = self.registry.site_index()[site]
        return [(d.id, str(d.category)) for d in s.devices if not d.retired]

    # -- the worker -------------------------------------------------------------------

    def _spawn(self) -> subprocess.Popen[bytes]:
        # the production default horizon (the session's tests replay older history; see conftest)
        proc = self.stack.spawn(
            "ingest",
            "ingest",
            "--config",
            str(self.config),
            "--name",
            self.worker_name,
            env={"GUMEI_INGEST__MAX_AGE_DAYS": str(DEFAULT_MAX_AGE_DAYS)},
        )
        deadline = time.monotonic() + 30
        while self.stack.worker_ready(self.worker_name, proc) is None:
            assert proc.poll() is None, self.stack.log_of("ingest")
            assert time.monotonic() < deadline, "worker did not subscribe"
            time.sleep(0.1)
        return proc

    def log_since_mark(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[self.log_mark :]

    def mark(self) -> None:
        """Start of a test: remember where the worker's log and the clock are."""
        self.log_mark = len(self.log.read_text(errors="replace")) if self.log.exists() else 0
        self.t0_ns = time.time_ns()

    def worker_failure(self) -> str | None:
        """Why the worker cannot be ingesting any more (process gone, a thread died), else None."""
        if self.proc.poll() is not None:
            return f"worker process exited with {self.proc.returncode}"
        text = self.log_since_mark()
        if THREAD_DIED in text:
            tail = text[text.index(THREAD_DIED) :].splitlines()
            last = next(
                (ln for ln in reversed(tail[:80]) if ln and not ln.startswith(" ")), tail[0]
            )
            return f"{tail[0].strip()} -> {last.strip()[:300]}"
        return None

    def recover(self, why: str) -> None:
        """Replace a broken worker: stop it, discard its session (and the poison in flight), start it again."""
        self.recoveries.append(why)
        stop_process(self.proc)
        wiper = make_client(self.stack.endpoint(self.worker_name), self.worker_name)
        props = session_properties(expiry_s=0)
        done = threading.Event()
        wiper.on_connect = lambda *_: done.set()
        ep = self.stack.endpoint(self.worker_name)
        wiper.connect(ep.host, ep.port, clean_start=True, properties=props)
        wiper.loop_start()
        done.wait(10)
        wiper.disconnect()
        wiper.loop_stop()
        self.proc = self._spawn()

    # -- InfluxDB checks ----------------------------------------------------------------

    def wait_stored(self, want: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until want() holds, failing at once when the worker is broken."""
        deadline = time.monotonic() + timeout
        while True:
            if want():
                return
            failure = self.worker_failure()
            if failure:
                raise AssertionError(f"worker broken while waiting for {what}: {failure}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.1)

    def stored_rows(
        self, site_prefix: str, lo_ms: int | None = None, hi_ms: int | None = None
    ) -> list[dict[str, Any]]:
        """Waste readings of devices starting with site_prefix (any site tag), optionally in a ts range."""
        where = f"device =~ /^{site_prefix}-/"
        if lo_ms is not None and hi_ms is not None:
            where += f" AND time >= {ns(lo_ms)} AND time <= {ns(hi_ms) + 999_999}"
        return rows_of(
            self.influx,
            f"SELECT net_kg, seq, site, category, device FROM {m.WASTE_READING.name} WHERE {where}",
        )

    def stored_of(self, readings: list[Reading]) -> list[dict[str, Any]]:
        if not readings:
            return []
        site = readings[0].device.rsplit("-", 1)[0]
        return self.stored_rows(site, min(r.ts for r in readings), max(r.ts for r in readings))

    def dead_letters(
        self, site: str | None = None, since_ns: int | None = None
    ) -> list[dict[str, Any]]:
        where = [f"time >= {self.t0_ns if since_ns is None else since_ns}"]
        if site:
            where.append(f"site = '{site}'")
        return rows_of(
            self.influx, f"SELECT * FROM {m.QUARANTINE.name} WHERE {' AND '.join(where)}"
        )

    def dead_entries(self, site: str | None = None) -> int:
        """Entries dead-lettered (a folded dead letter counts all it stands for: the worker's budget
        folds a flood of one site's dead letters into one record with the exact total)."""
        return sum(int(r.get("entries") or 1) for r in self.dead_letters(site))

    def assert_honest_intact(self, readings: list[Reading], timeout: float = 30) -> None:
        """Every honest reading of this test stored exactly (count and grams); nothing in the honest
        site's name that the honest gateway did not send; the worker alive and still acknowledging."""
        want = {(r.device, r.seq): r for r in readings}
        lo, hi = min(r.ts for r in readings), max(r.ts for r in readings)
        self.wait_stored(
            lambda: len(self.stored_rows(self.honest_site, lo, hi)) >= len(want),
            timeout,
            f"{len(want)} honest readings stored",
        )
        rows = self.stored_rows(self.honest_site, lo, hi)
        got = {(r["device"], int(r["seq"])) for r in rows}
        assert len(rows) == len(want) and got == set(want), (
            f"{len(rows)} rows for {len(want)} honest readings"
        )
        assert sum(round(float(r["net_kg"]) * 1000) for r in rows) == sum(
            r.grams for r in want.values()
        )
        self.assert_no_forgery()
        assert self.proc.poll() is None, "the worker process died"
        final = self.honest.make(5)
        assert not self.h.send(
            waste_readings(self.honest_site), self.honest.payload(final)
        ).is_failure
        self.honest.acknowledged(final)
        self.wait_stored(
            lambda: len(self.stored_of(final)) == 5, 20, "a final honest message stored"
        )

    def assert_no_forgery(self) -> None:
        """Everything stored under the honest site's devices or site tag was sent by it, to the gram."""
        rows = self.stored_rows(self.honest_site)
        rows += rows_of(
            self.influx,
            f"SELECT net_kg, seq, site, category, device FROM {m.WASTE_READING.name} "
            f"WHERE site = '{self.honest_site}' AND device !~ /^{self.honest_site}-/",
        )
        bad = []
        for r in rows:
            mine = self.honest.sent.get((r["device"], int(r["seq"])))
            if (
                mine is None
                or r["site"] != self.honest_site
                or round(float(r["net_kg"]) * 1000) != mine.grams
                or r["category"] != mine.category
            ):
                bad.append(r)
        assert not bad, (
            f"{len(bad)} stored points in {self.honest_site}'s name it never sent, e.g. {bad[:3]}"
        )

    def close(self) -> None:
        self.h.close()
        self.influx.close()
        self.stack.stop()

    # -- the attacker -------------------------------------------------------------------

    @contextmanager
    def attacker(self) -> Iterator[Gateway]:
        gw = Gateway(self.stack.endpoint(self.attacker_site), self.attacker_site)
        try:
            yield gw
        finally:
            gw.close()

    @contextmanager
    def under_attack(
        self, min_messages: int = 10, per_message: int = 20
    ) -> Iterator[tuple[Gateway, HonestTraffic]]:
        """The attacker's session while the honest gateway publishes; afterwards the honest checks."""
        traffic = HonestTraffic(
            self.h, self.honest, per_message=per_message, min_messages=min_messages
        )
        with self.attacker() as x:
            traffic.start()
            try:
                yield x, traffic
            finally:
                readings = traffic.finish()
        self.assert_honest_intact(readings)


def everything_in_the_database(
    influx: InfluxClient, limit: int = 200_000
) -> Iterator[tuple[str, str]]:
    """(database.measurement, text of one row incl. its tags and column names) for every row of every
    measurement of both databases (the non-personal one and the per-resident health one)."""
    for db in (influx.config.database, influx.config.health_database):
        names = [v[0] for s in influx.query("SHOW MEASUREMENTS", db=db) for v in s.values]
        for name in names:
            quoted = '"' + name.replace('"', '\\"') + '"'
            for s in influx.query(f"SELECT * FROM {quoted} WHERE time >= 0 LIMIT {limit}", db=db):
                header = " ".join(s.columns) + " " + json.dumps(s.tags)
                for v in s.values:
                    yield f"{db}.{name}", header + " " + json.dumps(v, default=str)
        for s in influx.query("SHOW SERIES", db=db):
            for v in s.values:
                yield f"{db} SHOW SERIES", str(v)


def files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.exists():
            yield from (p for p in root.rglob("*") if p.is_file())
