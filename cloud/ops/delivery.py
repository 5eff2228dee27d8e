"""Delivery of operations events to subscribers: signed JSON webhooks, retried, logged, never lost.

The outbox is the event log itself (`ops_event`, durable in InfluxDB): every change that applied
in the fold (an episode opened, acknowledged, resolved) is a notice with a stable idempotency key,
`rule:subject:opened_ms:action`, the same whichever evaluator wrote it and however often. A pass
sends each subscriber, in time order, the notices of the delivery horizon that its delivery log
(`ops_delivery`) does not yet record as delivered (or rejected); a receiver down for an hour (or a
day: the horizon is 7 days) gets everything when it is back. At-least-once: a send whose answer is
lost is sent again, with the same key, for the receiver to drop.

Outcomes: 2xx delivered; 408, 429, 5xx, a timeout or no connection retry later (the subscriber
waits out a back-off, its later notices wait behind it, so order holds); any other 4xx is rejected
(the receiver refuses this payload: retrying cannot help), logged and passed.

Signing (kind "json"): `X-Gumei-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." +
body)>` with `X-Gumei-Timestamp` (epoch seconds) and `Idempotency-Key`. Kind "wecom" and
"dingtalk" post the robots' text message ({"msgtype": "text", ...}); DingTalk's signature is its
own (`timestamp` and `sign` query parameters, HMAC-SHA256 of "timestamp\\nsecret", base64).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from urllib.parse import quote_plus

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cloud import measurements as m
from cloud.influx import InfluxClient
from cloud.lineproto import line
from cloud.ops.lifecycle import STATE_AFTER, Action, Event
from cloud.ops.rules import BY_NAME, DAY_MS, SEVERITIES, Audience, Severity
from runtime.backoff import Backoff

log = logging.getLogger(__name__)

HORIZON_MS = 7 * DAY_MS  # notices older than this are no longer delivered (nor looked at)
SCHEMA = "gumei.ops.event.v1"
Outcome = Literal["delivered", "failed", "rejected"]


class Subscriber(BaseModel):
    """One receiver of events ([[ops.subscribers]] in the cloud config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=2000)]
    kind: Literal["json", "wecom", "dingtalk"] = "json"
    secret: str = Field("", repr=False)  # HMAC key (json, dingtalk); empty: unsigned
    audiences: list[Audience] = []  # empty: every audience
    min_severity: Severity = "minor"
    actions: list[Action] = ["open", "acknowledge", "resolve"]
    timeout_s: float = Field(5.0, gt=0, le=120)

    def wants(self, n: Notice) -> bool:
        """Whether this subscriber gets notice `n`."""
        rank = SEVERITIES.index
        return (
            (not self.audiences or n.audience in self.audiences)
            and n.severity in SEVERITIES
            and rank(n.severity) <= rank(self.min_severity)
            and n.action in self.actions
        )


@dataclass(frozen=True)
class Notice:
    """One applied change of one event, as subscribers receive it."""

    key: str
    at_ms: int
    action: Action
    rule: str
    subject: str
    severity: str
    audience: str
    event: Event

    def payload(self) -> dict[str, Any]:
        """The JSON document of a "json" subscriber."""
        ev = self.event
        rule = BY_NAME.get(ev.rule)
        by = {"open": "auto", "acknowledge": ev.acknowledged_by, "resolve": ev.resolved_by}
        return {
            "schema": SCHEMA,
            "id": self.key,
            "event": ev.id,
            "action": self.action,
            "state": STATE_AFTER[self.action],
            "at": _iso(self.at_ms),
            "rule": ev.rule,
            "title": rule.title if rule else ev.rule,
            "subject": ev.subject,
            "severity": ev.severity,
            "audience": ev.audience,
            "opened_at": _iso(ev.opened_ms),
            "deadline": _iso(ev.deadline_ms),
            "value": ev.value,
            "by": by[self.action],
            "note": ev.note if self.action == "resolve" else "",
        }

    def text(self) -> str:
        """One line for a chat robot."""
        p = self.payload()
        word = {"open": "新事件 OPEN", "acknowledge": "已确认 ACK", "resolve": "已解决 RESOLVED"}
        return (
            f"[{word[self.action]}] {p['title']} {p['subject']} ({p['severity']}, {p['audience']}) "
            f"value={p['value']:.4g} at {p['at']} deadline {p['deadline']} id={p['id']}"
        )


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds")


def notices(episodes: Iterable[Event], since_ms: int) -> list[Notice]:
    """The applied changes of these episodes at or after since_ms, in time order."""
    out = []
    for ev in episodes:
        steps: list[tuple[Action, int | None]] = [
            ("open", ev.opened_ms),
            ("acknowledge", ev.acknowledged_ms),
            ("resolve", ev.resolved_ms),
        ]
        for action, at in steps:
            if at is not None and at >= since_ms:
                key = f"{ev.rule}:{ev.subject}:{ev.opened_ms}:{action}"
                out.append(
                    Notice(key, at, action, ev.rule, ev.subject, ev.severity, ev.audience, ev)
                )
    out.sort(key=lambda n: (n.at_ms, n.key))
    return out


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Gumei-Signature value of a body sent at `timestamp` (epoch seconds)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def request_of(sub: Subscriber, n: Notice, now_s: int) -> tuple[str, bytes, dict[str, str]]:
    """The URL, body and headers of one notice to one subscriber."""
    headers = {"Content-Type": "application/json", "Idempotency-Key": n.key}
    url = sub.url
    if sub.kind == "json":
        body = json.dumps(n.payload(), ensure_ascii=False, separators=(",", ":")).encode()
        headers["X-Gumei-Timestamp"] = str(now_s)
        if sub.secret:
            headers["X-Gumei-Signature"] = sign(sub.secret, now_s, body)
        return url, body, headers
    body = json.dumps(
        {"msgtype": "text", "text": {"content": n.text()}}, ensure_ascii=False
    ).encode()
    if sub.kind == "dingtalk" and sub.secret:
        ts = now_s * 1000
        mac = hmac.new(sub.secret.encode(), f"{ts}\n{sub.secret}".encode(), hashlib.sha256)
        signature = quote_plus(base64.b64encode(mac.digest()).decode())
        url += ("&" if "?" in url else "?") + f"timestamp={ts}&sign={signature}"
    return url, body, headers


