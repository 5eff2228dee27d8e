"""A local certificate authority for the broker's TLS listener, made with the `openssl` CLI.

For the demo, the tests and small deployments: one CA, a server certificate for the broker
(with the host names and IP addresses gateways dial), and optional client certificates (CN =
site id). Keys are EC P-256, written 0600. A real deployment may use certificates from its own
CA instead: point the broker at them and give gateways the CA certificate (docs/security.md).
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from runtime.system import ServiceError, find_binary

CA_DAYS = 3650
LEAF_DAYS = 825
_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class TlsFiles:
    """Paths of a CA certificate and a server certificate and key signed by it."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    require_certificate: bool = False  # True: clients must also present a certificate from the CA


class TlsError(ServiceError):
    """openssl failed or a certificate file is missing (one line says which)."""


@dataclass(frozen=True)
class ClientCert:
    """A client certificate and key for one gateway."""

    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    proc = subprocess.run(
        [find_binary("openssl"), *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise TlsError(f"openssl {args[0]} failed: {last}")


def _private(path: Path) -> None:
    os.chmod(path, 0o600)


def make_ca(directory: Path, name: str = "Gumei community IoT local CA") -> tuple[Path, Path]:
    """Create (or keep) ca.crt and ca.key in directory; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "ca.crt", directory / "ca.key"
    if cert.exists() and key.exists():
        return cert, key
    _openssl(
        "req",
        "-x509",
        *_EC,
        "-keyout",
        str(key),
        "-out",
        str(cert),
        "-days",
        str(CA_DAYS),
        "-subj",
        f"/O=Gumei community IoT/CN={name}",
        "-addext",
        "basicConstraints=critical,CA:TRUE,pathlen:0",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    _private(key)
    return cert, key


def _sign(
    directory: Path, stem: str, subject: str, extensions: str, ca: tuple[Path, Path]
) -> tuple[Path, Path]:
    cert, key, csr = directory / f"{stem}.crt", directory / f"{stem}.key", directory / f"{stem}.csr"
    _openssl("req", "-new", *_EC, "-keyout", str(key), "-out", str(csr), "-subj", subject)
    _private(key)
    with tempfile.NamedTemporaryFile("w", suffix=".cnf", delete=False) as ext:
        ext.write(extensions)
    try:
        _openssl(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca[0]),
            "-CAkey",
            str(ca[1]),
            "-CAcreateserial",
            "-out",
            str(cert),
            "-days",
            str(LEAF_DAYS),
            "-sha256",
            "-extfile",
            ext.name,
        )
    finally:
        os.unlink(ext.name)
        csr.unlink(missing_ok=True)
    return cert, key


def _san(hosts: list[str]) -> str:
    names = []
    for h in hosts:
        try:
            ipaddress.ip_address(h)
            names.append(f"IP:{h}")
        except ValueError:
            names.append(f"DNS:{h}")
    return ",".join(names)


def make_server_cert(directory: Path, hosts: list[str] | None = None) -> TlsFiles:
    """A CA (kept if present) and a broker certificate valid for hosts (default localhost, 127.0.0.1)."""
    hosts = hosts or ["localhost", "127.0.0.1"]
    ca = make_ca(directory)
    ext = (
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
        f"subjectAltName={_san(hosts)}\n"
    )
    cert, key = _sign(directory, "server", f"/O=Gumei community IoT/CN={hosts[0]}", ext, ca)
    return TlsFiles(ca_cert=ca[0], server_cert=cert, server_key=key)


def make_client_cert(directory: Path, common_name: str) -> ClientCert:
    """A client certificate with CN = common_name (a site id), signed by the CA in directory."""
    ca = directory / "ca.crt", directory / "ca.key"
    if not ca[0].exists() or not ca[1].exists():
        raise TlsError(f"no CA in {directory}: create it first (gumei broker gen)")
    (directory / "clients").mkdir(exist_ok=True)
    ext = (
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    cert, key = _sign(
        directory / "clients", common_name, f"/O=Gumei community IoT/CN={common_name}", ext, ca
    )
    return ClientCert(cert, key)
