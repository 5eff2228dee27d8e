"""The operations routes on the real API process: roles, listing by state, transitions (404/409),
hostile parameters; changes stored durably in the real influxd."""

from __future__ import annotations

import time

import httpx
import pytest

from cloud.ops import store
from cloud.ops.lifecycle import change_for
from cloud.ops.rules import BY_NAME, HOUR_MS

EVENTS = "/api/v1/ops/events"
RULE = BY_NAME["gateway_offline"]


def _now() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture(scope="module")
def tokens(stack):
    store_ = stack.tokens()
    return {
        "operator": store_.create("ops operator", "operator"),
        "admin": store_.create("ops admin", "admin"),
        "health": store_.create("ops nurse", "health"),
    }


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _open(influx, subject: str, opened_ms: int) -> str:
    c = change_for(RULE, subject, "open", opened_ms, 12.0)
    store.write_changes(influx, [(c, "open")])
    return f"{RULE.name}:{subject}:{opened_ms}"


def test_unauthenticated_is_401_and_health_is_403(api_url, tokens):
    assert httpx.get(api_url + EVENTS).status_code == 401
    assert httpx.get(api_url + EVENTS, headers=_h("gm_000000000000_" + "x" * 43)).status_code == 401
    assert httpx.get(api_url + EVENTS, headers=_h(tokens["health"])).status_code == 403
    post = api_url + EVENTS + f"/{RULE.name}:WS-API-0:1/resolve"
    assert httpx.post(post, json={"note": "x"}).status_code == 401
    r = httpx.post(post, json={"note": "x"}, headers=_h(tokens["health"]))
    assert r.status_code == 403 and "operator" in r.json()["detail"]
    assert httpx.get(api_url + "/api/v1/ops/rules", headers=_h(tokens["health"])).status_code == 403


def test_rules_table(api_url, tokens):
    r = httpx.get(api_url + "/api/v1/ops/rules", headers=_h(tokens["operator"]))
    assert r.status_code == 200
    rows = {x["name"]: x for x in r.json()}
    assert rows["bin_full"]["audience"] == "collection" and rows["bin_full"]["active"]
    assert rows["followups_overdue"]["active"] and rows["followups_overdue"]["audience"] == "health"


