"""One way to build a paho-mqtt 2.x client (auth, TLS, MQTT v5 sessions) for edge, cloud and sims."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel, ConfigDict, Field


class MqttEndpoint(BaseModel):
    """Where the broker is and who we are to it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = Field(None, repr=False)
    ca_file: Path | None = None  # set => TLS
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: int = Field(30, ge=2, le=3600)  # the broker drops a silent client after 1.5x this


@dataclass(frozen=True)
class Will:
    """A Last Will: published by the broker when the client vanishes."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def make_client(
    endpoint: MqttEndpoint,
    client_id: str,
    *,
    v5: bool = True,
    manual_ack: bool = False,
    will: Will | None = None,
    reconnect_max_s: int = 30,
) -> mqtt.Client:
    """A configured, not yet connected client (call connect_async + loop_start, or connect)."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        clean_session=None if v5 else False,
        manual_ack=manual_ack,
    )
    if endpoint.username is not None:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.ca_file is not None:
        client.tls_set(
            ca_certs=str(endpoint.ca_file),
            certfile=str(endpoint.cert_file) if endpoint.cert_file else None,
            keyfile=str(endpoint.key_file) if endpoint.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    if will is not None:
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    client.reconnect_delay_set(min_delay=1, max_delay=reconnect_max_s)
    return client


def session_properties(
    expiry_s: int = 7 * 24 * 3600, receive_maximum: int | None = None
) -> Properties:
    """CONNECT properties for a persistent MQTT v5 session (and optional flow control)."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = expiry_s
    if receive_maximum is not None:
        props.ReceiveMaximum = receive_maximum
    return props


def connect_persistent(
    client: mqtt.Client, endpoint: MqttEndpoint, receive_maximum: int | None = None
) -> None:
    """Start connecting in the background with a persistent session; paho reconnects by itself."""
    client.connect_async(
        endpoint.host,
        endpoint.port,
        keepalive=endpoint.keepalive_s,
        clean_start=False,
        properties=session_properties(receive_maximum=receive_maximum),
    )
