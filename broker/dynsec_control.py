"""Live changes through the dynamic security plugin's control topic, as the admin identity."""

from __future__ import annotations

import json
import ssl
import threading
from typing import Any

import paho.mqtt.client as mqtt

from broker.dynsec import ADMIN
from runtime.mqtt import MqttEndpoint, make_client
from runtime.system import ServiceError

CONTROL = "$CONTROL/dynamic-security/v1"
RESPONSE = CONTROL + "/response"


class ControlError(ServiceError):
    """The broker refused the admin or a command (one line says which and why)."""


def run_commands(
    endpoint: MqttEndpoint, commands: list[dict[str, Any]], timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Send commands to the plugin and return its responses; any refused command raises ControlError."""
    state: dict[str, Any] = {}
    ready, answered = threading.Event(), threading.Event()
    client = make_client(endpoint, ADMIN)

    def on_connect(c: mqtt.Client, _u: object, _f: object, rc: mqtt.ReasonCode, _p: object) -> None:
        if rc.is_failure:
            state["refused"] = str(rc)
            answered.set()
        else:
            c.subscribe(RESPONSE, qos=1)

    def on_subscribe(
        _c: mqtt.Client, _u: object, _m: int, rcs: list[mqtt.ReasonCode], _p: object
    ) -> None:
        if rcs[0].is_failure:
            state["refused"] = f"subscribe {RESPONSE}: {rcs[0]}"
            answered.set()
        ready.set()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        state["responses"] = json.loads(msg.payload).get("responses", [])
        answered.set()

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    try:
        client.connect(endpoint.host, endpoint.port, keepalive=endpoint.keepalive_s)
    except (OSError, ssl.SSLError) as exc:
        raise ControlError(
            f"cannot reach the broker at {endpoint.host}:{endpoint.port}: {exc}"
        ) from None
    client.loop_start()
    try:
        if ready.wait(timeout) and "refused" not in state:
            client.publish(CONTROL, json.dumps({"commands": commands}), qos=1)
        answered.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    if "refused" in state:
        raise ControlError(f"broker refused {ADMIN}: {state['refused']}")
    if "responses" not in state:
        raise ControlError(f"no answer on {RESPONSE} within {timeout:.0f}s")
    errors = [f"{r.get('command')}: {r['error']}" for r in state["responses"] if r.get("error")]
    if errors:
        raise ControlError("; ".join(errors))
    return list(state["responses"])


def set_client_password(endpoint: MqttEndpoint, username: str, password: str) -> None:
    """Give one client a new password now; the plugin disconnects its sessions and saves its file."""
    run_commands(
        endpoint, [{"command": "setClientPassword", "username": username, "password": password}]
    )
