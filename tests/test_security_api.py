"""Every API route declares a role and enforces it on the real server; failed auth is rate limited."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cloud.api.app import create_app
from cloud.api.deps import RouteInfo, route_roles
from cloud.auth import ROLES, FailedAuthLimiter, FailureLimits, TokenStore
from cloud.settings import CloudSettings
from gumei.services import free_port, stop_process
from tests.conftest import wait_for_api

PUBLIC = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/healthz"}
TODAY = dt.date.today().isoformat()
# Concrete requests that succeed with the right role; a route missing here is still checked for 401/403.
EXAMPLES: dict[tuple[str, str], dict[str, object]] = {
    ("GET", "/api/v1/waste/daily"): {"params": {"start": TODAY, "end": TODAY}},
    ("GET", "/api/v1/devices"): {"params": {"area": "A40"}},
    ("GET", "/api/v1/admin/registry"): {},
    ("GET", "/api/v1/admin/tokens"): {},
    ("POST", "/api/v1/admin/tokens"): {"json": {"name": "made by test", "role": "operator"}},
    ("GET", "/api/v1/health/residents/{resident}/observations"): {"params": {"start": TODAY, "end": TODAY}},
    ("GET", "/api/v1/health/residents/{resident}/fhir"): {"params": {"start": TODAY, "end": TODAY}},
    ("GET", "/api/v1/health/daily"): {"params": {"start": TODAY, "end": TODAY}},
}


def routes() -> list[tuple[str, RouteInfo]]:
    app = create_app(CloudSettings())
    return [(method, r) for r in route_roles(app) for method in sorted(r.methods)]


@pytest.fixture(scope="module")
def role_tokens(stack) -> dict[str, str]:  # type: ignore[no-untyped-def]
    store = stack.tokens()
    return {role: store.create(f"role test {role}", role) for role in ROLES}


def test_every_non_public_route_declares_roles() -> None:
    missing = [f"{m} {r.path}" for m, r in routes() if r.path not in PUBLIC and not r.roles]
    assert missing == []
    assert {r.path for _, r in routes()} >= {"/api/v1/waste/daily", "/api/v1/devices", "/api/v1/admin/tokens"}


@pytest.mark.parametrize(("method", "route"), [(m, r) for m, r in routes() if r.path not in PUBLIC], ids=lambda x: str(getattr(x, "path", x)))
def test_route_needs_its_role(api_url, role_tokens, stack, method, route):  # type: ignore[no-untyped-def]
    example = dict(EXAMPLES.get((method, route.path), {}))
    path = route.path.replace("{resident}", "r-" + "0" * 32)
    if "{token_id}" in path:  # revoke a token made for this purpose
        path = path.replace("{token_id}", stack.tokens().create("to revoke", "operator").split("_")[1])
    with httpx.Client(base_url=api_url, timeout=30) as http:
        def call(token: str | None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return http.request(method, path, headers=headers, **example)  # type: ignore[arg-type]

        assert call(None).status_code == 401
        wrong = [r for r in ROLES if r not in route.roles]
        for role in wrong:
            assert call(role_tokens[role]).status_code == 403, role
        right = call(role_tokens[route.roles[0]])
        if (method, route.path) in EXAMPLES or "{token_id}" in route.path:
            assert 200 <= right.status_code < 300, right.text
        else:
            assert right.status_code not in (401, 403, 429) and right.status_code < 500, right.text


def test_per_resident_health_routes_are_health_only() -> None:
    for m, r in routes():
        if "/health" in r.path and "resident" in r.path:
            assert r.roles == ("health",), f"{m} {r.path}"


def test_admin_token_lifecycle_over_the_api(api_url, role_tokens):  # type: ignore[no-untyped-def]
    admin = {"Authorization": f"Bearer {role_tokens['admin']}"}
    made = httpx.post(api_url + "/api/v1/admin/tokens", json={"name": "ops desk", "role": "operator"}, headers=admin)
    assert made.status_code == 201
    token, token_id = made.json()["token"], made.json()["id"]
    listed = httpx.get(api_url + "/api/v1/admin/tokens", headers=admin).text
    assert token_id in listed and token not in listed and "sha256" not in listed
    use = {"Authorization": f"Bearer {token}"}
    assert httpx.get(api_url + "/api/v1/devices", params={"site": "WS-0101"}, headers=use).status_code == 200
    assert httpx.delete(api_url + f"/api/v1/admin/tokens/{token_id}", headers=admin).status_code == 204
    assert httpx.get(api_url + "/api/v1/devices", params={"site": "WS-0101"}, headers=use).status_code == 401
    assert httpx.delete(api_url + "/api/v1/admin/tokens/ffffffffffff", headers=admin).status_code == 404


def test_tokens_never_appear_in_logs_or_store(api_url, stack, role_tokens):  # type: ignore[no-untyped-def]
    bad = "gm_0123456789ab_" + "S" * 43
    httpx.get(api_url + "/api/v1/devices", headers={"Authorization": f"Bearer {bad}"})
    for t in role_tokens.values():
        httpx.get(api_url + "/api/v1/devices", params={"site": "WS-0101"}, headers={"Authorization": f"Bearer {t}"})
    secrets = [t.split("_", 2)[2] for t in [*role_tokens.values(), bad]]
    texts = [p.read_text(errors="replace") for p in stack.root.rglob("*.log")] + [(stack.root / "tokens.json").read_text()]
    for secret in secrets:
        assert not any(secret in text for text in texts)
    assert "0123456789ab" in (stack.root / "logs" / "api.log").read_text()  # the id is logged, the secret is not


def test_limiter_blocks_after_limit_and_memory_is_bounded() -> None:
    now = [0.0]
    lim = FailedAuthLimiter(FailureLimits(fail_limit=3, fail_window_s=60, max_clients=100), clock=lambda: now[0])
    for _ in range(3):
        assert lim.retry_after("10.0.0.1") == 0
        lim.failed("10.0.0.1")
    assert lim.retry_after("10.0.0.1") == pytest.approx(60)
    assert lim.retry_after("10.0.0.2") == 0
    now[0] = 30
    assert lim.retry_after("10.0.0.1") == pytest.approx(30)
    now[0] = 61
    assert lim.retry_after("10.0.0.1") == 0  # the window slid past the first failure
    for i in range(10_000):
        lim.failed(f"192.0.2.{i}")
    assert len(lim) == 100


def test_token_store_keeps_only_hashes_and_verifies_any_secret(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    tokens = [store.create(f"t{i}", "operator") for i in range(40)]  # some secrets contain "_"
    assert any("_" in t.split("_", 2)[2] for t in tokens)
    assert all(store.verify(t) is not None for t in tokens)
    text = (tmp_path / "tokens.json").read_text()
    assert not any(t.split("_", 2)[2] in text for t in tokens)
    assert (tmp_path / "tokens.json").stat().st_mode & 0o077 == 0
    assert store.verify(tokens[0][:-1] + ("A" if tokens[0][-1] != "A" else "B")) is None


@pytest.fixture(scope="module")
def strict_api(stack, cloud_config) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A second API process with a low failed-auth limit (so the shared one is not blocked for other tests)."""
    port = free_port()
    log = open(stack.root / "logs" / "api-strict.log", "ab")  # noqa: SIM115 (open for the fixture's lifetime)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gumei.cli", "api", "--config", str(cloud_config), "--port", str(port), "--host", "0.0.0.0"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "GUMEI_AUTH_FAIL_LIMIT": "3", "GUMEI_AUTH_FAIL_WINDOW_S": "300"},
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_api(url)
    yield url
    stop_process(proc)
    log.close()


def test_failed_auth_is_rate_limited_per_client_address(strict_api, role_tokens):  # type: ignore[no-untyped-def]
    good = {"Authorization": f"Bearer {role_tokens['operator']}"}
    params = {"site": "WS-0101"}
    with httpx.Client(base_url=strict_api) as attacker:
        for _ in range(3):
            assert attacker.get("/api/v1/devices", headers={"Authorization": "Bearer gm_aaaaaaaaaaaa_guess"}).status_code == 401
        blocked = attacker.get("/api/v1/devices", headers={"Authorization": "Bearer gm_aaaaaaaaaaaa_guess"})
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
        assert attacker.get("/api/v1/devices", params=params, headers=good).status_code == 429  # no oracle while blocked
    other = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=strict_api.replace("127.0.0.1", "127.0.0.2"), transport=other) as neighbour:
        assert neighbour.get("/api/v1/devices", params=params, headers=good).status_code == 200
        assert neighbour.get("/api/v1/devices").status_code == 401  # no token: not counted as a guess
