"""Start and stop private Mosquitto and influxd instances on free ports (tests, demo, bench)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx


class ServiceError(RuntimeError):
    """A local service could not be started or did not become ready."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_binary(name: str, extra_dirs: Iterable[str] = ("/usr/sbin", "/usr/bin")) -> str:
    """Locate a Debian-installed binary, or raise a one-line ServiceError saying what to install."""
    found = shutil.which(name)
    if found:
        return found
    for d in extra_dirs:
        candidate = Path(d) / name
        if candidate.exists():
            return str(candidate)
    package = {"influxd": "influxdb", "mosquitto_passwd": "mosquitto"}.get(name, name)
    raise ServiceError(f"{name} not found: run scripts/setup.sh (or apt-get install {package})")


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


def write_private(path: Path, text: str) -> None:
    """Write a file that only its owner may read (created 0600, never briefly world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def write_password_file(path: Path, users: Iterable[tuple[str, str]]) -> None:
    """A Mosquitto password file hashed by mosquitto_passwd itself (plaintext only in a private temp file)."""
    tmp = path.with_name(path.name + ".new")
    write_private(tmp, "".join(f"{u}:{p}\n" for u, p in users))
    try:
        subprocess.run([find_binary("mosquitto_passwd"), "-U", str(tmp)], check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        tmp.unlink(missing_ok=True)
        raise ServiceError(f"mosquitto_passwd failed: {exc.stderr.decode(errors='replace').strip()}") from None
    tmp.replace(path)


def set_password(path: Path, username: str, password: str) -> None:
    """Replace (or add) one user's hash in a password file; every other line stays byte-identical."""
    one = path.with_name(path.name + ".one")
    write_password_file(one, [(username, password)])
    hashed = one.read_text().strip()
    one.unlink()
    lines = path.read_text().splitlines() if path.exists() else []
    out = [hashed if ln.split(":", 1)[0] == username else ln for ln in lines]
    if hashed not in out:
        out.append(hashed)
    write_private(path.with_name(path.name + ".tmp"), "\n".join(out) + "\n")
    path.with_name(path.name + ".tmp").replace(path)


def acl_text(users: Iterable[BrokerUser]) -> str:
    """The ACL file: per user, only the listed patterns; everything else is denied."""
    return "".join(f"user {u.username}\n" + "".join(f"{a}\n" for a in u.acl) + "\n" for u in users)


@dataclass
class BrokerUser:
    """One broker identity and what it may do (ACL lines without the `user` header)."""

    username: str
    password: str
    acl: list[str]


@dataclass
class Mosquitto:
    """A private Mosquitto 2 broker with password auth, ACL and (optionally) a TLS listener.

    Lifecycle: construct, start(), use .port/.tls_port, stop(). Not thread-safe.
    """

    workdir: Path
    users: list[BrokerUser]
    port: int = 0
    tls: TlsFiles | None = None
    tls_port: int = 0
    plain_listener: bool = True  # loopback-only, same auth and ACL; gateways and workers use TLS
    max_queued_messages: int = 1_000_000
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.workdir / "mosquitto.log"

    def write_config(self) -> Path:
        """Write mosquitto.conf, the hashed password file and the ACL into workdir."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        passwd = self.workdir / "passwd"
        write_password_file(passwd, [(u.username, u.password) for u in self.users])
        acl = self.workdir / "acl"
        write_private(acl, acl_text(self.users))
        lines = [
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {passwd}",
            f"acl_file {acl}",
            "persistence true",
            f"persistence_location {self.workdir}/",
            "autosave_interval 5",
            f"max_queued_messages {self.max_queued_messages}",
            "max_inflight_messages 1000",
            "max_packet_size 300000",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages true",
        ]
        if self.plain_listener:
            lines.append(f"listener {self.port} 127.0.0.1")
        if os.geteuid() == 0:
            # Mosquitto drops root to user "mosquitto", which cannot read a private temp dir.
            lines.insert(0, "user root")
        if self.tls is not None:
            self.tls_port = self.tls_port or free_port()
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"cafile {self.tls.ca_cert}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
                "tls_version tlsv1.2",
                f"require_certificate {'true' if self.tls.require_certificate else 'false'}",
            ]
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self, timeout: float = 15) -> None:
        conf = self.write_config()
        self.log.touch()
        with open(self.workdir / "mosquitto.stderr", "ab") as err:
            self.proc = subprocess.Popen([find_binary("mosquitto"), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=err)
        if self.plain_listener:
            wait_for_port(self.port, self.proc, timeout, self.log)
        if self.tls is not None:
            wait_for_port(self.tls_port, self.proc, timeout, self.log)

    def set_password(self, username: str, password: str) -> None:
        """Rotate one user's password (others untouched) and make the running broker reload it."""
        set_password(self.workdir / "passwd", username, password)
        self.reload()

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads the password file and the ACL without dropping clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        stop_process(self.proc)


@dataclass(frozen=True)
class TlsFiles:
    """Paths of a CA certificate and a server certificate and key signed by it."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    require_certificate: bool = False  # True: clients must also present a certificate from the CA


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
            self.proc = subprocess.Popen([find_binary("influxd"), "-config", str(conf)], stdout=log, stderr=log)
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
                        data={"q": f"CREATE USER \"{self.username}\" WITH PASSWORD '{self.password}' WITH ALL PRIVILEGES"},
                    )
                    if r.status_code in (200, 401, 403):
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise ServiceError(f"influxd did not answer; log:\n{tail(self.log)}")
                time.sleep(0.1)
            r = client.post(
                "/query",
                data={"q": f'CREATE DATABASE "{self.database}"'},
                auth=(self.username, self.password),
            )
            if r.status_code != 200:
                raise ServiceError(f"cannot create database: {r.status_code} {r.text[:200]}")

    def stop(self) -> None:
        stop_process(self.proc, timeout=20)
