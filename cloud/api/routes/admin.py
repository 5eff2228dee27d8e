"""Admin routes: the site registry as loaded, and API tokens (create, list, revoke)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel, Field

from cloud.api.deps import Admin, State
from cloud.auth import AuthError, Role, TokenRecord
from cloud.registry import Registry

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


class TokenOut(BaseModel):
    """A token without its secret or hash."""

    id: str
    name: str
    role: Role
    created_ms: int
    revoked: bool

    @classmethod
    def of(cls, rec: TokenRecord) -> TokenOut:
        return cls(id=rec.id, name=rec.name, role=rec.role, created_ms=rec.created_ms, revoked=rec.revoked)


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
def create_token(state: State, _: Admin, body: TokenCreate) -> TokenCreated:
    """Create a token; its secret is in this response only (the store keeps its SHA-256)."""
    token = state.tokens.create(body.name, body.role)
    rec = state.tokens.verify(token)
    assert rec is not None
    return TokenCreated(**TokenOut.of(rec).model_dump(), token=token)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(state: State, _: Admin, token_id: Annotated[str, Path(pattern="^[0-9a-f]{12}$")]) -> None:
    """Revoke a token by its id; it stops working at once in every API process."""
    try:
        state.tokens.revoke(token_id)
    except AuthError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
