"""Delivery to a real HTTP receiver the test starts: down, 500, slow, back; nothing lost, nothing
duplicated beyond at-least-once (idempotency keys), HMAC signatures, the durable delivery log."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from cloud import measurements as m
from cloud.influx import InfluxClient
from cloud.ops import store
from cloud.ops.delivery import Deliverer, Subscriber, notices, outcome_of, sign
from cloud.ops.lifecycle import Change, State, change_for
from cloud.ops.rules import BY_NAME, HOUR_MS
from devstack.services import free_port
from runtime.backoff import Backoff
from tests.support.webhook import Receiver

T0 = 1_733_000_000_000
SECRET = "s3cret-for-the-city-centre"


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver(free_port())
    yield rx
    rx.stop()


def _events(influx: InfluxClient, tag: str) -> list[str]:
    """Three applied changes (open A, open B, resolve A) plus a duplicate open of B by a second
    evaluator (a no-op: never a notice). Returns the expected idempotency keys in order."""
    gw, full = BY_NAME["gateway_offline"], BY_NAME["bin_full"]
    a, b = f"WS-{tag}1", f"WS-{tag}2-S1"
    changes: list[tuple[Change, State]] = [
        (change_for(gw, a, "open", T0, 11.0), "open"),
        (change_for(full, b, "open", T0 + 1000, 95.0), "open"),
        (change_for(full, b, "open", T0 + 1500, 95.0), "open"),
        (change_for(gw, a, "resolve", T0 + 2000, by="tok", note="back", opened_ms=T0), "resolved"),
    ]
    store.write_changes(influx, changes)
    return [
        f"gateway_offline:{a}:{T0}:open",
        f"bin_full:{b}:{T0 + 1000}:open",
        f"gateway_offline:{a}:{T0}:resolve",
    ]


def _episodes(influx: InfluxClient, tag: str) -> list:
    return [ev for (r, s), v in store.read_episodes(influx).items() if tag in s for ev in v]


def _deliverer(influx, subs, clock):
    return Deliverer(influx, subs, clock, backoff=lambda: Backoff(30.0, 600.0, rng=_Fixed()))


class _Fixed(random.Random):
    def random(self) -> float:
        return 0.5  # jitter 100 %: delays 30 s, 60 s, ...


def test_down_500_slow_then_back_delivers_everything_in_order(private_influx, receiver):
    influx = private_influx
    expected = _events(influx, "D")
    clock = Clock(T0 + 10_000)
    sub = Subscriber(name="city-centre", url=receiver.url, secret=SECRET, timeout_s=0.5)
    d = _deliverer(influx, [sub], clock)
    eps = lambda: _episodes(influx, "WS-D")  # noqa: E731
    # down: nothing listens
    r = d.run_once(eps()).by_subscriber["city-centre"]
    assert (r.delivered, r.failed, r.pending) == (0, 1, 3)
    # still inside the back-off: not even tried
    clock.now += 10_000
    assert d.run_once(eps()).by_subscriber["city-centre"].waiting
    # an hour later, answering 500
    receiver.start()
    receiver.mode = "500"
    clock.now += HOUR_MS
    r = d.run_once(eps()).by_subscriber["city-centre"]
    assert (r.delivered, r.failed) == (0, 1) and receiver.idempotency_keys(500) == expected[:1]
    # slow: the client gives up after 0.5 s (the receiver may still have taken it)
    receiver.mode = "slow"
    receiver.delay_s = 1.5
    clock.now += HOUR_MS
    r = d.run_once(eps()).by_subscriber["city-centre"]
    assert (r.delivered, r.failed) == (0, 1)
    # back: everything, in order
    receiver.mode = "ok"
    clock.now += HOUR_MS
    r = d.run_once(eps()).by_subscriber["city-centre"]
    assert (r.delivered, r.failed, r.pending) == (3, 0, 0)
    assert receiver.idempotency_keys(200)[-3:] == expected
    # at-least-once: every key arrived; the only repeats are of keys that had failed
    assert set(receiver.idempotency_keys(None)) == set(expected)
    # a later pass, and a new process (no memory): nothing sent again (the durable log)
    n = len(receiver.received)
    assert d.run_once(eps()).by_subscriber["city-centre"].delivered == 0
    assert (
        _deliverer(influx, [sub], clock).run_once(eps()).by_subscriber["city-centre"].pending == 0
    )
    assert len(receiver.received) == n
    # the delivery log has every attempt with its outcome
    outcomes = [
        (s.tags["outcome"], v[1])
        for s in influx.query(
            f'SELECT "status" FROM "{m.OPS_DELIVERY.name}" WHERE "subscriber" = \'city-centre\' GROUP BY "outcome"',
            db=influx.records_db,
        )
        for v in s.values
    ]
    assert ("failed", 0) in outcomes and ("failed", 500) in outcomes
    assert sum(1 for o, _ in outcomes if o == "delivered") == 3


def test_payload_is_signed_json_with_an_idempotency_key(private_influx, receiver):
    influx = private_influx
    expected = _events(influx, "S")
    receiver.start()
    sub = Subscriber(name="sms-gw", url=receiver.url, secret=SECRET)
    d = _deliverer(influx, [sub], Clock(T0 + 10_000))
    d.run_once(_episodes(influx, "WS-S"))
    assert receiver.idempotency_keys() == expected
    for r in receiver.received:
        ts = int(r.headers["x-gumei-timestamp"])
        want = (
            "sha256="
            + hmac.new(SECRET.encode(), f"{ts}.".encode() + r.body, hashlib.sha256).hexdigest()
        )
        assert hmac.compare_digest(r.headers["x-gumei-signature"], want)
        assert r.headers["x-gumei-signature"] == sign(SECRET, ts, r.body)
        doc = json.loads(r.body)
        assert doc["schema"] == "gumei.ops.event.v1" and doc["id"] == r.headers["idempotency-key"]
    last = json.loads(receiver.received[-1].body)
    assert (last["action"], last["state"], last["by"], last["note"]) == (
        "resolve",
        "resolved",
        "tok",
        "back",
    )
    # a tampered body no longer verifies
    r0 = receiver.received[0]
    assert (
        sign(SECRET, int(r0.headers["x-gumei-timestamp"]), r0.body + b" ")
        != r0.headers["x-gumei-signature"]
    )


def test_filters_rejections_and_robots(private_influx, receiver):
    influx = private_influx
    _events(influx, "F")
    receiver.start()
    field_only = Subscriber(name="field", url=receiver.url, audiences=["field"], actions=["open"])
    d = _deliverer(influx, [field_only], Clock(T0 + 10_000))
    d.run_once(_episodes(influx, "WS-F"))
    assert receiver.idempotency_keys() == [f"gateway_offline:WS-F1:{T0}:open"]
    # a 400 is the receiver refusing the payload: logged as rejected, not retried, the next goes on
    receiver.received.clear()
    receiver.mode = "400"
    ding = Subscriber(
        name="ding",
        url=receiver.url + "?access_token=abc",
        kind="dingtalk",
        secret=SECRET,
        min_severity="major",
    )
    r = (
        _deliverer(influx, [ding], Clock(T0 + 10_000))
        .run_once(_episodes(influx, "WS-F"))
        .by_subscriber["ding"]
    )
    assert (r.rejected, r.failed, r.pending) == (3, 0, 0)
    assert (
        _deliverer(influx, [ding], Clock(T0 + 20_000))
        .run_once(_episodes(influx, "WS-F"))
        .by_subscriber["ding"]
        .pending
        == 0
    )
    first = receiver.received[0]
    q = parse_qs(urlsplit(first.path).query)
    assert q["access_token"] == ["abc"] and q["timestamp"] and q["sign"]
    doc = json.loads(first.body)
    assert doc["msgtype"] == "text" and "gateway_offline" in doc["text"]["content"]


def test_outcomes_and_notices_are_pure():
    assert [outcome_of(s) for s in (200, 204, 400, 404, 408, 429, 500, 503, 301)] == [
        "delivered",
        "delivered",
        "rejected",
        "rejected",
        "failed",
        "failed",
        "failed",
        "failed",
        "failed",  # a redirect is not followed: retried until someone fixes the URL
    ]
    gw = BY_NAME["gateway_offline"]
    c = change_for(gw, "WS-X", "open", T0)
    from cloud.ops.lifecycle import fold

    (ev,) = fold([c])
    assert [n.key for n in notices([ev], T0)] == [f"gateway_offline:WS-X:{T0}:open"]
    assert notices([ev], T0 + 1) == []  # outside the horizon


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "x y", "url": "http://a"},
        {"name": "x", "url": "ftp://a"},
        {"name": "x", "url": "http://a", "kind": "smtp"},
        {"name": "x", "url": "http://a", "audiences": ["everyone"]},
        {"name": "x", "url": "http://a", "timeout_s": 0},
        {"name": "x", "url": "http://a", "extra": 1},
    ],
)
def test_bad_subscribers_are_refused(bad):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Subscriber.model_validate(bad)


def test_a_hostile_receivers_huge_answer_is_cut(private_influx, receiver):
    influx = private_influx
    _events(influx, "H")
    receiver.start()
    receiver.mode = "huge"
    sub = Subscriber(name="hostile", url=receiver.url)
    r = _deliverer(influx, [sub], Clock(T0 + 10_000)).run_once(_episodes(influx, "WS-H"))
    assert r.by_subscriber["hostile"].failed == 1
    (s,) = influx.query(
        f'SELECT "error" FROM "{m.OPS_DELIVERY.name}" WHERE "subscriber" = \'hostile\'',
        db=influx.records_db,
    )
    assert len(s.values[0][1]) <= 200
