"""A complete local stack: broker and influxd of its own, credentials from the registry, configs.

Used by `gumei run` (the demo), the test fixtures and the benchmarks.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from cloud.auth import TokenStore
from cloud.influx import InfluxClient, InfluxConfig
from cloud.influx_grants import DEFAULT_USERS, SERVICES, Service, apply, statements
from cloud.registry import Registry
from cloud.settings import IngestSettings
from broker import dynsec
from broker.generate import DEBIAN_PLUGIN, BrokerLayout, Listener, Mosquitto, find_plugin, write_broker
from broker.dynsec_control import set_client_password
from runtime.mqtt import MqttEndpoint
from devstack.services import (
    Influxd,
    ServiceError,
    TlsFiles,
    stop_process,
    tail,
    write_private,
)
from broker.tls import make_client_cert, make_server_cert

PASSWORD_ENV = "GUMEI_MQTT__PASSWORD"  # how a worker process gets its own broker password


def load_or_make_passwords(path: Path, names: list[str]) -> dict[str, str]:
    """Broker passwords kept in a 0600 JSON file; new names get fresh random passwords."""
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for name in names:
        if name not in known:
            known[name] = secrets.token_urlsafe(18)
            changed = True
    if changed or not path.exists():
        save_passwords(path, known)
    return known


def save_passwords(path: Path, passwords: dict[str, str]) -> None:
    """Write the 0600 JSON file of broker passwords (atomically)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    write_private(tmp, json.dumps(passwords, indent=1))
    tmp.replace(path)


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
    influx_passwords: dict[str, str] = field(default_factory=dict)  # per service (cloud.influx_grants)
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        identities = dynsec.broker_identities(self.registry, self.workers, self.monitors)
        self.passwords = load_or_make_passwords(self.root / "secrets" / "mqtt.json", [i.username for i in identities])
        tls_files = make_server_cert(self.root / "tls") if self.tls else None
        self.mosquitto = Mosquitto(self.root / "mosquitto", identities, self.passwords, tls=tls_files)
        self.mosquitto.start()
        self.influxd = Influxd(self.root / "influxd")
        self.influxd.start()
        self.influx_passwords = load_or_make_passwords(self.root / "secrets" / "influx.json", list(SERVICES))
        with InfluxClient(self.influx_config()) as admin:  # the same grants `gumei influx grants` deploys
            apply(admin, statements(self.influxd.database, self.influx_config().health_database, self.influx_credentials()))

    def endpoint(self, username: str, keepalive_s: int = 30) -> MqttEndpoint:
        """How `username` reaches the broker: over TLS (verifying the stack's CA) when the stack has it."""
        m = self.mosquitto
        assert m is not None
        if m.tls is None:
            return self.plain_endpoint(username, keepalive_s)
        return MqttEndpoint(port=m.tls_port, username=username, password=self.passwords[username],
                            ca_file=m.tls.ca_cert, keepalive_s=keepalive_s)

    def plain_endpoint(self, username: str, keepalive_s: int = 30) -> MqttEndpoint:
        """The loopback-only plain listener (same identities and ACLs), for on-host tools."""
        assert self.mosquitto is not None
        return MqttEndpoint(port=self.mosquitto.port, username=username, password=self.passwords[username],
                            keepalive_s=keepalive_s)

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
            return InfluxConfig(url=i.url, database=i.database, auth="basic", username=i.username, password=i.password)
        return InfluxConfig(url=i.url, database=i.database, auth="basic", username=DEFAULT_USERS[service],
                            password=self.influx_passwords[service])

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
            f'\n[influx.{s}]\nusername = "{user}"\npassword = "{password}"\n' for s, (user, password) in self.influx_credentials().items()
        )
        text = (
            f"""# generated by gumei for the local stack (the InfluxDB administrator is not in here: admin_env())
registry = "{registry_path}"
tokens = "{self.root / 'tokens.json'}"
{extra}
[influx]
url = "{c.url}"
database = "{c.database}"
health_database = "{c.health_database}"
auth = "basic"
{services}

[mqtt]
host = "{ep.host}"
port = {ep.port}
{f'ca_file = "{ep.ca_file}"' if ep.ca_file else ""}
"""
        )
        write_private(path, text)
        return path

    def tokens(self) -> TokenStore:
        """The stack's API token store."""
        return TokenStore(self.root / "tokens.json")

    def worker_env(self, worker: str) -> dict[str, str]:
        """The environment that gives ingestion worker `worker` its own broker password."""
        if worker not in self.passwords or not worker.startswith("ingest-"):
            raise ServiceError(f"no broker identity {worker!r}: workers are ingest-1..ingest-{self.workers}")
        return {PASSWORD_ENV: self.passwords[worker]}

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start `python -m gumei.cli <args>` with its output in <root>/logs/<name>.log.

        An `ingest` worker gets its own identity: username = its --name (default ingest-1), its
        password through the environment, as a systemd instance gets it from its env file.
        """
        if args and args[0] == "ingest":
            worker = args[args.index("--name") + 1] if "--name" in args else IngestSettings().name
            env = {**self.worker_env(worker), **(env or {})}
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


@dataclass(frozen=True)
class BrokerFiles:
    """What `gumei broker gen` wrote for a real deployment."""

    config: Path
    dynsec: Path
    secrets: Path
    tls: TlsFiles
    worker_env: list[Path]
    users: int


def generate_broker(
    out: Path, registry: Registry, hosts: list[str], port: int = 8883, bind: str = "0.0.0.0",
    client_certs: bool = False, workers: int = dynsec.DEFAULT_WORKERS, monitors: int = dynsec.DEFAULT_MONITORS,
    state_dir: Path = Path("/var/lib/mosquitto"), plugin: Path | None = None,
) -> BrokerFiles:
    """Broker security for a deployment, from the registry: identities and ACLs, TLS, mosquitto.conf.

    Existing passwords in <out>/secrets/mqtt.json and an existing CA are kept (and so are the
    hashes of unchanged passwords), so re-running after a registry change adds and removes
    gateways without changing anyone else's credentials. The plugin's file is written to
    <out>/dynamic-security.json and installed into state_dir (docs/deploy.md). With client_certs,
    every gateway also gets a certificate and the listener requires one.
    """
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    identities = dynsec.broker_identities(registry, workers, monitors)
    secrets_path = out / "secrets" / "mqtt.json"
    passwords = load_or_make_passwords(secrets_path, [i.username for i in identities])
    tls_dir = out / "tls"
    if (tls_dir / "server.crt").exists() and (tls_dir / "server.key").exists():
        tls_files = TlsFiles(tls_dir / "ca.crt", tls_dir / "server.crt", tls_dir / "server.key", client_certs)
    else:
        tls_files = replace(make_server_cert(tls_dir, hosts), require_certificate=client_certs)
    gateways = [s.id for s in registry.sites if not s.retired]
    if client_certs:  # every identity then needs one: gateways, workers, monitors and the admin
        for ident in identities:
            if not (tls_dir / "clients" / f"{ident.username}.crt").exists():
                make_client_cert(tls_dir, ident.username)
    layout = BrokerLayout((Listener(port, bind, tls_files),), state_dir.resolve(), plugin or find_plugin_or_debian())
    config, dynsec_out = out / "mosquitto.conf", out / "dynamic-security.json"
    header = [
        f"Generated by `gumei broker gen` from the site registry ({len(gateways)} gateways, {workers} workers).",
        f"Install {dynsec_out} as {layout.dynsec_file} (owner mosquitto, 0600; docs/deploy.md).",
        f"Gateways: username = client id = site id, TLS verified against {tls_files.ca_cert}.",
        f"Rotate one password: gumei broker rotate <user> --out {out} [--live-port {port}]",
    ]
    write_broker(config, dynsec_out, layout, identities, passwords, header)
    env_dir = out / "ingest"
    env_dir.mkdir(mode=0o700, exist_ok=True)
    worker_env = []
    for i in range(1, workers + 1):
        worker_env.append(write_worker_env(env_dir, dynsec.worker_name(i), passwords, tls_dir / "clients"))
    return BrokerFiles(config, dynsec_out, secrets_path, tls_files, worker_env, len(identities))


def find_plugin_or_debian() -> Path:
    """The plugin on this host, else where Debian/Ubuntu amd64 installs it (the broker host may differ)."""
    try:
        return find_plugin()
    except ServiceError:
        return DEBIAN_PLUGIN


def write_worker_env(env_dir: Path, worker: str, passwords: dict[str, str], certs: Path) -> Path:
    """<env_dir>/<worker>.env for the systemd instance gumei-ingest@<n> (EnvironmentFile=, 0600)."""
    path = env_dir / f"{worker}.env"
    lines = [f"# broker identity of {worker} (username = client id = its --name)", f"{PASSWORD_ENV}={passwords[worker]}"]
    if (certs / f"{worker}.crt").exists():
        lines += [f"GUMEI_MQTT__CERT_FILE={certs / f'{worker}.crt'}", f"GUMEI_MQTT__KEY_FILE={certs / f'{worker}.key'}"]
    write_private(path, "\n".join(lines) + "\n")
    return path


def rotate_password(out: Path, username: str, live: MqttEndpoint | None = None) -> str:
    """New password for one identity of a generated broker; only its secret, hash (and env file) change.

    With live (the broker's address, as the admin), the running broker takes it at once through the
    control topic and rewrites its own file; without, install the new file and restart Mosquitto.
    """
    secrets_path = out / "secrets" / "mqtt.json"
    if not secrets_path.exists():
        raise ServiceError(f"no {secrets_path}: run gumei broker gen --out {out} first")
    passwords: dict[str, str] = json.loads(secrets_path.read_text())
    dynsec_out = out / "dynamic-security.json"
    doc = dynsec.read_config(dynsec_out)
    if username not in passwords or doc is None or username not in {c.get("username") for c in doc.get("clients", [])}:
        raise ServiceError(f"{username} has no broker identity in {dynsec_out}")
    new = secrets.token_urlsafe(18)
    if live is not None:
        set_client_password(live.model_copy(update={"username": dynsec.ADMIN, "password": passwords[dynsec.ADMIN]}), username, new)
    passwords[username] = new
    dynsec.set_password(doc, username, new)
    tmp = dynsec_out.with_name(dynsec_out.name + ".tmp")
    write_private(tmp, json.dumps(doc, indent=2) + "\n")
    tmp.replace(dynsec_out)
    save_passwords(secrets_path, passwords)
    if (out / "ingest" / f"{username}.env").exists():
        write_worker_env(out / "ingest", username, passwords, out / "tls" / "clients")
    return new
