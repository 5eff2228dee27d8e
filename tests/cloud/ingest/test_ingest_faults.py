"""Ingestion under failure, on a private broker and influxd: kill -9 a worker, stop influxd,
restart the broker, poison batches. What InfluxDB holds must equal exactly what was published."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.loadgen import Load, LoadPublisher, Outgoing, make_load, paced, waste_sites
from cloud import registry as registry_mod
from cloud.influx import InfluxClient
from devstack.services import stop_process
from devstack.stack import LocalStack
from runtime.mqtt import make_client
from tests.support.common import count, gumei, wait_until

DAY_MS = 86_400_000
BASE_MS = 1_609_459_200_000  # 2021-01-01T00:00Z; each scenario gets its own day


class Publishing(threading.Thread):
    """A background publisher thread; what went wrong is in .errors for the test to report."""

    errors: list[BaseException]


class Faults:
    """A private stack plus helpers to run workers and a paced publisher against it."""

    def __init__(self, root: Path, registry: registry_mod.Registry) -> None:
        self.stack = LocalStack(root, registry)
        self.stack.start()
        self.config = self.stack.write_cloud_config(registry_mod.DEFAULT_PATH)
        self.influx = InfluxClient(self.stack.influx_config())
        self.sites = waste_sites(registry, 8)
        self.day = 0
        self.seq = 1

    def load(self, messages: int, per_message: int) -> Load:
        load = make_load(self.sites, messages, per_message, BASE_MS + self.day * DAY_MS, self.seq)
        self.day += 1
        self.seq += load.readings
        return load

    def worker(self, name: str) -> subprocess.Popen[bytes]:
        """Start `gumei ingest` as identity `name` (ingest-N) and wait until its session is up.

        Every scenario's workers join the one group the broker allows; end_sessions() afterwards,
        since an offline persistent member keeps getting its share queued (Mosquitto, #2662).
        """
        proc = self.stack.spawn(name, "ingest", "--config", str(self.config), "--name", name)
        wait_until(
            lambda: proc.poll() is not None or self.stack.worker_ready(name, proc),
            what=f"{name} subscribed",
        )
        assert proc.poll() is None, self.stack.log_of(name)
        return proc

    def end_sessions(self, *names: str) -> None:
        """Delete stopped workers' persistent sessions (clean start, expiry 0), so they leave the group."""
        for name in names:
            ep = self.stack.endpoint(name)
            client, up = make_client(ep, name), threading.Event()
            client.on_connect = lambda _c, _u, _f, rc, _p, up=up: (
                None if rc.is_failure else up.set()
            )
            client.connect(ep.host, ep.port, clean_start=True)
            client.loop_start()
            assert up.wait(10), f"{name} could not end its session"
            client.disconnect()
            client.loop_stop()

    def stored(self, load: Load) -> int:
        return count(self.influx, f"SELECT count(net_kg) FROM waste_reading WHERE {load.where()}")

    def stored_grams(self, load: Load) -> int:
        series = self.influx.query(f"SELECT sum(net_kg) FROM waste_reading WHERE {load.where()}")
        return round(series[0].values[0][1] * 1000) if series else 0

    def publish_in_background(self, load: Load, per_second: float) -> Publishing:
        """Publish the load at a steady rate from one gateway session per site, until all are acked."""
        errors: list[BaseException] = []

        def run() -> None:
            pub = LoadPublisher(self.stack.endpoint, [s.id for s in self.sites])
            try:
                pub.wait_connected()
                for _due, msg in paced(load.messages, per_second):
                    pub.publish(msg)
                pub.wait_published(90)
            except (TimeoutError, OSError) as exc:  # reported by the test through .errors
                errors.append(exc)
            finally:
                pub.close()

        thread = Publishing(target=run, daemon=True)
        thread.errors = errors
        thread.start()
        return thread

    def assert_exact(self, load: Load, publisher: Publishing) -> None:
        publisher.join(120)
        assert not publisher.errors, publisher.errors
        wait_until(
            lambda: self.stored(load) >= load.readings,
            timeout=90,
            what=f"{load.readings} readings stored",
        )
        assert self.stored(load) == load.readings
        assert self.stored_grams(load) == load.net_g

    def close(self) -> None:
        self.influx.close()
        self.stack.stop()


@pytest.fixture(scope="module")
def faults(
    tmp_path_factory: pytest.TempPathFactory, registry: registry_mod.Registry
) -> Iterator[Faults]:
    f = Faults(tmp_path_factory.mktemp("faults"), registry)
    yield f
    f.close()


def rss_kb(pid: int) -> int:
    for text in Path(f"/proc/{pid}/status").read_text().splitlines():
        if text.startswith("VmRSS:"):
            return int(text.split()[1])
    return 0


def test_kill_9_a_worker_of_two_mid_stream_loses_and_doubles_nothing(faults: Faults) -> None:
    w1, w2 = faults.worker("ingest-1"), faults.worker("ingest-2")
    load = faults.load(300, 50)
    publisher = faults.publish_in_background(load, per_second=100)
    wait_until(
        lambda: faults.stored(load) > load.readings // 4, what="a quarter of the stream stored"
    )
    os.kill(w1.pid, signal.SIGKILL)
    w1.wait(10)
    # the supervisor (systemd Restart=always) brings it back under the same client id: Mosquitto
    # keeps the dead member's in-flight and queued share in its session (eclipse-mosquitto#2662)
    w1 = faults.worker("ingest-1")
    faults.assert_exact(load, publisher)
    stop_process(w1)
    stop_process(w2)
    faults.end_sessions("ingest-1", "ingest-2")


def outage(faults: Faults, seconds: float) -> None:
    w = faults.worker("ingest-1")
    load = faults.load(max(200, int(seconds * 40)), 50)
    publisher = faults.publish_in_background(load, per_second=40)
    wait_until(lambda: faults.stored(load) > 0, what="first readings stored")
    base = rss_kb(w.pid)
    assert faults.stack.influxd is not None
    faults.stack.influxd.stop()
    peak = base
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # the outage itself: sample the worker's memory meanwhile
        peak = max(peak, rss_kb(w.pid))
        time.sleep(0.25)
    faults.stack.influxd.start()
    faults.assert_exact(load, publisher)
    assert w.poll() is None, "the worker must resume by itself, without a restart"
    # bounded: at most Receive Maximum messages (2000 x ~7 KB here) are held, never the backlog
    assert peak - base < 150_000, f"worker RSS grew by {peak - base} kB during the outage"
    stop_process(w)
    faults.end_sessions("ingest-1")


def test_influxd_down_for_a_few_seconds_loses_nothing_and_resumes(faults: Faults) -> None:
    outage(faults, 6)


@pytest.mark.soak
def test_influxd_down_for_30_seconds_loses_nothing_and_resumes(faults: Faults) -> None:
    outage(faults, 30)


def test_poison_batch_is_split_and_only_the_bad_lines_quarantined(faults: Faults) -> None:
    w = faults.worker("ingest-1")
    site = faults.sites[0]
    device = next(d for d in site.devices if not d.retired)
    start = BASE_MS + 50 * DAY_MS
    # plant an integer gross_kg in this shard: a float gross_kg is then a type conflict (400)
    faults.influx.write_lines(
        f"waste_reading,area={site.area},category=dry,device={device.id},site={site.id} gross_kg=1i {start * 1_000_000}\n".encode()
    )
    readings = [
        {
            "device": device.id,
            "seq": 900_000 + i,
            "ts": start + 1 + i,
            "category": "dry",
            "net_kg": 1.5,
            **({"gross_kg": 20.5} if i % 5 == 0 else {}),
        }
        for i in range(20)
    ]
    pub = LoadPublisher(faults.stack.endpoint, [site.id])
    try:
        pub.wait_connected()
        good = make_load([site], 1, 10, start + 10_000, 950_000).messages[0]
        for payload in (
            json.dumps(
                {"schema": "gumei.waste.readings.v1", "site": site.id, "readings": readings}
            ).encode(),
            good.payload,
        ):
            pub.publish(Outgoing(site.id, good.topic, payload, 0, 0))
        pub.wait_published(30)
    finally:
        pub.close()
    where = f"time > {start}ms AND time < {start + 20_000}ms AND site = '{site.id}'"
    wait_until(
        lambda: (
            count(faults.influx, f"SELECT count(net_kg) FROM waste_reading WHERE {where}")
            == 16 + 10
        ),
        what="the 16 clean readings and the next message stored",
    )
    wait_until(
        lambda: (
            count(
                faults.influx,
                f"SELECT count(entries) FROM quarantine WHERE code = 'write_rejected' AND site = '{site.id}'",
            )
            == 4
        ),
        what="the 4 conflicting lines quarantined",
    )
    out = gumei(
        "quarantine",
        "list",
        "--config",
        str(faults.config),
        "--site",
        site.id,
        "--code",
        "write_rejected",
        "--json",
        "--since",
        "1h",
    )
    letters = [json.loads(x) for x in out.stdout.splitlines()]
    assert len(letters) == 4
    assert all("conflict" in d["reason"] and "gross_kg=20.5" in d["payload"] for d in letters)
    assert w.poll() is None
    stop_process(w)
    faults.end_sessions("ingest-1")


def test_bench_smoke(tmp_path: Path) -> None:
    """`gumei bench ingest` at a tiny size, so it does not rot (figures are not asserted)."""
    out = gumei(
        "bench",
        "ingest",
        "--scale",
        "0.01",
        "--latency-seconds",
        "1",
        "--workdir",
        str(tmp_path),
        timeout=240,
    )
    for what in (
        "MQTT ceiling",
        "InfluxDB ceiling",
        "1-reading messages, 2 worker",
        "100-reading messages, 1 worker",
        "p99",
        "goal",
    ):
        assert what in out.stdout, out.stdout[-2000:]
