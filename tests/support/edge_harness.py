"""Run a real `gumei edge run` process against a simulated station; read its queue file as truth."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.edge import queue_counters
from cloud import registry as registry_mod
from cloud.influx import InfluxClient
from contract import now_ms
from devstack.services import stop_process
from devstack.stack import LocalStack
from firmware_sim.scales.station import SimStation
from runtime.system import write_private
from tests.support.common import rows_of, wait_until


@contextmanager
def stack_with_worker(
    root: Path, registry: registry_mod.Registry, worker: str = "ingest-1"
) -> Iterator[LocalStack]:
    """A private broker and influxd with one subscribed ingestion worker (an identity ingest-N), stopped afterwards."""
    s = LocalStack(root, registry)
    s.start()
    try:
        config = s.write_cloud_config(registry_mod.DEFAULT_PATH)
        s.wait_ready(worker, s.spawn("ingest", "ingest", "--config", str(config), "--name", worker))
        yield s
    finally:
        s.stop()


@dataclass
class AgentRun:
    """One gateway: its config and queue under `root`, its process spawned on demand."""

    root: Path
    station: SimStation
    broker_url: str
    ca_file: Path | None
    password: str
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.queue = self.root / "queue.db"
        self.log = self.root / "agent.log"
        self.config = self.root / "gateway.toml"
        creds = self.root / "mqtt-password"
        write_private(creds, self.password + "\n")
        self.t0_ms = now_ms()
        self.station.start(self.t0_ms)
        self.config.write_text(
            self.station.config_text(
                broker_url=self.broker_url,
                ca_file=self.ca_file,
                credentials_file=creds,
                queue_path=self.queue,
                keep_acked_s=3600,
                backoff_max_s=1.0,
                status_interval_s=1.0,
                log_stats_s=2.0,
                replay_delay_s=3.0,
            )
        )

    def start(self) -> None:
        self.starts += 1
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gumei.cli", "edge", "run", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )

    def kill9(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.log_text()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        stop_process(self.proc)
        return self.proc.returncode

    def close(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.station.stop()

    def counters(self) -> dict[str, int]:
        return queue_counters(self.queue)

    def replay_owed(self) -> bool:
        """True while the agent owes a replay (recorded in its queue file)."""
        conn = sqlite3.connect(f"file:{self.queue}?mode=ro", uri=True)
        try:
            return bool(
                conn.execute(
                    "SELECT count(*) FROM meta WHERE name LIKE 'replay_from_ms:%'"
                ).fetchone()[0]
            )
        finally:
            conn.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def truth(self) -> list[dict[str, Any]]:
        """Every entry the agent ever accepted (acknowledged ones are retained: keep_acked_s = 3600)."""
        conn = sqlite3.connect(f"file:{self.queue}?mode=ro", uri=True)
        try:
            return [
                json.loads(p) for (p,) in conn.execute("SELECT payload FROM entries ORDER BY id")
            ]
        finally:
            conn.close()


def stored(influx: InfluxClient, site: str, since_ms: int) -> list[dict[str, Any]]:
    """Waste readings of a site stored in InfluxDB since a time."""
    return rows_of(
        influx,
        f"SELECT device, seq, net_kg FROM waste_reading WHERE site = '{site}' "
        f"AND time >= {(since_ms - 60_000) * 1_000_000}",
    )


def assert_exact(truth: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    """InfluxDB holds exactly the accepted readings: same (device, seq) set, count and grams."""
    keys = [(r["device"], r["seq"]) for r in rows]
    assert len(keys) == len(set(keys)), "a reading stored twice"
    want = {(t["device"], t["seq"]) for t in truth}
    missing, extra = sorted(want - set(keys)), sorted(set(keys) - want)
    assert not missing and not extra, (
        f"{len(missing)} missing, e.g. {missing[:5]}; {len(extra)} not accepted, e.g. {extra[:5]}"
    )
    assert sum(round(float(r["net_kg"]) * 1000) for r in rows) == sum(
        round(float(t["net_kg"]) * 1000) for t in truth
    )


def assert_seq_contiguous(truth: list[dict[str, Any]]) -> None:
    """Per device, seq continues across restarts: strictly increasing by one, no gap, no repeat."""
    by_dev: dict[object, list[int]] = defaultdict(list)
    for t in truth:
        by_dev[t["device"]].append(int(t["seq"]))
    for seqs in by_dev.values():
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def finish(run: AgentRun) -> list[dict[str, Any]]:
    """Stop the scales, let the agent deliver what it holds, stop it cleanly; return the truth."""
    run.station.stop()
    wait_until(
        lambda: (c := run.counters())["acked"] == c["accepted"], timeout=30, what="queue drained"
    )
    # after a reconnect the broker may have acknowledged messages before the workers resubscribed
    # (Mosquitto 2.0.11): only the owed replay makes those arrive, so let it run before stopping
    wait_until(lambda: not run.replay_owed(), timeout=30, what="no replay owed")
    assert run.terminate() == 0, run.log_text()[-2000:]
    return run.truth()
