"""Every API route declares a role and enforces it on the real server; failed auth is rate limited."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud.api.app import create_app
from cloud.api.deps import RouteInfo, route_roles
from cloud.auth import ROLES, FailedAuthLimiter, FailureLimits, TokenStore
from cloud.settings import CloudSettings
from tests.support.api_process import api_process
from tests.support.common import PROJECT

PUBLIC = {
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/healthz",
}
PUBLIC_ROUTES = {("GET", "/inspections/form")}  # the empty form; its POST needs the inspector role


def public(method: str, route: RouteInfo) -> bool:
    return route.path in PUBLIC or (method, route.path) in PUBLIC_ROUTES


TODAY = dt.date.today().isoformat()
# Concrete requests that succeed with the right role; a route missing here is still checked for 401/403.
EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/api/v1/waste/daily"): {"params": {"start": TODAY, "end": TODAY}},
    ("GET", "/api/v1/waste/sorting-comparison"): {"params": {"start": TODAY, "end": TODAY}},
    ("GET", "/api/v1/devices"): {"params": {"area": "A40"}},
    ("GET", "/api/v1/admin/registry"): {},
    ("GET", "/api/v1/admin/tokens"): {},
    ("POST", "/api/v1/admin/tokens"): {"json": {"name": "made by test", "role": "operator"}},
    ("GET", "/api/v1/health/residents/{resident}/observations"): {
        "params": {"start": TODAY, "end": TODAY}
    },
    ("GET", "/api/v1/health/residents/{resident}/fhir"): {"params": {"start": TODAY, "end": TODAY}},
    ("GET", "/api/v1/health/daily"): {"params": {"start": TODAY, "end": TODAY}},
    ("GET", "/api/v1/admin/audit"): {"params": {"since": "1h", "limit": 10}},
    ("GET", "/api/v1/inspections"): {"params": {"start": TODAY, "end": TODAY}},
    ("GET", "/api/v1/inspections/effectiveness"): {"params": {"start": TODAY, "end": TODAY}},
    ("GET", "/api/v1/ops/rules"): {},
    ("GET", "/api/v1/ops/events"): {"params": {"state": "active", "limit": 10}},
}


def routes() -> list[tuple[str, RouteInfo]]:
    app = create_app(CloudSettings())
    return [(method, r) for r in route_roles(app) for method in sorted(r.methods)]


@pytest.fixture(scope="module")
def role_tokens(stack) -> dict[str, str]:
    store = stack.tokens()
    return {role: store.create(f"role test {role}", role) for role in ROLES}


def test_every_non_public_route_declares_roles() -> None:
    missing = [f"{m} {r.path}" for m, r in routes() if not public(m, r) and not r.roles]
    assert missing == []
    assert {r.path for _, r in routes()} >= {
        "/api/v1/waste/daily",
        "/api/v1/devices",
        "/api/v1/admin/tokens",
    }


@pytest.mark.parametrize(
    ("method", "route"),
    [(m, r) for m, r in routes() if not public(m, r)],
    ids=lambda x: str(getattr(x, "path", x)),
)
def test_route_needs_its_role(api_url, role_tokens, stack, method, route):
    example = dict(EXAMPLES.get((method, route.path), {}))
    path = route.path.replace("{resident}", "r-" + "0" * 32)
    if "{token_id}" in path:  # revoke a token made for this purpose
        path = path.replace(
            "{token_id}", stack.tokens().create("to revoke", "operator").split("_")[1]
        )
    with httpx.Client(base_url=api_url, timeout=30) as http:

        def call(token: str | None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return http.request(method, path, headers=headers, **example)

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


def test_admin_token_lifecycle_over_the_api(api_url, role_tokens):
    admin = {"Authorization": f"Bearer {role_tokens['admin']}"}
    made = httpx.post(
        api_url + "/api/v1/admin/tokens",
        json={"name": "ops desk", "role": "operator"},
        headers=admin,
    )
    assert made.status_code == 201
    token, token_id = made.json()["token"], made.json()["id"]
    listed = httpx.get(api_url + "/api/v1/admin/tokens", headers=admin).text
    assert token_id in listed and token not in listed and "sha256" not in listed
    use = {"Authorization": f"Bearer {token}"}
    assert (
        httpx.get(api_url + "/api/v1/devices", params={"site": "WS-0101"}, headers=use).status_code
        == 200
    )
    assert (
        httpx.delete(api_url + f"/api/v1/admin/tokens/{token_id}", headers=admin).status_code == 204
    )
    assert (
        httpx.get(api_url + "/api/v1/devices", params={"site": "WS-0101"}, headers=use).status_code
        == 401
    )
    assert (
        httpx.delete(api_url + "/api/v1/admin/tokens/ffffffffffff", headers=admin).status_code
        == 404
    )


def test_tokens_never_appear_in_logs_or_store(api_url, stack, role_tokens):
    bad = "gm_0123456789ab_" + "S" * 43
    httpx.get(api_url + "/api/v1/devices", headers={"Authorization": f"Bearer {bad}"})
    for t in role_tokens.values():
        httpx.get(
            api_url + "/api/v1/devices",
            params={"site": "WS-0101"},
            headers={"Authorization": f"Bearer {t}"},
        )
    secrets = [t.split("_", 2)[2] for t in [*role_tokens.values(), bad]]
    texts = [p.read_text(errors="replace") for p in stack.root.rglob("*.log")] + [
        (stack.root / "tokens.json").read_text()
    ]
    for secret in secrets:
        assert not any(secret in text for text in texts)
    assert (
        "0123456789ab" in (stack.root / "logs" / "api.log").read_text()
    )  # the id is logged, the secret is not


def test_limiter_blocks_after_limit_and_memory_is_bounded() -> None:
    now = [0.0]
    lim = FailedAuthLimiter(
        FailureLimits(fail_limit=3, fail_window_s=60, max_clients=100), clock=lambda: now[0]
    )
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
def strict_api(stack, cloud_config) -> Iterator[str]:
    """A second API process with a low failed-auth limit (so the shared one is not blocked for other tests)."""
    env = {"GUMEI_AUTH_FAIL_LIMIT": "3", "GUMEI_AUTH_FAIL_WINDOW_S": "300"}
    with api_process(stack, cloud_config, "api-strict", env, any_host=True) as url:
        yield url


def test_failed_auth_is_rate_limited_per_client_address(strict_api, role_tokens):
    good = {"Authorization": f"Bearer {role_tokens['operator']}"}
    params = {"site": "WS-0101"}
    with httpx.Client(base_url=strict_api) as attacker:
        for _ in range(3):
            assert (
                attacker.get(
                    "/api/v1/devices", headers={"Authorization": "Bearer gm_aaaaaaaaaaaa_guess"}
                ).status_code
                == 401
            )
        blocked = attacker.get(
            "/api/v1/devices", headers={"Authorization": "Bearer gm_aaaaaaaaaaaa_guess"}
        )
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
        assert (
            attacker.get("/api/v1/devices", params=params, headers=good).status_code == 429
        )  # no oracle while blocked
    other = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(
        base_url=strict_api.replace("127.0.0.1", "127.0.0.2"), transport=other
    ) as neighbour:
        assert neighbour.get("/api/v1/devices", params=params, headers=good).status_code == 200
        assert (
            neighbour.get("/api/v1/devices").status_code == 401
        )  # no token: not counted as a guess


# ---- issue 13: least privilege for health data --------------------------------------------------

DOC = PROJECT / "docs" / "security.md"


def documented_routes() -> dict[tuple[str, str], tuple[str, bool]]:
    """The table under "## API routes and roles" in docs/security.md: (method, route) -> (roles, audited)."""
    text = DOC.read_text()
    section = text.split("\n## API routes and roles\n", 1)[1].split("\n## ", 1)[0]
    rows = [
        line.strip().strip("|").split("|") for line in section.splitlines() if line.startswith("|")
    ]
    out = {}
    for method, route, roles, audited in [tuple(c.strip() for c in r) for r in rows[2:]]:
        out[(method, route.strip("`"))] = (roles.split(" (")[0], audited == "yes")
    return out


def test_routes_table_matches_the_app() -> None:
    from cloud.api.middleware import is_audited

    actual = {
        (m, r.path): (", ".join(r.roles) if r.roles else "public", is_audited(r.path))
        for m, r in routes()
    }
    assert documented_routes() == actual
    assert all(
        a for (_, path), (_, a) in actual.items() if "{resident}" in path
    )  # per-resident => audited


@pytest.mark.parametrize("role", ["health", "admin"])
def test_the_api_mints_no_health_or_admin_token(api_url, role_tokens, stack, role):
    before = len(stack.tokens().list())
    r = httpx.post(
        api_url + "/api/v1/admin/tokens",
        json={"name": "escalate", "role": role},
        headers={"Authorization": f"Bearer {role_tokens['admin']}"},
    )
    assert r.status_code == 403
    assert (
        r.json()["detail"]
        == f"the API mints operator tokens only; create {role} tokens on the cloud host with `gumei token create`"
    )
    assert len(stack.tokens().list()) == before
    for other in ("operator", "health"):  # and no other role may mint at all
        r = httpx.post(
            api_url + "/api/v1/admin/tokens",
            json={"name": "x", "role": "operator"},
            headers={"Authorization": f"Bearer {role_tokens[other]}"},
        )
        assert r.status_code == 403


def _churn(path: str, to_revoke: list[str], n_create: int, out: str) -> None:
    """Create and revoke at once from two threads of this process; write the created tokens to `out`."""
    import threading

    created: list[str] = []

    def creator() -> None:
        store = TokenStore(Path(path))
        created.extend(store.create(f"churn {i}", "operator") for i in range(n_create))

    def revoker() -> None:
        store = TokenStore(Path(path))
        for token_id in to_revoke:
            store.revoke(token_id)

    threads = [threading.Thread(target=creator), threading.Thread(target=revoker)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    Path(out).write_text("\n".join(created))


def test_concurrent_creates_and_revokes_lose_nothing(tmp_path: Path) -> None:
    import multiprocessing

    path = tmp_path / "tokens.json"
    store = TokenStore(path)
    old = [store.create(f"old {i}", "operator") for i in range(48)]
    revoke = [t.split("_")[1] for t in old[:32]]
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_churn, args=(str(path), revoke[w::4], 15, str(tmp_path / f"out{w}")))
        for w in range(4)
    ]
    for p in procs:
        p.start()
    _churn(str(path), [], 15, str(tmp_path / "out-main"))  # this process creates at the same time
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    created = [t for f in tmp_path.glob("out*") for t in f.read_text().split("\n") if t]
    assert len(created) == 75
    fresh = TokenStore(path)
    assert all(fresh.verify(t) is not None for t in created + old[32:])
    assert all(fresh.verify(t) is None for t in old[:32])
    assert len(fresh.list()) == 48 + 75
    assert not list(tmp_path.glob(".tokens.json.*.tmp"))


@pytest.fixture(scope="module")
def proxied_api(stack, cloud_config) -> Iterator[str]:
    """An API process behind a "proxy" at 127.0.0.1 (trusted), with a low failed-auth limit and row limit."""
    env = {
        "GUMEI_AUTH_FAIL_LIMIT": "3",
        "GUMEI_AUTH_FAIL_WINDOW_S": "300",
        "GUMEI_API_FORWARDED_ALLOW_IPS": '["127.0.0.1"]',
        "GUMEI_API_MAX_ROWS": "2",
    }
    with api_process(stack, cloud_config, "api-proxied", env, any_host=True) as url:
        yield url


def test_behind_a_proxy_limits_key_on_the_real_client(proxied_api, role_tokens):
    good = {"Authorization": f"Bearer {role_tokens['operator']}"}
    bad = {"Authorization": "Bearer gm_bbbbbbbbbbbb_guess"}
    params = {"site": "WS-0101"}
    with httpx.Client(
        base_url=proxied_api
    ) as proxy:  # every request comes from the proxy's address

        def via(client: str, headers: dict[str, str]) -> int:
            # the attacker writes its own X-Forwarded-For; the proxy appends the address it saw
            return proxy.get(
                "/api/v1/devices",
                params=params,
                headers={**headers, "X-Forwarded-For": f"10.9.9.9, {client}"},
            ).status_code

        assert [via("198.51.100.7", bad) for _ in range(4)] == [401, 401, 401, 429]
        assert via("198.51.100.7", good) == 429  # the guesser stays blocked
        assert [via("198.51.100.8", good) for _ in range(5)] == [
            200
        ] * 5  # another client behind the same proxy
        assert (
            proxy.get("/api/v1/devices", params=params, headers=good).status_code == 200
        )  # the proxy itself
    other = httpx.HTTPTransport(
        local_address="127.0.0.2"
    )  # not a trusted proxy: its header is ignored
    with httpx.Client(
        base_url=proxied_api.replace("127.0.0.1", "127.0.0.2"), transport=other
    ) as peer:
        for i in range(3):
            assert (
                peer.get(
                    "/api/v1/devices", headers={**bad, "X-Forwarded-For": f"203.0.113.{i}"}
                ).status_code
                == 401
            )
        assert (
            peer.get(
                "/api/v1/devices",
                params=params,
                headers={**good, "X-Forwarded-For": "203.0.113.99"},
            ).status_code
            == 429
        )


def test_answers_beyond_the_row_limit_are_422(proxied_api, role_tokens, stack, influx):
    from tests.support.health import DAY, seed_resident

    op = {"Authorization": f"Bearer {role_tokens['operator']}", "X-Forwarded-For": "198.51.100.50"}
    with httpx.Client(base_url=proxied_api, timeout=30) as http:
        assert (
            http.get("/api/v1/devices", params={"site": "WS-0101"}, headers=op).status_code == 200
        )
        r = http.get("/api/v1/devices", params={"area": "A40"}, headers=op)
        assert r.status_code == 422
        assert "more than the limit of 2 (api_max_rows)" in r.json()["detail"]
        resident = seed_resident(influx)
        hp = {
            "Authorization": f"Bearer {role_tokens['health']}",
            "X-Forwarded-For": "198.51.100.51",
        }
        r = http.get(
            f"/api/v1/health/residents/{resident}/observations",
            params={"start": DAY, "end": DAY},
            headers=hp,
        )
        assert r.status_code == 422 and "would have 3 rows" in r.json()["detail"]
    (rec,) = [
        x
        for x in map(json.loads, (stack.root / "audit.jsonl").read_text().splitlines())
        if x.get("resident") == resident
    ]
    assert (rec["status"], rec["client"]) == (422, "198.51.100.51")  # audited, with the real client
