"""The host a process runs on: installed binaries, owner-only files, and the error when a service or tool fails."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path


class ServiceError(RuntimeError):
    """A local service could not be started or did not become ready."""


def find_binary(name: str, extra_dirs: Iterable[str] = ("/usr/sbin", "/usr/bin")) -> str:
    """Locate a Debian-installed binary, or raise a one-line ServiceError saying what to install."""
    found = shutil.which(name)
    if found:
        return found
    for d in extra_dirs:
        candidate = Path(d) / name
        if candidate.exists():
            return str(candidate)
    package = {"influxd": "influxdb"}.get(name, name)
    raise ServiceError(f"{name} not found: run scripts/setup.sh (or apt-get install {package})")


def write_private(path: Path, text: str) -> None:
    """Write a file that only its owner may read (created 0600, never briefly world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def replace_durably(path: Path, data: bytes) -> None:
    """Replace a file atomically and durably, owner-only: a unique temporary file (0600), fsync,
    rename over `path`, fsync of the folder. Readers see the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
