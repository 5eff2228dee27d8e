"""Socket transport over real loopback sockets: framing, close from another thread, link loss."""

from __future__ import annotations

import importlib.util
import socket
import threading
from collections.abc import Iterator

import pytest

from edge.ble import BLOOD_PRESSURE, TEMPERATURE
from edge.ble.errors import BleUnavailable
from edge.ble.transport import (
    BleakTransport,
    NotificationSource,
    SocketTransport,
    pack_frame,
    read_frame,
)
from edge.errors import ConfigError, FrameError
from firmware_sim.health.peripheral import PeripheralServer

FRAME = bytes.fromhex("1e 78 00 50 00 a5 f3 ea 07 0b 1b 09 1e 00 48 00 01 00 00")


@pytest.fixture
def server() -> Iterator[PeripheralServer]:
    s = PeripheralServer("HH-01-BP").start()
    yield s
    s.close()


def test_frame_round_trip_over_socketpair() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(pack_frame(BLOOD_PRESSURE, FRAME) + pack_frame(TEMPERATURE, b""))
        a.shutdown(socket.SHUT_WR)
        assert read_frame(b) == (BLOOD_PRESSURE, FRAME)
        assert read_frame(b) == (TEMPERATURE, b"")
        assert read_frame(b) is None


@pytest.mark.parametrize("raw", [b"\x00\x05abcde", b"\x00\x20" + bytes(10), b"\x00"])
def test_broken_frames(raw: bytes) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(raw)
        a.shutdown(socket.SHUT_WR)
        with pytest.raises(FrameError):
            read_frame(b)


def test_pack_refuses_oversized_values() -> None:
    with pytest.raises(ValueError):
        pack_frame(BLOOD_PRESSURE, bytes(513))


def test_notifications_arrive_in_order(server: PeripheralServer) -> None:
    transport = SocketTransport(*server.address)
    assert isinstance(transport, NotificationSource)
    transport.open()
    assert server.wait_connected()
    for i in range(3):
        assert server.notify(BLOOD_PRESSURE, FRAME[:-1] + bytes([i])) == 1
    stream = transport.notifications()
    got = [next(stream) for _ in range(3)]
    assert [n.data[-1] for n in got] == [0, 1, 2]
    assert all(n.uuid == BLOOD_PRESSURE and n.received_ms > 0 for n in got)
    transport.close()
    transport.close()  # idempotent


def test_close_from_another_thread_ends_iteration(server: PeripheralServer) -> None:
    transport = SocketTransport(*server.address)
    transport.open()
    assert server.wait_connected()
    done = threading.Event()
    seen: list[object] = []

    def consume() -> None:
        seen.extend(transport.notifications())
        done.set()

    threading.Thread(target=consume, daemon=True).start()
    transport.close()
    assert done.wait(5) and seen == []


def test_instrument_hanging_up_is_retryable(server: PeripheralServer) -> None:
    transport = SocketTransport(*server.address)
    transport.open()
    assert server.wait_connected()
    server.disconnect_all()
    with pytest.raises(BleUnavailable) as info:
        next(transport.notifications())
    assert info.value.retryable
    transport.close()
    transport.open()  # reconnect works
    assert server.wait_connected()
    server.notify(BLOOD_PRESSURE, FRAME)
    assert next(transport.notifications()).data == FRAME
    transport.close()


def test_broken_frame_from_instrument_is_link_loss(server: PeripheralServer) -> None:
    transport = SocketTransport(*server.address)
    transport.open()
    assert server.wait_connected()
    server.send_raw(b"\xff\xff")
    with pytest.raises(BleUnavailable, match="bad_frame_length"):
        next(transport.notifications())
    transport.close()


def test_unreachable_instrument() -> None:
    s = PeripheralServer("gone")
    host, port = s.address
    s.close()
    with pytest.raises(BleUnavailable):
        SocketTransport(host, port, connect_timeout=1).open()


@pytest.mark.skipif(importlib.util.find_spec("bleak") is not None, reason="bleak is installed")
def test_bleak_transport_without_the_extra_says_what_to_install() -> None:
    transport = BleakTransport("AA:BB:CC:DD:EE:FF", [BLOOD_PRESSURE])  # construct does no I/O
    assert isinstance(transport, NotificationSource)
    with pytest.raises(ConfigError, match="ble"):
        transport.open()
