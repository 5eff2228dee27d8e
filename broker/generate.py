"""The broker's files for a deployment (`gumei broker gen`, `gumei broker rotate`) and for the local stack.

`write_broker` writes mosquitto.conf and the dynamic security plugin's JSON; `generate_broker`
(production) and `devstack.mosquitto.Mosquitto` (the demo, the tests, the benchmarks) both call it.
A `BrokerLayout` holds the only things allowed to differ: listeners, ports, paths, log destination,
`user root`.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from broker import dynsec
from broker.dynsec_control import set_client_password
from broker.tls import TlsFiles, make_client_cert, make_server_cert
from cloud.registry import Registry
from runtime.mqtt import MqttEndpoint
from runtime.system import ServiceError, write_private

DYNSEC_FILE = "dynamic-security.json"
# The same everywhere: a setting only the test stack has is a production bug waiting.
# max_queued_messages: a worker's share is queued in its session while InfluxDB is down (the worker
# holds PUBACKs, gateways keep publishing); Mosquitto silently drops QoS 1 beyond this after having
# PUBACKed the gateway, so it is sized for hours of a large fleet, not the default 1000.
TUNING = (
    "max_queued_messages 1000000",
    "max_inflight_messages 1000",
    "max_packet_size 300000",
    "autosave_interval 5",
)
_PLUGIN_GLOBS = (
    "/usr/lib/*/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/*mosquitto_dynamic_security.so",
)
DEBIAN_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")


def find_plugin() -> Path:
    """The dynamic security plugin installed with Mosquitto, or a one-line error."""
    for pattern in _PLUGIN_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return Path(found[0])
    raise ServiceError(
        "mosquitto_dynamic_security.so not found: apt-get install mosquitto (2.0 or later)"
    )


@dataclass(frozen=True)
class Listener:
    """One listener: plain (loopback tools) or TLS (gateways and workers)."""

    port: int
    bind: str
    tls: TlsFiles | None = None


@dataclass(frozen=True)
class BrokerLayout:
    """What may differ between deployments; nothing here touches security, queues or limits."""

    listeners: tuple[Listener, ...]
    state_dir: Path  # persistence and the plugin's JSON (Mosquitto must be able to write it)
    plugin: Path = field(default_factory=find_plugin)
    log_file: Path | None = None  # None: stderr (the journal under systemd)
    run_as_root: bool = (
        False  # a root test run: Mosquitto would drop to "mosquitto", who cannot read a temp dir
    )

    @property
    def dynsec_file(self) -> Path:
        return self.state_dir / DYNSEC_FILE


def mosquitto_conf(layout: BrokerLayout, header: Sequence[str] = ()) -> str:
    """mosquitto.conf text: security and tuning fixed here, listeners and paths from the layout."""
    lines = [f"# {h}" for h in header]
    if layout.run_as_root:
        lines.append("user root")
    lines += [
        "per_listener_settings false",
        "allow_anonymous false",
        f"plugin {layout.plugin}",
        f"plugin_opt_config_file {layout.dynsec_file}",
        "persistence true",
        f"persistence_location {layout.state_dir}/",
        *TUNING,
        "connection_messages true",
        "log_type error",
        "log_type warning",
        "log_type notice",
    ]
    if layout.log_file is not None:
        lines.append(f"log_dest file {layout.log_file}")
    for listener in layout.listeners:
        lines.append(f"listener {listener.port} {listener.bind}")
        if listener.tls is not None:
            t = listener.tls
            lines += [
                f"cafile {t.ca_cert}",
                f"certfile {t.server_cert}",
                f"keyfile {t.server_key}",
                "tls_version tlsv1.2",
                f"require_certificate {'true' if t.require_certificate else 'false'}",
                "use_identity_as_username false",
            ]
    return "\n".join(lines) + "\n"


def write_dynsec(
    path: Path, identities: Sequence[dynsec.Identity], passwords: dict[str, str]
) -> None:
    """The plugin's JSON (0600, atomic); entries whose password is unchanged keep their salt and hash."""
    doc = dynsec.dynsec_config(identities, passwords, dynsec.read_config(path))
    tmp = path.with_name(path.name + ".tmp")
    write_private(tmp, json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)


def write_broker(
    conf: Path,
    dynsec_out: Path,
    layout: BrokerLayout,
    identities: Sequence[dynsec.Identity],
    passwords: dict[str, str],
    header: Sequence[str] = (),
) -> None:
    """The one generator: mosquitto.conf at conf, the plugin's JSON at dynsec_out."""
    write_dynsec(dynsec_out, identities, passwords)
    conf.write_text(mosquitto_conf(layout, header))


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


