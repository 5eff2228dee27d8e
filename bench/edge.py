"""`gumei bench edge`: footprint of one real agent process and its replay rate after an outage.

One run: a private TLS Mosquitto, a simulated station (3 pty indicators + 1 Modbus transmitter),
the agent as `gumei edge run`; CPU and RSS over a steady-state span; then the broker is
stopped, a backlog is committed to the agent's queue (as an outage would leave it), the broker
is started again, and the time from the agent's CONNACK until the whole backlog is acknowledged
gives readings/s.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from bench import proc_stats
from bench.report import Figure, Goal, Report
from broker.dynsec import gateway_identity, monitor_identity, monitor_name
from broker.tls import make_server_cert
from contract import WasteReading, now_ms
from contract.topics import waste_readings
from devstack.mosquitto import Mosquitto
from devstack.services import stop_process
from edge.queue import DurableQueue
from firmware_sim.scales.station import SimStation
from runtime.mqtt import MqttEndpoint, connect_persistent, make_client
from runtime.system import ServiceError, write_private

SITE = "WS-0901"


@dataclass(frozen=True)
class EdgeBench:
    """Figures of one `gumei bench edge` run."""

    scales: int
    seconds: float
    cpu_pct: float
    rss_mb: float
    peak_rss_mb: float
    deposits: int
    backlog: int
    reconnect_s: float
    replay_s: float
    replay_rate: float
    replay_cpu_pct: float
    replay_peak_rss_mb: float
    received_rate: float  # backlog readings/s as seen by a subscriber (QoS 1, persistent session)


# The gateway's budget (docs/edge.md): a small ARM box shared with the indicators' serial links.
CPU_GOAL_PCT = 5.0  # % of one core in steady state
RSS_GOAL_MB = 100.0  # peak RSS of the agent process
REPLAY_GOAL = 1_000.0  # readings/s after an outage: a busy station's day (~3 000) in 3 s


def edge_report(r: EdgeBench, via_cli: bool) -> Report:
    """One run's figures in the benchmarks' one report format, with the gateway's budget as goals."""
    how = "gumei edge run" if via_cli else "python -m edge.agent"
    return Report(
        figures=[
            Figure(
                "replay after an outage, acknowledged by the broker",
                "readings/s",
                r.replay_rate,
                r.replay_s,
                f"{r.backlog} readings in {r.replay_s:.2f} s from the CONNACK",
            ),
            Figure(
                "the same backlog at a QoS 1 subscriber", "readings/s", r.received_rate, r.replay_s
            ),
        ],
        notes=[
            f"steady state ({how}, {r.scales} scales, {r.seconds:.0f} s): CPU {r.cpu_pct:.2f} % of "
            f"one core, RSS {r.rss_mb:.1f} MiB (peak {r.peak_rss_mb:.1f} MiB), "
            f"{r.deposits} deposits delivered",
            f"replay: reconnect {r.reconnect_s:.1f} s after the broker came back (back-off "
            f"included), CPU {r.replay_cpu_pct:.0f} % from broker start to the last PUBACK, "
            f"peak RSS {r.replay_peak_rss_mb:.1f} MiB",
        ],
        goals=[
            Goal(
                "steady-state CPU, share of one core",
                r.cpu_pct / 100,
                CPU_GOAL_PCT / 100,
                "max",
                "%",
            ),
            Goal(
                "peak RSS (steady state and replay)",
                max(r.peak_rss_mb, r.replay_peak_rss_mb),
                RSS_GOAL_MB,
                "max",
                "MiB",
            ),
            Goal("replay rate after an outage", r.replay_rate, REPLAY_GOAL, "min", "readings/s"),
        ],
    )


class Reader:
    """A plain QoS 1 subscriber with a persistent session (restored after a broker restart) that
    counts the distinct seqs of one device on the waste readings topics."""

    def __init__(self, endpoint: MqttEndpoint, device: str) -> None:
        self.device, self.seqs = device, set[int]()
        self._lock = threading.Lock()
        self.client = make_client(
            endpoint, str(endpoint.username)
        )  # a monitor identity: client id = username
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(waste_readings("+"), qos=1)
        # back before the agent; paho annotates the delays int, its reconnect wait takes floats
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.2)  # type: ignore[arg-type]
        connect_persistent(self.client, endpoint)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        seqs = [r["seq"] for r in json.loads(msg.payload)["readings"] if r["device"] == self.device]
        with self._lock:
            self.seqs.update(seqs)

    def count(self) -> int:
        with self._lock:
            return len(self.seqs)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


EMPTY_COUNTERS = {"accepted": 0, "acked": 0, "dropped": 0}


def queue_counters(path: Path) -> dict[str, int]:
    """The agent queue's persisted counters, read without writing (another process owns it).

    Zeros while the agent has not created the file or its schema yet (the file appears a moment before
    its tables do)."""
    if not path.exists():
        return dict(EMPTY_COUNTERS)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return {
            **EMPTY_COUNTERS,
            **dict(conn.execute("SELECT name, value FROM counters").fetchall()),
        }
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return dict(EMPTY_COUNTERS)
        raise
    finally:
        conn.close()


