"""A complete local stack: broker and influxd of its own, credentials from the registry, configs.

Used by `gumei run` (the demo), the test fixtures and the benchmarks.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cloud.auth import TokenStore
from cloud.influx import InfluxConfig
from cloud.registry import Registry
from contract.topics import kind_of_site
from gumei.mqtt import MqttEndpoint
from gumei.services import (
    BrokerUser,
    Influxd,
    Mosquitto,
    ServiceError,
    TlsFiles,
    acl_text,
    set_password,
    stop_process,
    tail,
    write_password_file,
    write_private,
)
from gumei.tls import make_client_cert, make_server_cert

INGEST_USER = "ingest"


def gateway_acl(site_id: str) -> list[str]:
    """A gateway may write its own site's topics and nothing else; it may read nothing."""
    return [f"topic write gumei/v1/{kind_of_site(site_id)}/{site_id}/#"]


def broker_users(registry: Registry, passwords: dict[str, str]) -> list[BrokerUser]:
    """One user per active gateway (write only its own topics) and a read-only ingestion identity."""
    users = [BrokerUser(INGEST_USER, passwords[INGEST_USER], ["topic read gumei/v1/#"])]
    for site in registry.sites:
        if not site.retired:
            users.append(BrokerUser(site.id, passwords[site.id], gateway_acl(site.id)))
    return users


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
    """Broker (TLS + password auth + ACL) + influxd + secrets under one directory. start() then stop().

    Gateways and workers reach the broker through its TLS listener (endpoint()); the broker also
    keeps a loopback-only plain listener with the same auth and ACL (plain_endpoint()).
    """

    root: Path
    registry: Registry
    tls: bool = True
    mosquitto: Mosquitto | None = None
    influxd: Influxd | None = None
    passwords: dict[str, str] = field(default_factory=dict)
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        names = [INGEST_USER] + [s.id for s in self.registry.sites]
        self.passwords = load_or_make_passwords(self.root / "secrets" / "mqtt.json", names)
        tls_files = make_server_cert(self.root / "tls") if self.tls else None
        self.mosquitto = Mosquitto(self.root / "mosquitto", broker_users(self.registry, self.passwords), tls=tls_files)
        self.mosquitto.start()
        self.influxd = Influxd(self.root / "influxd")
        self.influxd.start()

    def endpoint(self, username: str, keepalive_s: int = 30) -> MqttEndpoint:
        """How `username` reaches the broker: over TLS (verifying the stack's CA) when the stack has it."""
        m = self.mosquitto
        assert m is not None
        if m.tls is None:
            return self.plain_endpoint(username, keepalive_s)
        return MqttEndpoint(port=m.tls_port, username=username, password=self.passwords[username],
                            ca_file=m.tls.ca_cert, keepalive_s=keepalive_s)

    def plain_endpoint(self, username: str, keepalive_s: int = 30) -> MqttEndpoint:
        """The loopback-only plain listener (same auth and ACL), for on-host tools."""
        assert self.mosquitto is not None
        return MqttEndpoint(port=self.mosquitto.port, username=username, password=self.passwords[username],
                            keepalive_s=keepalive_s)

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate gateways verify the broker with (None without TLS)."""
        return self.mosquitto.tls.ca_cert if self.mosquitto and self.mosquitto.tls else None

    def rotate_password(self, username: str) -> str:
        """Give one broker user a fresh password, live; every other credential stays as it was."""
        assert self.mosquitto is not None
        new = secrets.token_urlsafe(18)
        self.mosquitto.set_password(username, new)
        self.passwords[username] = new
        save_passwords(self.root / "secrets" / "mqtt.json", self.passwords)
        return new

    def influx_config(self) -> InfluxConfig:
        """How to reach the stack's InfluxDB."""
        assert self.influxd is not None
        i = self.influxd
        return InfluxConfig(url=i.url, database=i.database, auth="basic", username=i.username, password=i.password)

    def write_cloud_config(self, registry_path: Path, extra: str = "") -> Path:
        """A TOML config for the cloud processes of this stack."""
        c = self.influx_config()
        ep = self.endpoint(INGEST_USER)
        path = self.root / "cloud.toml"
        text = (
            f"""# generated by gumei for the local stack
registry = "{registry_path}"
tokens = "{self.root / 'tokens.json'}"
{extra}
[influx]
url = "{c.url}"
database = "{c.database}"
auth = "basic"
username = "{c.username}"
password = "{c.password}"

[mqtt]
host = "{ep.host}"
port = {ep.port}
username = "{ep.username}"
password = "{ep.password}"
{f'ca_file = "{ep.ca_file}"' if ep.ca_file else ""}
"""
        )
        write_private(path, text)
        return path

    def tokens(self) -> TokenStore:
        """The stack's API token store."""
        return TokenStore(self.root / "tokens.json")

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start `python -m gumei.cli <args>` with its output in <root>/logs/<name>.log."""
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
    passwd: Path
    acl: Path
    secrets: Path
    tls: TlsFiles
    users: int


def generate_broker(
    out: Path, registry: Registry, hosts: list[str], port: int = 8883, bind: str = "0.0.0.0",
    client_certs: bool = False,
) -> BrokerFiles:
    """Broker security for a deployment, from the registry: hashed passwords, ACL, TLS, mosquitto.conf.

    Existing passwords in <out>/secrets/mqtt.json and an existing CA are kept, so re-running after a
    registry change adds and removes gateways without changing anyone else's credentials.
    With client_certs, every gateway also gets a certificate and the listener requires one.
    """
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    active = [s.id for s in registry.sites if not s.retired]
    secrets_path = out / "secrets" / "mqtt.json"
    passwords = load_or_make_passwords(secrets_path, [INGEST_USER, *active])
    users = broker_users(registry, passwords)
    passwd, acl = out / "passwd", out / "acl"
    write_password_file(passwd, [(u.username, u.password) for u in users])
    write_private(acl, acl_text(users))
    tls_dir = out / "tls"
    if (tls_dir / "server.crt").exists() and (tls_dir / "server.key").exists():
        tls_files = TlsFiles(tls_dir / "ca.crt", tls_dir / "server.crt", tls_dir / "server.key")
    else:
        tls_files = make_server_cert(tls_dir, hosts)
    if client_certs:
        for site_id in active:
            if not (tls_dir / "clients" / f"{site_id}.crt").exists():
                make_client_cert(tls_dir, site_id)
    config = out / "mosquitto.conf"
    config.write_text(
        f"""# Generated by `gumei broker gen` from the site registry ({len(active)} gateways).