def save_passwords(path: Path, passwords: Mapping[str, object]) -> None:
    """Write the 0600 JSON file of broker passwords (atomically)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    write_private(tmp, json.dumps(passwords, indent=1))
    tmp.replace(path)


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
    out: Path,
    registry: Registry,
    hosts: list[str],
    port: int = 8883,
    bind: str = "0.0.0.0",
    client_certs: bool = False,
    workers: int = dynsec.DEFAULT_WORKERS,
    monitors: int = dynsec.DEFAULT_MONITORS,
    state_dir: Path = Path("/var/lib/mosquitto"),
    plugin: Path | None = None,
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
        tls_files = TlsFiles(
            tls_dir / "ca.crt", tls_dir / "server.crt", tls_dir / "server.key", client_certs
        )
    else:
        tls_files = replace(make_server_cert(tls_dir, hosts), require_certificate=client_certs)
    gateways = [s.id for s in registry.sites if not s.retired]
    if client_certs:  # every identity then needs one: gateways, workers, monitors and the admin
        for ident in identities:
            if not (tls_dir / "clients" / f"{ident.username}.crt").exists():
                make_client_cert(tls_dir, ident.username)
    layout = BrokerLayout(
        (Listener(port, bind, tls_files),), state_dir.resolve(), plugin or find_plugin_or_debian()
    )
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
        worker_env.append(
            write_worker_env(env_dir, dynsec.worker_name(i), passwords, tls_dir / "clients")
        )
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
    lines = [
        f"# broker identity of {worker} (username = client id = its --name)",
        f"{PASSWORD_ENV}={passwords[worker]}",
    ]
    if (certs / f"{worker}.crt").exists():
        lines += [
            f"GUMEI_MQTT__CERT_FILE={certs / f'{worker}.crt'}",
            f"GUMEI_MQTT__KEY_FILE={certs / f'{worker}.key'}",
        ]
    write_private(path, "\n".join(lines) + "\n")
    return path


def rotate_password(
    out: Path, username: str, live: MqttEndpoint | None = None, new: str | None = None
) -> str:
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
    # the installable copy is kept in step when there is one; live, the broker's own file is
    # what counts (the plugin rewrites it), so a layout without a copy (the local stack) is fine
    known = doc is not None and username in {c.get("username") for c in doc.get("clients", [])}
    if username not in passwords or (not known and (live is None or doc is not None)):
        raise ServiceError(f"{username} has no broker identity in {dynsec_out}")
    new = new or secrets.token_urlsafe(18)
    if live is not None:
        set_client_password(
            live.model_copy(update={"username": dynsec.ADMIN, "password": passwords[dynsec.ADMIN]}),
            username,
            new,
        )
    passwords[username] = new
    if doc is not None:
        dynsec.set_password(doc, username, new)
        tmp = dynsec_out.with_name(dynsec_out.name + ".tmp")
        write_private(tmp, json.dumps(doc, indent=2) + "\n")
        tmp.replace(dynsec_out)
    save_passwords(secrets_path, passwords)
    if (out / "ingest" / f"{username}.env").exists():
        write_worker_env(out / "ingest", username, passwords, out / "tls" / "clients")
    return new


# -- rotation without downtime: stage the next password on the gateway first, then switch -------

PENDING_FILE = "pending.json"  # beside mqtt.json: staged passwords and when each becomes due


def _pending_path(out: Path) -> Path:
    return out / "secrets" / PENDING_FILE


def pending_rotations(out: Path) -> dict[str, dict[str, str]]:
    """Staged rotations: user -> {"password", "due" (ISO UTC)}."""
    path = _pending_path(out)
    return json.loads(path.read_text()) if path.exists() else {}


def stage_rotation(out: Path, username: str, due: dt.datetime) -> str:
    """A new password for one gateway, staged: the broker keeps the old one until it is committed.

    The gateway's bundle carries it as `mqtt-password.next` (edge/credentials.py): the gateway
    switches by itself when the broker refuses the old one. Staging again replaces the staged one.
    """
    passwords = json.loads((out / "secrets" / "mqtt.json").read_text())
    if username not in passwords or dynsec.is_service_identity(username):
        raise ServiceError(f"{username} is not a gateway of this broker (workers rotate directly)")
    pending = pending_rotations(out)
    new = secrets.token_urlsafe(18)
    pending[username] = {"password": new, "due": due.astimezone(dt.UTC).isoformat()}
    save_passwords(_pending_path(out), pending)
    return new


def commit_rotation(out: Path, username: str, live: MqttEndpoint | None) -> str:
    """Switch the broker to the staged password of one gateway (live, or in the files)."""
    pending = pending_rotations(out)
    if username not in pending:
        raise ServiceError(
            f"no staged rotation for {username}: gumei broker rotate {username} --stage"
        )
    new = rotate_password(out, username, live, pending[username]["password"])
    del pending[username]
    save_passwords(_pending_path(out), pending)
    return new


def due_rotations(out: Path, now: dt.datetime) -> list[str]:
    """Gateways whose staged rotation is due (its grace time is over)."""
    return sorted(
        u for u, p in pending_rotations(out).items() if dt.datetime.fromisoformat(p["due"]) <= now
    )