def outcome_of(status: int) -> Outcome:
    """What an HTTP answer means for a notice."""
    if 200 <= status < 300:
        return "delivered"
    if 400 <= status < 500 and status not in (408, 429):
        return "rejected"
    return "failed"  # 5xx, 408, 429, and 1xx/3xx (redirects are not followed: fix the URL)


@dataclass
class SubscriberResult:
    """What one pass did for one subscriber."""

    delivered: int = 0
    rejected: int = 0
    failed: int = 0
    pending: int = 0  # left for a later pass
    waiting: bool = False  # skipped: inside its back-off


@dataclass
class DeliveryResult:
    """What one pass did, by subscriber."""

    by_subscriber: dict[str, SubscriberResult] = field(default_factory=dict)


class Deliverer:
    """Sends notices to subscribers; its back-off per subscriber lives in memory (a new process
    starts eager), what was delivered lives in `ops_delivery`. Not thread-safe: one pass at a time."""

    def __init__(
        self,
        influx: InfluxClient,
        subscribers: list[Subscriber],
        clock: Callable[[], int],
        http: httpx.Client | None = None,
        horizon_ms: int = HORIZON_MS,
        backoff: Callable[[], Backoff] = lambda: Backoff(5.0, 600.0),
    ) -> None:
        self.influx = influx
        self.subscribers = subscribers
        self.clock = clock
        self.http = http or httpx.Client(follow_redirects=False)
        self.horizon_ms = horizon_ms
        self._backoff = {s.name: backoff() for s in subscribers}
        self._next_ms = {s.name: 0 for s in subscribers}

    def delivered_keys(self, sub: Subscriber, since_ms: int) -> set[str]:
        """Keys this subscriber's log records as done (delivered or rejected) since since_ms."""
        name = sub.name.replace("'", "")
        q = (
            f'SELECT "key", "outcome" FROM "{m.OPS_DELIVERY.name}" WHERE "subscriber" = \'{name}\' '
            f"AND time >= {since_ms}ms"
        )
        return {
            str(v[1])
            for s in self.influx.query(q, db=self.influx.records_db)
            for v in s.values
            if v[2] in ("delivered", "rejected")
        }

    def run_once(self, episodes: Iterable[Event]) -> DeliveryResult:
        """One pass over every subscriber, given the folded episodes (cloud/ops/store.py)."""
        now = self.clock()
        since = now - self.horizon_ms
        pending_all = notices(episodes, since)
        result = DeliveryResult()
        for sub in self.subscribers:
            res = result.by_subscriber[sub.name] = SubscriberResult()
            mine = [n for n in pending_all if sub.wants(n)]
            if not mine:
                continue
            done = self.delivered_keys(sub, since - DAY_MS)
            todo = [n for n in mine if n.key not in done]
            res.pending = len(todo)
            if not todo:
                continue
            if now < self._next_ms[sub.name]:
                res.waiting = True
                continue
            for n in todo:
                outcome, status, error, took = self._send(sub, n, now)
                self._log(sub, n, outcome, status, error, took, now)
                if outcome == "failed":
                    res.failed += 1
                    delay = self._backoff[sub.name].next_delay()
                    self._next_ms[sub.name] = now + int(delay * 1000)
                    log.warning(
                        "delivery to %s failed (%s); next try in %.0fs", sub.name, error, delay
                    )
                    break
                self._backoff[sub.name].reset()
                res.pending -= 1
                if outcome == "delivered":
                    res.delivered += 1
                else:
                    res.rejected += 1
        return result

    def _send(self, sub: Subscriber, n: Notice, now_ms: int) -> tuple[Outcome, int, str, float]:
        url, body, headers = request_of(sub, n, now_ms // 1000)
        t0 = time.perf_counter()
        try:
            with self.http.stream(
                "POST", url, content=body, headers=headers, timeout=sub.timeout_s
            ) as r:
                outcome = outcome_of(r.status_code)
                answer = b""
                if outcome != "delivered":  # at most 1 KiB of a receiver's error, whatever it sends
                    for chunk in r.iter_bytes():
                        answer += chunk
                        if len(answer) >= 1024:
                            break
        except httpx.TimeoutException:
            return "failed", 0, "timed out", time.perf_counter() - t0
        except httpx.HTTPError as exc:
            return "failed", 0, f"{type(exc).__name__}: {str(exc)[:200]}", time.perf_counter() - t0
        error = answer[:200].decode("utf-8", "replace")
        return outcome, r.status_code, error, time.perf_counter() - t0

    def _log(
        self,
        sub: Subscriber,
        n: Notice,
        outcome: Outcome,
        status: int,
        error: str,
        took_s: float,
        now_ms: int,
    ) -> None:
        point = line(
            m.OPS_DELIVERY.name,
            {"subscriber": sub.name, "outcome": outcome},
            {
                "key": n.key,
                "status": status,
                "error": error,
                "latency_ms": round(took_s * 1000, 3),
                "event_ms": n.at_ms,
            },
            now_ms * 1_000_000 + secrets.randbelow(1_000_000),
        )
        self.influx.write_lines((point + "\n").encode(), db=self.influx.records_db)

    def close(self) -> None:
        self.http.close()