def test_acknowledge_then_resolve_with_a_note(api_url, tokens, influx):
    event_id = _open(influx, "WS-API-1", _now() - 60_000)
    op = _h(tokens["operator"])
    listed = httpx.get(
        api_url + EVENTS, params={"state": "open", "subject": "WS-API-1"}, headers=op
    )
    assert listed.status_code == 200
    assert [e["id"] for e in listed.json()["events"]] == [event_id]
    r = httpx.post(api_url + EVENTS + f"/{event_id}/acknowledge", headers=op)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (
        body["state"] == "acknowledged"
        and body["acknowledged_by"] == tokens["operator"].split("_")[1]
    )
    # twice: 409, nothing stored
    r = httpx.post(api_url + EVENTS + f"/{event_id}/acknowledge", headers=op)
    assert r.status_code == 409 and "already acknowledged" in r.json()["detail"]
    # resolving needs a note
    r = httpx.post(api_url + EVENTS + f"/{event_id}/resolve", headers=op)
    assert r.status_code == 422
    r = httpx.post(api_url + EVENTS + f"/{event_id}/resolve", json={"note": ""}, headers=op)
    assert r.status_code == 422
    note = 'power cut at the station; "fixed" \\ by the site team\nline 2'
    r = httpx.post(
        api_url + EVENTS + f"/{event_id}/resolve", json={"note": note}, headers=_h(tokens["admin"])
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "resolved" and r.json()["note"] == note
    for action, payload in (("resolve", {"note": "again"}), ("acknowledge", None)):
        r = httpx.post(api_url + EVENTS + f"/{event_id}/{action}", json=payload, headers=op)
        assert r.status_code == 409 and "resolved" in r.json()["detail"]
    # durable: folded from what influxd holds
    (ev,) = store.read_episodes(influx, RULE.name, "WS-API-1")[(RULE.name, "WS-API-1")]
    assert (ev.state, ev.note, ev.resolved_by) == ("resolved", note, tokens["admin"].split("_")[1])
    resolved = httpx.get(
        api_url + EVENTS, params={"state": "resolved", "subject": "WS-API-1"}, headers=op
    )
    assert [e["id"] for e in resolved.json()["events"]] == [event_id]
    assert (
        httpx.get(
            api_url + EVENTS, params={"state": "active", "subject": "WS-API-1"}, headers=op
        ).json()["events"]
        == []
    )


def test_resolve_an_open_event_directly_and_an_old_episode_is_409(api_url, tokens, influx):
    op = _h(tokens["operator"])
    t0 = _now() - 10 * 60_000
    first = _open(influx, "WS-API-2", t0)
    r = httpx.post(api_url + EVENTS + f"/{first}/resolve", json={"note": "reset"}, headers=op)
    assert r.status_code == 200
    second = _open(influx, "WS-API-2", _now() + 1)  # the condition came back: a new episode
    r = httpx.post(api_url + EVENTS + f"/{first}/acknowledge", headers=op)
    assert r.status_code == 409
    assert httpx.post(api_url + EVENTS + f"/{second}/acknowledge", headers=op).status_code == 200


def test_overdue_filter(api_url, tokens, influx):
    op = _h(tokens["operator"])
    late = _open(influx, "WS-API-3", _now() - 5 * HOUR_MS)  # major: 4 h, so overdue
    fresh = _open(influx, "WS-API-4", _now() - 60_000)
    r = httpx.get(api_url + EVENTS, params={"state": "overdue"}, headers=op)
    ids = {e["id"] for e in r.json()["events"]}
    assert late in ids and fresh not in ids
    assert all(e["overdue"] for e in r.json()["events"]) and r.json()["overdue"] >= 1


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/{RULE.name}:WS-API-9:1/acknowledge", 404),  # well-formed, never opened
        ("/gateway_offline:WS-API-9/acknowledge", 422),  # no opened time
        ("/no_such_rule:WS-API-9:1/acknowledge", 422),
        ("/gateway_offline:WS-API-9:1:2/acknowledge", 422),
        ("/gateway_offline:WS%20API:1/acknowledge", 422),
        ("/gateway_offline:WS-API-9:99999999999999999/acknowledge", 422),  # too many digits
        ("/gateway_offline:" + "A" * 300 + ":1/acknowledge", 422),
        (f"/{RULE.name}:WS-API-9:1/delete", 404),
    ],
)
def test_bad_event_ids(api_url, tokens, path, status):
    r = httpx.post(api_url + EVENTS + path, headers=_h(tokens["operator"]))
    assert r.status_code == status, r.text
    assert isinstance(r.json()["detail"], str)


@pytest.mark.parametrize(
    "params",
    [
        {"state": "closed"},
        {"rule": "bin_full' OR 1=1"},
        {"subject": "WS-0101' OR ''='"},
        {"subject": "/.*/"},
        {"limit": "0"},
        {"limit": "100001"},
        {"limit": "ten"},
    ],
)
def test_hostile_list_parameters_are_422(api_url, tokens, params):
    r = httpx.get(api_url + EVENTS, params=params, headers=_h(tokens["operator"]))
    assert r.status_code == 422 and isinstance(r.json()["detail"], str)


@pytest.mark.parametrize(
    "body",
    [
        {"note": "x" * 501},
        {"note": "ok", "by": "someone-else"},  # who did it is the token, never the body
        {"note": 5},
        ["note"],
    ],
)
def test_hostile_resolve_bodies_are_422_and_change_nothing(api_url, tokens, influx, body):
    event_id = _open(influx, f"WS-API-H{abs(hash(str(body))) % 1000}", _now() - 60_000)
    r = httpx.post(
        api_url + EVENTS + f"/{event_id}/resolve", json=body, headers=_h(tokens["operator"])
    )
    assert r.status_code == 422
    subject = event_id.split(":")[1]
    (ev,) = store.read_episodes(influx, RULE.name, subject)[(RULE.name, subject)]
    assert ev.state == "open"
