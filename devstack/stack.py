"""A complete local stack: broker and influxd of its own, credentials from the registry, configs.

Used by `gumei run` (the demo), the test fixtures and the benchmarks.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from broker import dynsec
from broker.generate import PASSWORD_ENV, load_or_make_passwords, save_passwords
from broker.tls import make_server_cert
from cloud.auth import TokenStore
from cloud.influx import InfluxClient, InfluxConfig
from cloud.influx_grants import DEFAULT_USERS, SERVICES, Service, apply, statements
from cloud.ingest.ready import Ready, read_ready
from cloud.registry import Registry
from cloud.settings import IngestSettings
from devstack.mosquitto import Mosquitto
from devstack.services import Influxd, stop_process, tail
from runtime.mqtt import MqttEndpoint
from runtime.system import ServiceError, write_private


@dataclass
class LocalStack:
    """Broker (TLS + dynamic security) + influxd + secrets under one directory. start() then stop().

    Gateways and workers reach the broker through its TLS listener (endpoint()); the broker also
    keeps a loopback-only plain listener with the same security (plain_endpoint()). Identities are
    those of production (broker.dynsec): gateways, ingest-1..N, monitor-1..k, the admin.
    """

    root: Path
    registry: Registry
    tls: bool = True
    workers: int = dynsec.DEFAULT_WORKERS
    monitors: int = dynsec.DEFAULT_MONITORS
    mosquitto: Mosquitto | None = None
    influxd: Influxd | None = None
    passwords: dict[str, str] = field(default_factory=dict)
    influx_passwords: dict[str, str] = field(
        default_factory=dict
    )  # per service (cloud.influx_grants)
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        identities = dynsec.broker_identities(self.registry, self.workers, self.monitors)
        self.passwords = load_or_make_passwords(
            self.root / "secrets" / "mqtt.json", [i.username for i in identities]
        )
        tls_files = make_server_cert(self.root / "tls") if self.tls else None
        self.mosquitto = Mosquitto(
            self.root / "mosquitto", identities, self.passwords, tls=tls_files
        )
        self.mosquitto.start()
        self.influxd = Influxd(self.root / "influxd")
        self.influxd.start()
        self.influx_passwords = load_or_make_passwords(
            self.root / "secrets" / "influx.json", list(SERVICES)
        )
        with InfluxClient(
            self.influx_config()
        ) as admin:  # the same grants `gumei influx grants` deploys
            apply(
                admin,
                statements(
                    self.influxd.database,
                    self.influx_config().health_database,
                    self.influx_config().records_database,
                    self.influx_credentials(),
                ),
            )

    def endpoint(self, username: str, keepalive_s: int = 30) -> MqttEndpoint:
        """How `username` reaches the broker: over TLS (verifying the stack's CA) when the stack has it."""
        m = self.mosquitto
        assert m is not None
        if m.tls is None:
            return self.plain_endpoint(username, keepalive_s)
        return MqttEndpoint(
            port=m.tls_port,
            username=username,
            password=self.passwords[username],
            ca_file=m.tls.ca_cert,
            keepalive_s=keepalive_s,
        )

    def plain_endpoint(self, username: str, keepalive_s: int = 30) -> MqttEndpoint:
        """The loopback-only plain listener (same identities and ACLs), for on-host tools."""
        assert self.mosquitto is not None
        return MqttEndpoint(
            port=self.mosquitto.port,
            username=username,
            password=self.passwords[username],
            keepalive_s=keepalive_s,
        )

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate gateways verify the broker with (None without TLS)."""
        return self.mosquitto.tls.ca_cert if self.mosquitto and self.mosquitto.tls else None

    def rotate_password(self, username: str) -> str:
        """Give one broker user a fresh password, live (admin identity, control topic); others stay."""
        assert self.mosquitto is not None
        new = secrets.token_urlsafe(18)
        self.mosquitto.set_password(username, new)  # also updates self.passwords (the same dict)
        save_passwords(self.root / "secrets" / "mqtt.json", self.passwords)
        return new

    def influx_credentials(self) -> dict[Service, tuple[str, str]]:
        """Each service's InfluxDB user and password."""
        return {s: (DEFAULT_USERS[s], self.influx_passwords[s]) for s in SERVICES}

    def influx_config(self, service: Service | None = None) -> InfluxConfig:
        """How `service` reaches the stack's InfluxDB with its own grants (None: the administrator)."""
        assert self.influxd is not None
        i = self.influxd
        if service is None:
            return InfluxConfig(
                url=i.url,
                database=i.database,
                auth="basic",
                username=i.username,
                password=i.password,
            )
        return InfluxConfig(
            url=i.url,
            database=i.database,
            auth="basic",
            username=DEFAULT_USERS[service],
            password=self.influx_passwords[service],
        )

    def admin_env(self) -> dict[str, str]:
        """The environment giving a `gumei influx ...` command the administrator's InfluxDB identity."""
        c = self.influx_config()
        return {"GUMEI_INFLUX__USERNAME": c.username, "GUMEI_INFLUX__PASSWORD": c.password}

    def write_cloud_config(self, registry_path: Path, extra: str = "") -> Path:
        """A TOML config for the cloud processes of this stack (each worker's password comes by env: spawn)."""
        c = self.influx_config()
        ep = self.endpoint(dynsec.worker_name(1))
        path = self.root / "cloud.toml"
        services = "".join(
            f'\n[influx.{s}]\nusername = "{user}"\npassword = "{password}"\n'
            for s, (user, password) in self.influx_credentials().items()
        )
        text = f"""# generated by gumei for the local stack (the InfluxDB administrator is not in here: admin_env())
registry = "{registry_path}"
tokens = "{self.root / "tokens.json"}"
{extra}
[influx]
url = "{c.url}"
database = "{c.database}"
health_database = "{c.health_database}"
records_database = "{c.records_database}"
auth = "basic"
{services}

[mqtt]
host = "{ep.host}"
port = {ep.port}
{f'ca_file = "{ep.ca_file}"' if ep.ca_file else ""}
"""
        write_private(path, text)
        return path

    def tokens(self) -> TokenStore:
        """The stack's API token store."""
        return TokenStore(self.root / "tokens.json")

    def worker_env(self, worker: str) -> dict[str, str]:
        """The environment that gives ingestion worker `worker` its own broker password."""
        if worker not in self.passwords or not worker.startswith("ingest-"):
            raise ServiceError(
                f"no broker identity {worker!r}: workers are ingest-1..ingest-{self.workers}"
            )
        return {PASSWORD_ENV: self.passwords[worker]}

    def spawn(
        self, name: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start `python -m gumei.cli <args>` with its output in <root>/logs/<name>.log.

        An `ingest` worker gets its own identity: username = its --name (default ingest-1), its
        password through the environment, as a systemd instance gets it from its env file; and its
        ready file, ready_file(worker) (wait_ready()).
        """
        if args and args[0] == "ingest":
            worker = args[args.index("--name") + 1] if "--name" in args else IngestSettings().name
            env = {**self.worker_env(worker), **(env or {})}
            if "--ready-file" not in args:
                args = (*args, "--ready-file", str(self.ready_file(worker)))
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        with open(logs / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gumei.cli", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        self.processes.append((name, proc))
        return proc

    def ready_file(self, worker: str) -> Path:
        """Where a spawned ingestion worker signals readiness (cloud.ingest.ready)."""
        return self.root / "ready" / f"{worker}.json"

    def worker_ready(self, worker: str, proc: subprocess.Popen[bytes]) -> Ready | None:
        """The ready file of worker process proc, or None until that very process has subscribed."""
        ready = read_ready(self.ready_file(worker))
        return ready if ready is not None and ready.pid == proc.pid else None

    def wait_ready(
        self, worker: str, proc: subprocess.Popen[bytes], timeout: float = 30.0
    ) -> Ready:
        """Wait until worker process proc has its subscription granted; ServiceError if it exits or times out."""
        deadline = time.monotonic() + timeout
        while (ready := self.worker_ready(worker, proc)) is None:
            name = next((n for n, p in self.processes if p is proc), worker)
            if proc.poll() is not None:
                raise ServiceError(f"{worker} exited with {proc.returncode}:\n{self.log_of(name)}")
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"{worker} did not subscribe within {timeout:.0f}s:\n{self.log_of(name)}"
                )
            time.sleep(0.05)
        return ready

    def log_of(self, name: str) -> str:
        """The tail of a spawned process's log."""
        return tail(self.root / "logs" / f"{name}.log")

    def stop(self) -> None:
        for _, proc in reversed(self.processes):
            stop_process(proc)
        self.processes.clear()
        if self.mosquitto:
            self.mosquitto.stop()
        if self.influxd:
            self.influxd.stop()
