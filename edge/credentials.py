"""The gateway's broker password, and a staged next one for a rotation without downtime.

The password is a one-line 0600 file (`broker.credentials_file`). A rotation is staged by
installing the new password beside it as `<file>.next` (the gateway's bundle carries it) before
the broker switches (`gumei broker rotate --stage`, then `--commit` or a due `gumei broker sync`).
When the broker refuses the password in use (bad user name or password, not authorized) and a
next one is staged, the next connection attempt uses the next one; once the broker accepts it,
it replaces the old file (atomic rename) and the gateway goes on with it. If the next one is
refused too, the gateway goes back to the current one: nothing is promoted that the broker did
not accept, so a premature or wrong `.next` file never locks the gateway out.

Threading: used by the publisher thread only.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from edge.config import read_secret, staged_password_file

log = logging.getLogger(__name__)


class PasswordFile:
    """The password file and its staged successor."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.next_path = staged_password_file(path)
        self.using_next = False
        self.rotations = 0

    def password(self) -> str:
        """The password to connect with now (raises ConfigError for an unreadable file)."""
        if self.using_next:
            return read_secret(self.next_path, "broker.credentials_file (next)")
        return read_secret(self.path, "broker.credentials_file")

    def refused(self) -> bool:
        """The broker refused the password: switch between current and staged; True if switched."""
        if not self.using_next and self.next_path.exists():
            self.using_next = True
            log.warning("broker refused the password; trying the staged %s", self.next_path.name)
            return True
        if self.using_next:
            self.using_next = False
            log.warning("broker refused the staged password too; back to %s", self.path.name)
            return True
        return False

    def accepted(self) -> None:
        """The broker accepted the password in use: a staged one that worked becomes the password."""
        if not self.using_next:
            return
        os.replace(self.next_path, self.path)  # same directory: atomic
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename survives a power cut
        finally:
            os.close(fd)
        self.using_next = False
        self.rotations += 1
        log.info("password rotated: the staged password was accepted and is now %s", self.path)
