"""ASGI middleware: the real client behind trusted proxies, and the audit of per-resident routes."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.audit import AuditError, AuditLog
from cloud.redact import mask_digits
from contract.models import RESIDENT_PATTERN

log = logging.getLogger("gumei.api.audit")

# Every route under this prefix reads one resident's record: each request to it is audited,
# whatever its outcome (also 401/403/404/422/429, also paths that match no route).
AUDITED_PREFIX = "/api/v1/health/residents/"
# The follow-up worklist names residents by pseudonym: listing it and acting on it are audited too.
FOLLOWUPS_PREFIX = "/api/v1/health/followups"
_FOLLOWUP = re.compile(r"^f-[0-9a-f]{20}$")
_RESIDENT = re.compile(RESIDENT_PATTERN)
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def is_audited(path: str) -> bool:
    """Whether requests to this path (or route template) are audited."""
    return path.startswith(AUDITED_PREFIX) or (
        path == FOLLOWUPS_PREFIX or path.startswith(FOLLOWUPS_PREFIX + "/")
    )


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


class RealClient:
    """Set scope["client"] to the real client when the peer is a trusted proxy.

    X-Forwarded-For is read right to left, skipping trusted proxies: the first address that is
    not a trusted proxy is the client (what a client writes into the header itself is left of
    what its proxy appended, so it cannot choose its key). From an untrusted peer the header is
    ignored. An entry that is not an IP address ends the walk and the peer stays the client.
    """

    def __init__(self, app: ASGIApp, trusted: Sequence[str]) -> None:
        self.app = app
        self.networks: list[Network] = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def trusted(self, host: str) -> bool:
        ip = _ip(host)
        return ip is not None and any(ip in n for n in self.networks)

    def client_of(self, peer: str, forwarded_for: str) -> str:
        """The real client of a request from `peer` carrying this X-Forwarded-For."""
        if not self.trusted(peer):
            return peer
        for hop in reversed([h for h in forwarded_for.split(",") if h.strip()]):
            ip = _ip(hop)
            if ip is None:
                return peer
            if not self.trusted(str(ip)):
                return str(ip)
        return peer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("client") and self.networks:
            xff = ",".join(
                v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"
            )
            if xff:
                real = self.client_of(scope["client"][0], xff)
                if real != scope["client"][0]:
                    scope = {**scope, "client": (real, 0)}
        await self.app(scope, receive, send)


def _query_value(qs: dict[str, list[str]], name: str) -> str | None:
    values = qs.get(name)
    if not values:
        return None
    value = values[0]
    return (
        value if _DAY.match(value) else mask_digits(value[:64])
    )  # never a raw card number typed in by mistake


def access_record(scope: Scope, status: int) -> dict[str, Any]:
    """The audit record of one request to a per-resident route (no token secret, no raw card number)."""
    state: dict[str, Any] = scope.get("state") or {}
    token = state.get("audit_token")
    qs = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    path: str = scope["path"]
    segment = (
        path[len(AUDITED_PREFIX) :].split("/", 1)[0] if path.startswith(AUDITED_PREFIX) else ""
    )
    followup = (
        path[len(FOLLOWUPS_PREFIX) + 1 :].split("/", 1)[0]
        if path.startswith(FOLLOWUPS_PREFIX)
        else ""
    )
    route = getattr(scope.get("route"), "path", None)
    return {
        "event": "access",
        "token_id": token.id if token is not None else state.get("audit_token_id"),
        "token_name": token.name if token is not None else None,
        "role": token.role if token is not None else None,
        "method": scope.get("method"),
        "route": route
        if route is not None and is_audited(route)
        else mask_digits(scope["path"][:200]),
        "resident": segment if _RESIDENT.fullmatch(segment) else ("invalid" if segment else None),
        **(
            {"followup": followup if _FOLLOWUP.fullmatch(followup) else "invalid"}
            if followup
            else {}
        ),
        "start": _query_value(qs, "start"),
        "end": _query_value(qs, "end"),
        "records": state.get("audit_records"),
        "client": (scope.get("client") or ("unknown",))[0],
        "status": status,
    }


class AuditResidentAccess:
    """Append an audit record for every request to a per-resident route, before its answer leaves.

    When the record cannot be written the answer is a 503 instead (fail closed: no audit, no data).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_audited(scope["path"]):
            await self.app(scope, receive, send)
            return
        audit: AuditLog = scope["app"].state.gumei.audit
        started = failed = False

        async def audited_send(message: Message) -> None:
            nonlocal started, failed
            if message["type"] == "http.response.start":
                started = True
                try:
                    await anyio.to_thread.run_sync(
                        audit.append, access_record(scope, int(message["status"]))
                    )
                except AuditError as exc:
                    log.error("%s; answering 503", exc)
                    failed = True
                    body = json.dumps({"detail": "audit log unavailable; try again later"}).encode()
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 503,
                            "headers": [
                                (b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                    return
            elif failed:
                return
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except Exception:
            if not started:
                await anyio.to_thread.run_sync(audit.append, access_record(scope, 500))
            raise
