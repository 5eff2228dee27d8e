"""The API's door: tokens, roles and parameter validation, against the real server process."""

from __future__ import annotations

import httpx
import pytest

DAILY = "/api/v1/waste/daily"


@pytest.fixture(scope="module")
def tokens(stack):
    store = stack.tokens()
    revoked = store.create("old", "operator")
    store.revoke(revoked.split("_")[1])
    return {"health": store.create("nurse", "health"), "revoked": revoked}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer gm_000000000000_" + "x" * 43},
    ],
)
def test_missing_or_wrong_token_is_401(api_url, headers):
    r = httpx.get(
        api_url + DAILY, params={"start": "2025-01-01", "end": "2025-01-01"}, headers=headers
    )
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


def test_revoked_token_is_401(api_url, tokens):
    r = httpx.get(
        api_url + DAILY,
        params={"start": "2025-01-01", "end": "2025-01-01"},
        headers={"Authorization": f"Bearer {tokens['revoked']}"},
    )
    assert r.status_code == 401


def test_health_role_cannot_read_waste_rows(api_url, tokens):
    r = httpx.get(
        api_url + DAILY,
        params={"start": "2025-01-01", "end": "2025-01-01"},
        headers={"Authorization": f"Bearer {tokens['health']}"},
    )
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"start": "2025-13-01", "end": "2025-12-31"}, "start"),
        ({"start": "yesterday", "end": "2025-12-31"}, "start"),
        ({"start": "2025-01-02"}, "end: Field required"),
        (
            {"start": "2025-01-02", "end": "2025-01-01"},
            "end (2025-01-01) is before start (2025-01-02)",
        ),
        ({"start": "2000-01-01", "end": "2025-01-01"}, "at most"),
        (
            {"start": "0210-01-01", "end": "0220-01-01"},
            "start (0210-01-01) must be between 1970-01-01 and 2199-12-31",
        ),
        ({"start": "2025-01-01", "end": "9999-12-31"}, "end (9999-12-31) must be between"),
        ({"start": "2025-01-01", "end": "2025-01-01", "site": "WS 01'; DROP"}, "site"),
        ({"start": "2025-01-01", "end": "2025-01-01", "category": "plastic"}, "category"),
    ],
)
def test_bad_parameters_are_422_with_a_clear_message(api_url, operator_token, params, fragment):
    r = httpx.get(
        api_url + DAILY, params=params, headers={"Authorization": f"Bearer {operator_token}"}
    )
    assert r.status_code == 422
    assert fragment in r.json()["detail"]


def test_empty_range_answers_no_rows(api_url, operator_token):
    r = httpx.get(
        api_url + DAILY,
        params={"start": "2001-01-01", "end": "2001-01-31"},
        headers={"Authorization": f"Bearer {operator_token}"},
    )
    assert r.status_code == 200
    assert r.json() == {"rows": []}


@pytest.mark.parametrize("date", ["1969-12-31", "2200-01-01", "0001-01-01"])
def test_targets_day_out_of_bounds_is_422(api_url, operator_token, date):
    r = httpx.get(
        api_url + "/api/v1/waste/targets",
        params={"date": date},
        headers={"Authorization": f"Bearer {operator_token}"},
    )
    assert r.status_code == 422
    assert f"date ({date}) must be between" in r.json()["detail"]
