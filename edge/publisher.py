"""MQTT delivery of a DurableQueue (paho-mqtt 2.x): QoS 1 batches, delete only on PUBACK, replay.

Shared by the waste-station agent and the health-hut agent. See docs/edge.md for the policy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from contract import DeviceStatus, Status, encode, now_ms
from contract.models import HEALTH_SCHEMA, MAX_PAYLOAD_BYTES, TICKETS_SCHEMA, WASTE_SCHEMA
from contract.topics import Kind, health_measurements, status, waste_readings, weighbridge_tickets
from edge.credentials import PasswordFile
from edge.errors import ConfigError, EdgeError
from edge.queue import DurableQueue
from runtime.backoff import Backoff
from runtime.mqtt import MqttEndpoint, Will, make_client, session_properties

log = logging.getLogger(__name__)

AGENT_VERSION = "0.3.0"
# Per stream (the queue's kind): the batch schema, its list key and its topic.
_ENVELOPE = {
    "waste": (WASTE_SCHEMA, "readings"),
    "health": (HEALTH_SCHEMA, "measurements"),
    "tickets": (TICKETS_SCHEMA, "tickets"),
}
_TOPIC = {"waste": waste_readings, "health": health_measurements, "tickets": weighbridge_tickets}
_LOOP_S = 0.1  # paho select timeout: bounds how soon a notify() is seen
_RESCAN_S = 1.0  # look at the queue at least this often even without notify()
_CONNACK_TIMEOUT_S = 15.0
# CONNACK reasons that mean the password: bad user name or password (MQTT 5 0x86, 3.1.1 rc 4),
# not authorized (0x87, 3.1.1 rc 5; what Mosquitto's dynamic security plugin answers)
_CREDENTIALS_REFUSED = frozenset({0x86, 0x87, 4, 5})
_STABLE_S = 10.0  # a connection that lasted this long resets the back-off


@dataclass(frozen=True, slots=True)
class PublishTuning:
    """Delivery tuning; defaults are the documented policy (docs/edge.md)."""

    batch_max: int = 1000  # entries per message (the contract's maximum)
    max_inflight: int = 16  # messages awaiting PUBACK; far below paho's 16-bit mid space
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    status_interval_s: float = 60.0
    replay_window_s: float = (
        60.0  # re-send what was acknowledged this long before a lost connection
    )
    replay_delay_s: float = 10.0  # ... once, this long after reconnecting
    keep_acked_s: float = 120.0  # acknowledged entries kept at least this long (>= window)


@dataclass(slots=True)
class PublisherStats:
    """Counters of one publisher (read from any thread; plain ints)."""

    connected: bool = False
    connects: int = 0
    connect_failures: int = 0
    messages_sent: int = 0
    messages_acked: int = 0
    entries_acked: int = 0
    refused: int = 0  # PUBACK with a failure reason code (e.g. not authorized)
    replays: int = 0
    entries_replayed: int = 0
    last_error: str = ""


class Publisher:
    """Delivers one kind of entry from a DurableQueue to the broker as contract batches.

    Lifecycle: construct (no I/O) -> start() -> stop(). start() spawns one thread that owns the
    paho client: it connects (TLS, username/password, persistent session, Last Will = offline
    status), publishes pending entries in batches of up to `batch_max` with QoS 1, and acknowledges
    them in the queue only in on_publish (the PUBACK). A lost connection drops paho's in-memory
    state; after reconnecting (exponential back-off with jitter) everything still pending is sent
    again, and once, `replay_delay_s` after the reconnect, what the broker acknowledged in the
    `replay_window_s` before the loss and since the reconnect is sent again (ingestion is
    idempotent on (device, seq)); an owed replay is recorded in the queue file, so a restart
    resumes it. stop() publishes a retained offline status and disconnects.

    Threading: notify(), stop() and `stats` may be used from any thread. The producer puts into
    the queue (commit first) and then calls notify(). status_fn is called on the publisher thread.
    """

    def __init__(
        self,
        endpoint: MqttEndpoint,
        site: str,
        kind: Kind,
        queue: DurableQueue,
        *,
        tuning: PublishTuning | None = None,
        status_fn: Callable[[], list[DeviceStatus]] | None = None,
        agent_version: str = AGENT_VERSION,
        seed: int | None = None,
        credentials: PasswordFile | None = None,
        stream: str | None = None,
    ) -> None:
        self.endpoint, self.site, self.kind, self.queue = endpoint, site, kind, queue
        # the password file (and a staged next one): read at each connection, so a rotation
        # needs no restart; None: the endpoint's password as given (tests, benchmarks)
        self.credentials = credentials
        # what it sends: the queue's entries of this kind ("tickets" for a weighbridge, whose
        # status is still under kind "waste"); the kind by default
        self.stream = stream or kind
        self.tuning = tuning or PublishTuning()
        self.status_fn = status_fn or list
        self.client_id = site  # the broker binds a gateway's client id to its username, the site id
        self.agent_version = agent_version
        self.stats = PublisherStats()
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._topic = _TOPIC[self.stream](site)
        self._replay_key = f"replay_from_ms:{self.stream}"
        self._status_topic = status(kind, site)
        # state owned by the publisher thread
        self._client: mqtt.Client | None = None
        self._inflight: dict[int, list[int]] = {}  # mid -> queue ids (empty for a replay message)
        self._cursor = 0  # highest queue id sent on this connection
        self._connack: ReasonCode | None = None
        self._lost = False
        self._replay_from_ms: int | None = None  # set while a replay is owed
        self._replay_at = 0.0  # monotonic time the owed replay is due (0: after the next connect)
        self._replay_cursor = 0
        self._connected_at = 0.0

    # ---- public -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the publisher thread (returns at once; connecting happens in the background)."""
        if self._thread is not None:
            raise EdgeError("publisher already started")
        self._stop.clear()
        # A restart may follow a lost connection: replay the last window once, and resume a
        # replay that an earlier run owed but did not get to (stopped or killed before it).
        owed = self.queue.get_meta(self._replay_key)
        window_start = now_ms() - int(self.tuning.replay_window_s * 1000)
        self._set_replay_from(window_start if owed is None else min(owed, window_start))
        self._thread = threading.Thread(
            target=self._run, name=f"publisher-{self.site}", daemon=True
        )
        self._thread.start()

    def notify(self) -> None:
        """Tell the publisher that new entries were committed to the queue."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Publish the offline status (if connected), disconnect and join the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # ---- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        t = self.tuning
        # the first failure already waits the second step, as a connection that never held would
        backoff = Backoff(
            t.backoff_min_s,
            t.backoff_max_s,
            start_s=min(t.backoff_min_s * 2, t.backoff_max_s),
            cap=True,
            rng=self._rng,
        )
        while not self._stop.is_set():
            try:
                ok = self._session()
            except EdgeError as exc:  # the queue failed under us (disk): retry after a back-off
                self.stats.connected, self.stats.last_error, ok = False, str(exc), False
                log.error("publisher: %s", exc)
                if self._client is not None:
                    self._close(self._client)
            if self._stop.is_set():
                break
            # back to the shortest step only after a connection that held; a broker that accepts
            # and drops at once is retried with growing delays like one that refuses
            held = ok and time.monotonic() - self._connected_at >= _STABLE_S
            if held:
                backoff.reset()
            self._stop.wait(
                backoff.next_delay()
            )  # jitter: 50-150 % of the step, at most the maximum

    def _new_client(self) -> mqtt.Client:
        will = Will(
            self._status_topic, encode(Status(site=self.site, state="offline")), qos=1, retain=True
        )
        client = make_client(self.endpoint, self.client_id, will=will)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.max_inflight_messages_set(self.tuning.max_inflight)
        client.max_queued_messages_set(0)
        return client

    def _session(self) -> bool:
        """One connection from connect to loss (or stop); True when it was established."""
        if self.credentials is not None:
            try:
                password = self.credentials.password()
            except ConfigError as exc:
                self._failed(str(exc))
                return False
            self.endpoint = self.endpoint.model_copy(update={"password": password})
        ep = self.endpoint
        client = self._client = self._new_client()
        self._connack, self._lost = None, False
        self._inflight.clear()
        self._cursor = 0
        try:
            client.connect(
                ep.host,
                ep.port,
                keepalive=ep.keepalive_s,
                clean_start=False,
                properties=session_properties(),
            )
        except (OSError, ValueError) as exc:  # refused, unreachable, TLS handshake or verification
            self._failed(f"cannot connect to {ep.host}:{ep.port}: {exc}")
            return False
        deadline = time.monotonic() + _CONNACK_TIMEOUT_S
        while self._connack is None and not self._lost and time.monotonic() < deadline:
            if client.loop(_LOOP_S) != mqtt.MQTT_ERR_SUCCESS:
                break
        if self._connack is None or self._connack.is_failure:
            why = self._connack.getName() if self._connack is not None else "no CONNACK"
            self._failed(f"broker refused the connection: {why}")
            self._close(client)
            if (
                self.credentials is not None
                and self._connack is not None
                and self._connack.value in _CREDENTIALS_REFUSED
            ):
                self.credentials.refused()
            return False
        if self.credentials is not None:
            self.credentials.accepted()
        self.stats.connected, self.stats.connects = True, self.stats.connects + 1
        self._connected_at = time.monotonic()
        log.info("connected to %s:%s as %s", ep.host, ep.port, ep.username)
        if self._replay_from_ms is not None:
            self._replay_at = time.monotonic() + self.tuning.replay_delay_s
            self._replay_cursor = 0
        self._publish_status("online")
        self._serve(client)
        self.stats.connected = False
        if self._stop.is_set() and not self._lost:
            self._goodbye(client)
            return True
        self._close(client)
        self._owe_replay()
        return True

    def _serve(self, client: mqtt.Client) -> None:
        """Publish, keep alive and purge until the connection is lost or stop() is called."""
        next_status = time.monotonic() + self.tuning.status_interval_s
        next_scan = 0.0
        next_purge = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if self._wake.is_set() or now >= next_scan:
                self._wake.clear()
                self._send_pending(client)
                next_scan = now + _RESCAN_S
            if self._replay_from_ms is not None and self._replay_at and now >= self._replay_at:
                self._send_replay(client)
            if now >= next_status:
                self._publish_status("online")
                next_status = now + self.tuning.status_interval_s
            if now >= next_purge:
                self._purge()
                next_purge = now + 10.0
            if client.loop(_LOOP_S) != mqtt.MQTT_ERR_SUCCESS or self._lost:
                self._lost = True
                log.warning("connection to the broker lost; %d entries pending", len(self.queue))
                return

    def _batch(self, rows: list[tuple[int, str]]) -> tuple[bytes, list[tuple[int, str]]]:
        """The contract payload for as many rows as fit in MAX_PAYLOAD_BYTES."""
        schema, field = _ENVELOPE[self.stream]
        head = json.dumps({"schema": schema, "site": self.site})[:-1] + f', "{field}": ['
        size = len(head) + 2
        for n, (_, p) in enumerate(rows):
            size += len(p) + 1
            if size > MAX_PAYLOAD_BYTES:
                rows = rows[: max(n, 1)]
                break
        return (head + ",".join(p for _, p in rows) + "]}").encode(), rows

    def _send_pending(self, client: mqtt.Client) -> None:
        t = self.tuning
        while len(self._inflight) < t.max_inflight and not self._lost:
            rows = self.queue.peek_payloads(t.batch_max, after_id=self._cursor, kind=self.stream)
            if not rows:
                return
            payload, rows = self._batch(rows)
            if not self._publish(client, payload, [i for i, _ in rows]):
                return
            self._cursor = rows[-1][0]

    def _send_replay(self, client: mqtt.Client) -> None:
        """Re-send, once, what was acknowledged since replay_from (paged; resumes after a cut)."""
        assert self._replay_from_ms is not None
        t = self.tuning
        while len(self._inflight) < t.max_inflight and not self._lost:
            rows = self.queue.acked_since(
                self._replay_from_ms, t.batch_max, after_id=self._replay_cursor, kind=self.stream
            )
            if not rows:
                log.info("replay done: %d entries re-sent", self.stats.entries_replayed)
                self._set_replay_from(None)
                self._replay_at = 0.0
                self.stats.replays += 1
                return
            payload, rows = self._batch(rows)
            if not self._publish(client, payload, []):
                return
            self._replay_cursor = rows[-1][0]
            self.stats.entries_replayed += len(rows)

    def _publish(self, client: mqtt.Client, payload: bytes, ids: list[int]) -> bool:
        info = client.publish(self._topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._lost = info.rc in (mqtt.MQTT_ERR_NO_CONN, mqtt.MQTT_ERR_CONN_LOST)
            return False
        self._inflight[info.mid] = ids
        self.stats.messages_sent += 1
        return True

    def _publish_status(self, state: str) -> mqtt.MQTTMessageInfo | None:
        if self._client is None:
            return None
        msg = Status(
            site=self.site,
            state=state,
            ts=now_ms(),
            agent_version=self.agent_version,
            buffered=len(self.queue),
            devices=self.status_fn() if state == "online" else [],
        )
        info = self._client.publish(self._status_topic, encode(msg), qos=1, retain=True)
        return info if info.rc == mqtt.MQTT_ERR_SUCCESS else None

    def _purge(self) -> None:
        keep_ms = int(max(self.tuning.keep_acked_s, self.tuning.replay_window_s) * 1000)
        cutoff = now_ms() - keep_ms
        if self._replay_from_ms is not None:
            cutoff = min(cutoff, self._replay_from_ms)  # an owed replay keeps its entries
        self.queue.purge_acked(cutoff)

    def _owe_replay(self) -> None:
        """After a lost connection: owe a replay of what was acknowledged shortly before it."""
        if self._replay_from_ms is None:  # a replay still owed keeps its (earlier) start
            self._set_replay_from(now_ms() - int(self.tuning.replay_window_s * 1000))
        self._replay_at = 0.0

    def _set_replay_from(self, ms: int | None) -> None:
        """Owe (or with None settle) a replay; kept in the queue file so a restart resumes it."""
        self.queue.set_meta(self._replay_key, ms)
        self._replay_from_ms = ms

    def _goodbye(self, client: mqtt.Client) -> None:
        """Clean shutdown: retained offline status (the Will is not sent on a clean disconnect)."""
        info = self._publish_status("offline")
        deadline = time.monotonic() + 3.0
        while info is not None and not info.is_published() and time.monotonic() < deadline:
            if client.loop(_LOOP_S) != mqtt.MQTT_ERR_SUCCESS:
                break
        client.disconnect()
        client.loop(0.1)
        self._client = None

    def _close(self, client: mqtt.Client) -> None:
        with contextlib.suppress(OSError, ValueError):
            client.disconnect()
        sock = client.socket()
        if sock is not None:
            sock.close()
        self._client = None

    def _failed(self, why: str) -> None:
        self.stats.connect_failures += 1
        self.stats.last_error = why
        log.warning("%s", why)

    # ---- paho callbacks (run on the publisher thread, inside client.loop()) -------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        self._connack = reason

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        self._lost = True

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        ids = self._inflight.pop(mid, None)
        if ids is None:
            return  # a status message
        if reason.is_failure:
            self.stats.refused += 1
            self.stats.last_error = f"broker refused a batch: {reason.getName()}"
            log.error("%s (%d entries stay queued)", self.stats.last_error, len(ids))
            return
        self.stats.messages_acked += 1
        if ids:
            self.stats.entries_acked += self.queue.ack(ids, retain=True)
            self._wake.set()  # room in flight: look for more
