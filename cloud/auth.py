"""API tokens: created and revoked by the CLI, stored hashed, checked in constant time."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationError

from runtime.system import replace_durably

Role = Literal["operator", "health", "admin", "inspector"]
ROLES: tuple[Role, ...] = ("operator", "health", "admin", "inspector")
PREFIX = "gm"


class AuthError(ValueError):
    """A token store problem (unreadable file, unknown token id, bad role)."""


class TokenRecord(BaseModel):
    """One stored token: its public id, role, and the SHA-256 of the secret token."""

    id: str
    name: str
    role: Role
    sha256: str
    created_ms: int
    revoked: bool = False


class TokenFile(BaseModel):
    """The JSON document of the token store."""

    tokens: list[TokenRecord] = []


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """A JSON file of hashed tokens. Re-read when it changes, so the CLI's edits apply live."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] = (-1, -1, -1)
        self._by_id: dict[str, TokenRecord] = {}

    def _load(self) -> TokenFile:
        if not self.path.exists():
            return TokenFile()
        try:
            return TokenFile.model_validate_json(self.path.read_bytes())
        except (OSError, ValidationError) as exc:
            raise AuthError(
                f"token store {self.path} is unreadable: {str(exc).splitlines()[0]}"
            ) from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the store's exclusive lock (flock on `<store>.lock`) for one read-modify-write.

        The CLI and every API process write the same file: without the lock a create racing a
        revoke reads the old document and its save undoes the revocation.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _save(self, doc: TokenFile) -> None:
        """Replace the file atomically (write a temporary file, fsync, rename, fsync the folder)."""
        replace_durably(self.path, doc.model_dump_json(indent=2).encode())

    def create(self, name: str, role: str) -> str:
        """Create a token and return it; only its hash is stored, so show it once."""
        if role not in ROLES:
            raise AuthError(f"role must be one of {', '.join(ROLES)}")
        token_id = secrets.token_hex(6)
        token = f"{PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
        with self._locked():
            doc = self._load()
            doc.tokens.append(
                TokenRecord(
                    id=token_id,
                    name=name,
                    role=role,
                    sha256=_digest(token),
                    created_ms=int(time.time() * 1000),
                )
            )
            self._save(doc)
        return token

    def revoke(self, token_id: str) -> None:
        """Revoke a token by its id (the middle part of the token)."""
        with self._locked():
            doc = self._load()
            for rec in doc.tokens:
                if rec.id == token_id:
                    rec.revoked = True
                    self._save(doc)
                    return
        raise AuthError(f"no token with id {token_id}")

    def list(self) -> list[TokenRecord]:
        """All tokens, without secrets."""
        return self._load().tokens

    def verify(self, token: str) -> TokenRecord | None:
        """The record of a valid, unrevoked token, or None."""
        parts = token.split("_", 2)  # the secret part may itself contain "_"
        if len(parts) != 3 or parts[0] != PREFIX:
            return None
        self._refresh()
        rec = self._by_id.get(parts[1])
        # Compare digests in constant time; compute one even for unknown ids.
        expected = rec.sha256 if rec else "0" * 64
        if not hmac.compare_digest(_digest(token), expected) or rec is None or rec.revoked:
            return None
        return rec

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._by_id = {}
            return
        stamp = (
            st.st_ino,
            st.st_mtime_ns,
            st.st_size,
        )  # the store is replaced atomically: new inode
        # A file changed within the last 2 s may change again without a visible stamp change
        # (inode reuse, coarse timestamps): re-read it until it has settled ("racy clean").
        if stamp != self._stamp or time.time_ns() - st.st_mtime_ns < 2_000_000_000:
            self._by_id = {r.id: r for r in self._load().tokens}
            self._stamp = stamp


def token_id_of(token: str) -> str:
    """The public id part of a token (safe to log), or "?" when it is not shaped like one."""
    parts = token.split("_", 2)  # the secret part may itself contain "_"
    return parts[1][:12] if len(parts) == 3 and parts[0] == PREFIX else "?"


FailLimit = Annotated[int, Field(ge=1, le=100_000)]
FailWindowS = Annotated[float, Field(gt=0, le=86_400)]
MaxClients = Annotated[int, Field(ge=1, le=10_000_000)]


class FailureLimits(BaseModel):
    """Limits on failed authentication attempts; read by CloudSettings (auth_fail_limit etc., i.e.
    GUMEI_AUTH_FAIL_LIMIT, GUMEI_AUTH_FAIL_WINDOW_S, GUMEI_AUTH_MAX_CLIENTS), which builds it."""

    fail_limit: FailLimit = 20
    fail_window_s: FailWindowS = 60.0
    max_clients: MaxClients = 10_000


class FailedAuthLimiter:
    """At most `fail_limit` failed attempts per client address per sliding window.

    Memory is bounded: at most `max_clients` addresses (least recently failing evicted first),
    each with at most `fail_limit` timestamps. Thread-safe. State is per process: with N API
    processes behind a balancer an address may get up to N x fail_limit tries (docs/security.md).
    """

    def __init__(self, limits: FailureLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> float:
        """Seconds until this client may try again (0 when it is not blocked)."""
        with self._lock:
            times = self._failures.get(client)
            if times is None or len(times) < self.limits.fail_limit:
                return 0.0
            wait = times[0] + self.limits.fail_window_s - self._clock()
            return max(wait, 0.0)

    def failed(self, client: str) -> None:
        """Record one failed attempt by this client."""
        with self._lock:
            times = self._failures.pop(client, None) or deque(maxlen=self.limits.fail_limit)
            times.append(self._clock())
            self._failures[client] = times  # most recent at the end
            while len(self._failures) > self.limits.max_clients:
                self._failures.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._failures)
