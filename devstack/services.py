"""Start and stop private service processes on free ports (influxd here; Mosquitto in devstack.mosquitto)."""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cloud.influx import InfluxConfig
from runtime.system import ServiceError, find_binary

_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, and that this process has not
    handed out before: a port picked for one service and not bound yet (e.g. while the others of
    its stack start) is never picked again for another."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    """Wait until something accepts on 127.0.0.1:port, failing early if proc exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"process exited with {proc.returncode}; log:\n{tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceError(f"port {port} not ready after {timeout:.0f}s; log:\n{tail(log)}")


def tail(path: Path, lines: int = 30) -> str:
    """Last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL after timeout."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@dataclass
class Influxd:
    """A private influxd 1.x with a temp data dir and HTTP auth enabled.

    Lifecycle: construct, start() (creates the admin user and database), stop().
    """

    workdir: Path
    database: str = "gumei"
    username: str = "gumei"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "influxd.log"

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        rpc = free_port()
        conf = self.workdir / "influxdb.conf"
        conf.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{self.workdir}/meta"
[data]
  dir = "{self.workdir}/data"
  wal-dir = "{self.workdir}/wal"
  query-log-enabled = false
  cache-max-memory-size = "1g"
  max-series-per-database = 0
  max-values-per-tag = 0
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = true
  log-enabled = false
  max-body-size = 0
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
"""
        )
        return conf

    def start(self, timeout: float = 30) -> None:
        conf = self.write_config()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [find_binary("influxd"), "-config", str(conf)], stdout=log, stderr=log
            )
        wait_for_port(self.port, self.proc, timeout, self.log)
        self._bootstrap(timeout)

    def _bootstrap(self, timeout: float) -> None:
        """Create the admin user (allowed while none exists) and the database."""
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while True:
                try:
                    r = client.post(
                        "/query",
                        data={
                            "q": f"CREATE USER \"{self.username}\" WITH PASSWORD '{self.password}' WITH ALL PRIVILEGES"
                        },
                    )
                    if r.status_code in (200, 401, 403):
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise ServiceError(f"influxd did not answer; log:\n{tail(self.log)}")
                time.sleep(0.1)
            # the project's databases (cloud/influx_grants.py): main, health, records
            defaults = InfluxConfig()
            for db in (self.database, defaults.health_database, defaults.records_database):
                r = client.post(
                    "/query",
                    data={"q": f'CREATE DATABASE "{db}"'},
                    auth=(self.username, self.password),
                )
                if r.status_code != 200:
                    raise ServiceError(f"cannot create database: {r.status_code} {r.text[:200]}")

    def stop(self) -> None:
        stop_process(self.proc, timeout=20)
