"""Shared FastAPI dependencies: settings, InfluxDB client, registry, and role checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cloud.auth import Role, TokenRecord, TokenStore
from cloud.influx import InfluxClient
from cloud.registry import Registry
from cloud.settings import CloudSettings


@dataclass
class AppState:
    """What every request may use; built once at start-up."""

    settings: CloudSettings
    influx: InfluxClient
    registry: Registry
    tokens: TokenStore


def get_state(request: Request) -> AppState:
    """The application's state."""
    return request.app.state.gumei  # type: ignore[no-any-return]


State = Annotated[AppState, Depends(get_state)]
_bearer = HTTPBearer(auto_error=False)


def require(*roles: Role) -> Callable[..., TokenRecord]:
    """A dependency admitting only tokens of the given roles: 401 without a valid token, 403 otherwise."""

    def check(
        state: State, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> TokenRecord:
        record = state.tokens.verify(creds.credentials) if creds else None
        if record is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="missing or invalid bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if record.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"this route needs role {' or '.join(roles)}")
        return record

    check.roles = roles  # type: ignore[attr-defined]
    return check


Operator = Annotated[TokenRecord, Depends(require("operator", "admin"))]
Health = Annotated[TokenRecord, Depends(require("health"))]
Admin = Annotated[TokenRecord, Depends(require("admin"))]
