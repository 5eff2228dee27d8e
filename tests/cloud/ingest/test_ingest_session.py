"""The worker's MQTT session alone, on a private broker (it joins the shared group, so it must not
take the session stack's messages): ready file per granted subscription, no PUBACK until asked
(the broker redelivers an unacknowledged message to the same client id), stale ids never acked."""

from __future__ import annotations

import dataclasses
import queue
import threading
from pathlib import Path

import pytest

from cloud.ingest.handler import Message
from cloud.ingest.options import WorkerOptions
from cloud.ingest.ready import read_ready
from cloud.ingest.session import MqttSession
from cloud.registry import Registry
from contract.topics import waste_readings
from devstack.stack import LocalStack
from tests.support.common import wait_until
from tests.support.hostile import Gateway

SITE = "WS-0101"
WORKER = "ingest-1"


class Received:
    """A session's deliveries, in order."""

    def __init__(self) -> None:
        self.messages: queue.Queue[Message] = queue.Queue()

    def deliver(self, msg: Message) -> bool:
        self.messages.put(msg)
        return True

    def next(self, timeout: float = 15) -> Message:
        return self.messages.get(timeout=timeout)


def session(stack: LocalStack, ready: Path, received: Received, fatal: list[str]) -> MqttSession:
    return MqttSession(
        stack.endpoint(WORKER),
        WorkerOptions(name=WORKER, ready_file=ready),
        received.deliver,
        lambda: fatal.append("dropped"),
        fatal.append,
        threading.Event(),
    )


def test_nothing_is_acknowledged_until_asked_and_stale_ids_never(
    tmp_path: Path, registry: Registry
) -> None:
    stack = LocalStack(tmp_path / "stack", registry)
    stack.start()
    ready = tmp_path / "ready.json"
    fatal: list[str] = []
    try:
        received = Received()
        s = session(stack, ready, received, fatal)
        s.start()
        try:
            state = wait_until(lambda: read_ready(ready), what="the ready file")
            assert state is not None and state.subscriptions == 1 and s.connected.is_set()
            gw = Gateway(stack.endpoint(SITE), SITE)
            try:
                gw.send(waste_readings(SITE), b"one")  # the broker's PUBACK to the gateway
            finally:
                gw.close()
            first = received.next()
            assert (first.payload, first.qos, first.connection, first.dup) == (b"one", 1, 1, False)
        finally:
            s.stop()  # without acknowledging it
        assert not ready.exists()

        again = Received()
        s = session(stack, ready, again, fatal)
        s.start()
        try:
            redelivered = again.next()
            assert (redelivered.payload, redelivered.connection, redelivered.dup) == (
                b"one",
                1,
                True,
            )
            stale = dataclasses.replace(redelivered, connection=0)  # an id of an earlier connection
            qos0 = dataclasses.replace(redelivered, qos=0)  # nothing to acknowledge
            assert s.acknowledge([stale, qos0, redelivered]) == 1
        finally:
            s.stop()

        after = Received()
        s = session(stack, ready, after, fatal)
        s.start()
        try:
            wait_until(lambda: read_ready(ready), what="the ready file")
            with pytest.raises(queue.Empty):  # acknowledged: the broker no longer holds it
                after.next(timeout=2)
        finally:
            s.stop()
        assert fatal == []
    finally:
        stack.stop()


def test_a_delivery_that_raises_is_fatal_not_silent(tmp_path: Path, registry: Registry) -> None:
    stack = LocalStack(tmp_path / "stack", registry)
    stack.start()
    fatal: list[str] = []
    died = threading.Event()

    def deliver(_msg: Message) -> bool:
        raise MemoryError("simulated")

    def on_fatal(why: str) -> None:
        fatal.append(why)
        died.set()

    ready = tmp_path / "ready.json"
    options = WorkerOptions(name=WORKER, ready_file=ready)
    s = MqttSession(stack.endpoint(WORKER), options, deliver, died.set, on_fatal, threading.Event())
    try:
        s.start()
        wait_until(lambda: read_ready(ready), what="the ready file")
        gw = Gateway(stack.endpoint(SITE), SITE)
        try:
            gw.send(waste_readings(SITE), b"one")
        finally:
            gw.close()
        assert died.wait(15)
        assert fatal == ["network thread failed: MemoryError"]
    finally:
        s.stop()
        stack.stop()