def _connected_at(log: Path, skip: int) -> float:
    """Epoch seconds of the agent's (skip+1)-th "connected to" log line (the CONNACK, ms resolution)."""
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if "connected to" in ln]
    stamp = lines[skip][:23]  # "2026-11-27 19:00:54,895" in the agent's local time
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _wait(
    probe: Callable[[], bool],
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes],
    log: Path,
    interval: float = 0.05,
) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if proc.poll() is not None:
            raise ServiceError(
                f"agent exited with {proc.returncode}: {log.read_text(errors='replace')[-1500:]}"
            )
        if time.monotonic() > deadline:
            raise ServiceError(f"timed out waiting for {what}")
        time.sleep(interval)


def run_edge_bench(
    seconds: float = 60.0,
    backlog: int = 20_000,
    fps: float = 1.0,
    via_cli: bool = False,
    progress: Callable[[str], None] = lambda s: None,
) -> EdgeBench:
    """Run the benchmark in a temp dir; returns the figures.

    The agent runs as `python -m edge.agent` (what the systemd unit starts), or with via_cli as
    `python -m gumei.cli edge run` (which also imports the cloud tools' libraries).
    """
    with tempfile.TemporaryDirectory(prefix="gumei-edge-bench-") as tmp:
        root = Path(tmp)
        password, reader_pw = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
        monitor = monitor_name(1)
        broker = Mosquitto(
            root / "mosquitto",
            [gateway_identity(SITE), monitor_identity(monitor)],
            {SITE: password, monitor: reader_pw},
            tls=make_server_cert(root / "tls"),
        )
        broker.start()
        assert broker.tls is not None
        reader = Reader(
            MqttEndpoint(
                port=broker.tls_port,
                username=monitor,
                password=reader_pw,
                ca_file=broker.tls.ca_cert,
            ),
            f"{SITE}-S9",
        )
        station = SimStation(SITE, serial=3, modbus=1, fps=fps)
        station.start(now_ms())
        creds = root / "mqtt-password"
        write_private(creds, password + "\n")
        qpath = root / "queue.db"
        cfg = root / "gateway.toml"
        cfg.write_text(
            station.config_text(
                broker_url=f"mqtts://127.0.0.1:{broker.tls_port}",
                ca_file=broker.tls.ca_cert if broker.tls else None,
                credentials_file=creds,
                queue_path=qpath,
                backoff_max_s=2.0,
            )
        )
        log = root / "agent.log"
        with open(log, "wb") as out:
            entry = ["gumei.cli", "edge", "run"] if via_cli else ["edge.agent"]
            agent = subprocess.Popen(
                [sys.executable, "-m", *entry, "--config", str(cfg)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )
        try:
            _wait(
                lambda: "connected to" in log.read_text(errors="replace"),
                30,
                "the agent to connect",
                agent,
                log,
            )
            progress(
                f"agent pid {agent.pid} connected; warming up 5 s, then measuring {seconds:.0f} s"
            )
            time.sleep(5)
            acked0, cpu0, t0 = (
                queue_counters(qpath)["acked"],
                proc_stats.cpu_seconds(agent.pid),
                time.monotonic(),
            )
            time.sleep(seconds)
            wall = time.monotonic() - t0
            steady = proc_stats.sample("agent", agent.pid, wall)
            cpu_pct = 100 * (proc_stats.cpu_seconds(agent.pid) - cpu0) / wall
            deposits = queue_counters(qpath)["acked"] - acked0

            progress(
                f"broker stopped; committing a backlog of {backlog} readings to the agent's queue"
            )
            broker.stop()
            dev = f"{SITE}-S9"
            with DurableQueue.open(qpath) as q:
                ts = now_ms() - 3_600_000
                for i in range(backlog):

                    def make(s: int, i: int = i) -> WasteReading:
                        return WasteReading(
                            device=dev,
                            seq=s,
                            ts=ts + i,
                            category="dry",
                            net_kg=round(0.05 + (i % 500) / 100, 2),
                        )

                    q.put(dev, make)
            c = queue_counters(qpath)
            pending = c["accepted"] - c["acked"] - c["dropped"]
            target = c["acked"] + pending
            progress(f"broker started again; {pending} entries pending")
            cpu1 = proc_stats.cpu_seconds(agent.pid)
            connects = log.read_text(errors="replace").count("connected to")
            broker.start()
            t_start, wall_start = time.monotonic(), time.time()
            _wait(
                lambda: queue_counters(qpath)["acked"] >= target,
                300,
                "the backlog to be acknowledged",
                agent,
                log,
                interval=0.01,
            )
            t_done, wall_done = time.monotonic(), time.time()
            _wait(
                lambda: reader.count() >= backlog,
                300,
                "the backlog at a subscriber",
                agent,
                log,
                interval=0.01,
            )
            wall_received = time.time()
            replay = proc_stats.sample("agent", agent.pid, t_done - t_start)
            replay_cpu = 100 * (proc_stats.cpu_seconds(agent.pid) - cpu1) / (t_done - t_start)
            wall_connack = _connected_at(log, connects)
            replay_s = max(wall_done - wall_connack, 1e-3)
            return EdgeBench(
                scales=len(station.devices()),
                seconds=wall,
                cpu_pct=cpu_pct,
                rss_mb=steady.rss_mb,
                peak_rss_mb=steady.peak_rss_mb,
                deposits=deposits,
                backlog=pending,
                reconnect_s=wall_connack - wall_start,
                replay_s=replay_s,
                replay_rate=pending / replay_s,
                replay_cpu_pct=replay_cpu,
                replay_peak_rss_mb=replay.peak_rss_mb,
                received_rate=backlog / max(wall_received - wall_connack, 1e-3),
            )
        finally:
            reader.close()
            stop_process(agent)
            station.stop()
            broker.stop()
