"""The worker's MQTT v5 session: persistent, the shared subscription, PUBACK sent by hand.

Packet ids are only meaningful on the connection that delivered them: every received message
carries the number of its connection, and `acknowledge` skips (counts as stale) those of an earlier
one. Each granted subscription rewrites the ready file (cloud/ingest/ready.py).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import cast

import paho.mqtt.client as mqtt

from cloud.ingest.handler import Message
from cloud.ingest.options import WorkerOptions
from cloud.ingest.ready import Ready, remove_ready, write_ready
from contract.topics import shared_subscription
from runtime.mqtt import MqttEndpoint, connect_persistent, make_client

log = logging.getLogger(__name__)

RECONNECT_MAX_S = 2


class MqttSession:
    """One persistent MQTT session under the worker's name, subscribed to the shared group.

    Threading: paho's network thread runs the callbacks and calls `deliver(message)` for every
    message, which must not block and returns False when it dropped the message (then `dropped()`
    is called); anything escaping them calls `on_fatal`. `acknowledge` is
    called from the committer thread, `start`/`stop` from the owner. `stopping` is set by the
    owner before `stop` (a disconnect then is not worth a warning).
    """

    def __init__(
        self,
        endpoint: MqttEndpoint,
        options: WorkerOptions,
        deliver: Callable[[Message], bool],
        dropped: Callable[[], None],
        on_fatal: Callable[[str], None],
        stopping: threading.Event,
    ) -> None:
        self.endpoint = endpoint
        self.options = options
        self.connected = threading.Event()
        self.connection = 0  # which connection this is (1 after the first CONNACK)
        self._deliver = deliver
        self._dropped = dropped
        self._on_fatal = on_fatal
        self._stopping = stopping
        self._subscriptions = 0  # granted SUBACKs (network thread only)
        # Reconnect within 2 s of the broker coming back: Mosquitto 2.0 forgets shared subscriptions
        # on restart, and until a worker subscribes again its messages have nowhere to go.
        self._client = make_client(
            endpoint, options.name, manual_ack=True, reconnect_max_s=RECONNECT_MAX_S
        )
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Connect (persistent session, Receive Maximum) and start paho's network thread."""
        connect_persistent(
            self._client, self.endpoint, receive_maximum=self.options.receive_maximum
        )
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect (unacknowledged messages stay with the broker) and remove the ready file."""
        self._client.disconnect()
        self._client.loop_stop()
        if self.options.ready_file is not None:
            remove_ready(self.options.ready_file)

    def acknowledge(self, messages: Iterable[Message]) -> int:
        """Send the PUBACKs of these written messages, in order; return how many were stale
        (received on an earlier connection: written, never acknowledged)."""
        stale = 0
        for msg in messages:
            if msg.qos == 0:
                continue  # nothing to acknowledge
            if msg.connection == self.connection:
                self._client.ack(msg.mid, msg.qos)
            else:
                stale += 1  # a PUBACK id means nothing on a new connection
        return stale

    # -- paho callbacks (network thread) ------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        _u: object,
        flags: mqtt.ConnectFlags,
        reason: mqtt.ReasonCode,
        _p: object,
    ) -> None:
        if reason.is_failure:
            log.error("broker refused %s: %s", self.options.name, reason)
            return
        self.connection += 1
        log.info("%s connected (session present: %s)", self.options.name, flags.session_present)
        client.subscribe(shared_subscription(self.options.group), qos=1)
        self.connected.set()

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, _mid: int, reasons: list[mqtt.ReasonCode], _p: object
    ) -> None:
        if any(r.is_failure for r in reasons):
            log.error("%s: subscription refused: %s", self.options.name, reasons)
        else:
            log.info(
                "%s subscribed to %s", self.options.name, shared_subscription(self.options.group)
            )
            self._subscriptions += 1
            if self.options.ready_file is not None:
                write_ready(self.options.ready_file, Ready(os.getpid(), self._subscriptions))

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object
    ) -> None:
        self.connected.clear()
        if not self._stopping.is_set():
            log.warning("%s disconnected (%s); reconnecting", self.options.name, reason)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        try:
            if not self._deliver(
                Message(
                    msg.topic,
                    cast(bytes, msg.payload),  # paho's payload is bytes (typed bytes | bytearray)
                    msg.mid,
                    bool(msg.dup),
                    time.time_ns(),
                    self.connection,
                    msg.qos,
                )
            ):
                self._dropped()
        except BaseException as exc:
            log.critical(
                "%s: network thread failed: %s", self.options.name, type(exc).__name__, exc_info=exc
            )
            self._on_fatal(f"network thread failed: {type(exc).__name__}")
