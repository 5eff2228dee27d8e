"""Shared FastAPI dependencies: settings, InfluxDB client, registry, and role checks."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cloud.audit import AuditLog
from cloud.auth import FailedAuthLimiter, Role, TokenRecord, TokenStore, token_id_of
from cloud.influx import InfluxClient
from cloud.registry import LiveRegistry, Registry
from cloud.settings import CloudSettings

log = logging.getLogger("gumei.api.auth")


@dataclass
class AppState:
    """What every request may use; built once at start-up."""

    settings: CloudSettings
    influx: InfluxClient
    live_registry: LiveRegistry
    tokens: TokenStore
    audit: AuditLog
    # the operations identity ([influx.ops]) for the event routes' writes; None when not configured
    ops_influx: InfluxClient | None = None

    @property
    def registry(self) -> Registry:
        """The registry now: reloaded when its file changes (docs/deploy.md, live provisioning)."""
        return self.live_registry.current()


def get_state(request: Request) -> AppState:
    """The application's state."""
    return request.app.state.gumei


State = Annotated[AppState, Depends(get_state)]
_bearer = HTTPBearer(auto_error=False)
_limiter_lock = threading.Lock()


def auth_limiter(app: FastAPI) -> FailedAuthLimiter:
    """The app's failed-authentication limiter, made on first use from the settings (GUMEI_AUTH_*)."""
    with _limiter_lock:
        limiter = getattr(app.state, "auth_limiter", None)
        if limiter is None:
            limiter = app.state.auth_limiter = FailedAuthLimiter(
                app.state.gumei.settings.failure_limits()
            )
        return limiter


@dataclass(frozen=True, eq=False)
class RoleCheck:
    """A dependency admitting only tokens of the given roles (made by require())."""

    roles: tuple[Role, ...]

    def __call__(
        self,
        request: Request,
        state: State,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> TokenRecord:
        roles = self.roles
        limiter = auth_limiter(request.app)
        client = request.client.host if request.client else "unknown"
        if creds is not None:  # for the audit trail (cloud/api/middleware.py): public ids only
            request.state.audit_token_id = token_id_of(creds.credentials)
        wait = limiter.retry_after(client)
        if wait > 0:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail="too many failed authentication attempts; try again later",
                headers={"Retry-After": str(int(wait) + 1)},
            )
        record = state.tokens.verify(creds.credentials) if creds else None
        request.state.audit_token = record
        if record is None:
            if creds is not None:
                limiter.failed(client)
                log.warning(
                    "rejected bearer token id=%s from %s", token_id_of(creds.credentials), client
                )
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="missing or invalid bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if record.role not in roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail=f"this route needs role {' or '.join(roles)}"
            )
        return record


def require(*roles: Role) -> RoleCheck:
    """A dependency admitting only tokens of the given roles.

    401 without a valid token, 403 with a valid token of another role, 429 (with Retry-After)
    once this client address has failed too often. Only attempts that present a bearer token
    count as failures. Tokens are never logged; only their public id is.
    """
    return RoleCheck(roles)


def roles_of(call: object) -> tuple[Role, ...] | None:
    """The roles a dependency made by require() admits, or None for any other callable."""
    return call.roles if isinstance(call, RoleCheck) else None


def bounded(rows: int, state: AppState) -> None:
    """422 when an answer would have more rows than `api_max_rows` (no paging: narrow the request)."""
    limit = state.settings.api_max_rows
    if rows > limit:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"the answer would have {rows} rows, more than the limit of {limit} (api_max_rows); "
            "ask for fewer days or filter",
        )


Operator = Annotated[TokenRecord, Depends(require("operator", "admin"))]
Health = Annotated[TokenRecord, Depends(require("health"))]
Admin = Annotated[TokenRecord, Depends(require("admin"))]


@dataclass(frozen=True)
class RouteInfo:
    """One HTTP route of the app and the roles its require() dependency admits (None = public)."""

    path: str
    methods: frozenset[str]
    roles: tuple[Role, ...] | None


def _roles_in(dependant: object) -> tuple[Role, ...] | None:
    for sub in getattr(dependant, "dependencies", []):
        found = roles_of(getattr(sub, "call", None)) or _roles_in(sub)
        if found:
            return found
    return None


def route_roles(app: FastAPI) -> list[RouteInfo]:
    """Every route of the app (routers included) with its declared roles, for audits and tests."""
    out: list[RouteInfo] = []
    for route in app.routes:
        candidates = getattr(route, "effective_candidates", None)
        entries = (
            (candidates() if callable(candidates) else candidates)
            if candidates is not None
            else [route]
        )
        for r in entries:
            path = getattr(r, "path", None)
            if path is None:
                continue
            dependant = getattr(r, "dependant", None)
            methods = frozenset(getattr(r, "methods", None) or ()) - {"HEAD"}
            out.append(
                RouteInfo(path, methods, _roles_in(dependant) if dependant is not None else None)
            )
    return out