# Gateways: username = site id, password from secrets/mqtt.json (hand each gateway only its own),
# TLS verified against tls/ca.crt. Rotate one gateway: gumei broker rotate <site> --out {out}
per_listener_settings false
allow_anonymous false
password_file {passwd}
acl_file {acl}
persistence true
persistence_location /var/lib/mosquitto/
max_packet_size 300000
connection_messages true

listener {port} {bind}
cafile {tls_files.ca_cert}
certfile {tls_files.server_cert}
keyfile {tls_files.server_key}
tls_version tlsv1.2
require_certificate {"true" if client_certs else "false"}
use_identity_as_username false
"""
    )
    return BrokerFiles(config, passwd, acl, secrets_path, tls_files, len(users))


def rotate_gateway_password(out: Path, username: str) -> str:
    """New password for one user of a generated broker: its passwd line and secret change, nothing else."""
    secrets_path = out / "secrets" / "mqtt.json"
    if not secrets_path.exists():
        raise ServiceError(f"no {secrets_path}: run gumei broker gen --out {out} first")
    passwords: dict[str, str] = json.loads(secrets_path.read_text())
    if username not in passwords:
        raise ServiceError(f"{username} has no broker credential in {secrets_path}")
    new = secrets.token_urlsafe(18)
    set_password(out / "passwd", username, new)
    passwords[username] = new
    save_passwords(secrets_path, passwords)
    return new
