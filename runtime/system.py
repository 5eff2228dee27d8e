"""The host a process runs on: installed binaries, owner-only files, and the error when a service or tool fails."""

from __future__ import annotations

import os
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
