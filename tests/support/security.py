"""Small MQTT probes for the security tests: what the real broker answers to CONNECT, PUBLISH, SUBSCRIBE."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import paho.mqtt.client as mqtt

from runtime.mqtt import MqttEndpoint, make_client


def connack(endpoint: MqttEndpoint, client_id: str, timeout: float = 5.0) -> mqtt.ReasonCode | None:
    """The broker's CONNACK reason code, or None when the connection failed before one (TLS, TCP)."""
    got: list[mqtt.ReasonCode] = []
    done = threading.Event()
    client = make_client(endpoint, client_id)

    def on_connect(
        _c: mqtt.Client, _u: object, _f: object, rc: mqtt.ReasonCode, _p: object
    ) -> None:
        got.append(rc)
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = lambda *_: done.set()
    try:
        client.connect(endpoint.host, endpoint.port, keepalive=endpoint.keepalive_s)
    except (OSError, ssl.SSLError):
        return None
    client.loop_start()
    try:
        done.wait(timeout)
        return got[0] if got else None
    finally:
        client.disconnect()
        client.loop_stop()


def accepted(endpoint: MqttEndpoint, client_id: str) -> bool:
    """Whether the broker accepts this connection (a CONNACK without a failure code)."""
    rc = connack(endpoint, client_id)
    return rc is not None and not rc.is_failure


class Probe:
    """A connected client that records PUBACK and SUBACK reason codes and received messages."""

    def __init__(self, endpoint: MqttEndpoint, client_id: str) -> None:
        self.client = make_client(endpoint, client_id)
        self.pubacks: dict[int, mqtt.ReasonCode] = {}
        self.subacks: dict[int, list[mqtt.ReasonCode]] = {}
        self.received: list[mqtt.MQTTMessage] = []
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self.client.on_connect = lambda *_: self._connected.set()
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda _c, _u, msg: self.received.append(msg)
        self.client.connect(endpoint.host, endpoint.port, keepalive=endpoint.keepalive_s)
        self.client.loop_start()
        assert self._connected.wait(10), "no CONNACK"

    def _on_publish(
        self, _c: mqtt.Client, _u: object, mid: int, rc: mqtt.ReasonCode, _p: object
    ) -> None:
        with self._cond:
            self.pubacks[mid] = rc
            self._cond.notify_all()

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, mid: int, rcs: list[mqtt.ReasonCode], _p: object
    ) -> None:
        with self._cond:
            self.subacks[mid] = rcs
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> mqtt.ReasonCode:
        """Publish at QoS 1 and return the PUBACK's reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        with self._cond:
            assert self._cond.wait_for(lambda: info.mid in self.pubacks, 10), (
                f"no PUBACK for {topic}"
            )
            return self.pubacks[info.mid]

    def subscribe(self, topic: str) -> mqtt.ReasonCode:
        """Subscribe at QoS 1 and return the SUBACK's reason code."""
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None, f"SUBSCRIBE to {topic} not sent"
        with self._cond:
            assert self._cond.wait_for(lambda: mid in self.subacks, 10), f"no SUBACK for {topic}"
            return self.subacks[mid][0]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def probe(endpoint: MqttEndpoint, client_id: str) -> Iterator[Probe]:
    """A Probe, disconnected afterwards."""
    p = Probe(endpoint, client_id)
    try:
        yield p
    finally:
        p.close()
