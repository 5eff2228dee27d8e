"""Admin routes: the site registry as loaded, API tokens (list, revoke, mint operator tokens) and the audit trail."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, Field

from cloud.api.deps import Admin, State
from cloud.audit import AuditError, parse_since
from cloud.auth import AuthError, Role, TokenRecord
from cloud.registry import Registry
from contract.models import RESIDENT_PATTERN

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
# No role widens its own reach: the API mints operator tokens only; health and admin tokens are
# made on the cloud host (`gumei token create`), where the act is the host operator's.
API_MINTABLE: frozenset[Role] = frozenset({"operator"})


class TokenOut(BaseModel):
    """A token without its secret or hash."""

    id: str
    name: str
    role: Role
    created_ms: int
    revoked: bool

    @classmethod
    def of(cls, rec: TokenRecord) -> TokenOut:
        return cls(
            id=rec.id, name=rec.name, role=rec.role, created_ms=rec.created_ms, revoked=rec.revoked
        )


class TokenCreate(BaseModel):
    """Who or what the token is for, and its role."""

    name: str = Field(min_length=1, max_length=200)
    role: Role


class TokenCreated(TokenOut):
    """The new token; the secret is shown this once."""

    token: str


@router.get("/registry", response_model=Registry)
def registry(state: State, _: Admin) -> Registry:
    """The site registry this API process loaded (areas, sites, devices, retired flags)."""
    return state.registry


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(state: State, _: Admin) -> list[TokenOut]:
    """Every token's id, name, role and state; never secrets or hashes."""
    return [TokenOut.of(r) for r in state.tokens.list()]


@router.post("/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED)
def create_token(request: Request, state: State, admin: Admin, body: TokenCreate) -> TokenCreated:
    """Create an operator token; its secret is in this response only (the store keeps its SHA-256)."""
    if body.role not in API_MINTABLE:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"the API mints operator tokens only; create {body.role} tokens on the cloud host with `gumei token create`",
        )
    token = state.tokens.create(body.name, body.role)
    rec = state.tokens.verify(token)
    assert rec is not None
    _record(request, state, admin, "token_created", rec.id, role=rec.role, subject_name=rec.name)
    return TokenCreated(**TokenOut.of(rec).model_dump(), token=token)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(
    request: Request,
    state: State,
    admin: Admin,
    token_id: Annotated[str, Path(pattern="^[0-9a-f]{12}$")],
) -> None:
    """Revoke a token by its id; it stops working at once in every API process."""
    try:
        state.tokens.revoke(token_id)
    except AuthError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    _record(request, state, admin, "token_revoked", token_id)


def _record(
    request: Request, state: State, admin: TokenRecord, event: str, subject: str, **fields: str
) -> None:
    """A token made or revoked through the API, in the audit trail (by which admin token, from where)."""
    state.audit.append(
        {
            "event": event,
            "subject_token": subject,
            **fields,
            "token_id": admin.id,
            "token_name": admin.name,
            "role": admin.role,
            "client": request.client.host if request.client else "unknown",
        }
    )


class AuditResponse(BaseModel):
    """Audit records, oldest first (the newest `limit` that match)."""

    records: list[dict[str, Any]]


@router.get("/audit", response_model=AuditResponse)
def audit(
    state: State,
    _: Admin,
    since: Annotated[
        str | None, Query(max_length=40, description="7d, 24h, 30m, or an ISO date/time (UTC)")
    ] = None,
    token: Annotated[str | None, Query(pattern="^[0-9a-f]{12}$", description="token id")] = None,
    resident: Annotated[
        str | None, Query(pattern=RESIDENT_PATTERN, description="resident pseudonym")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> AuditResponse:
    """The audit trail of per-resident access (admin only)."""
    try:
        start = parse_since(since, time.time()) if since else None
        return AuditResponse(
            records=state.audit.read(
                start, token, resident, min(limit, state.settings.api_max_rows)
            )
        )
    except AuditError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
