"""Transport seam for GATT notifications: bleak in production, a framed local socket in sims and tests.

Socket frame (both directions of the seam carry exactly the notification bytes BLE would):
``u16 big-endian length of the rest | 16-byte characteristic UUID | notification value``.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import socket
import struct
import threading
import time
import uuid as uuid_mod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from edge.ble.errors import BleUnavailable
from edge.errors import ConfigError, FrameError

MAX_VALUE = 512  # ATT maximum attribute value length
_HEADER = struct.Struct(">H")


@dataclass(frozen=True, slots=True)
class Notification:
    """One characteristic value notified (or indicated) by an instrument."""

    uuid: str
    data: bytes
    received_ms: int


@runtime_checkable
class NotificationSource(Protocol):
    """One health instrument seen as a stream of GATT notifications.

    Lifecycle: construct (no I/O) -> open() -> iterate notifications() -> close().
    open() connects and subscribes, raising BleUnavailable when the instrument cannot be reached.
    notifications() blocks for the next notification (instruments are silent for long periods:
    that is not an error); it raises BleUnavailable when the link breaks (the caller may close()
    and open() again) and it ends when close() is called.

    Threading: one consumer thread iterates notifications(); close() is the one method that may
    be called from any other thread, to stop that consumer. close() is idempotent.
    """

    def open(self) -> None:
        """Connect and subscribe to the measurement characteristics."""

    def notifications(self) -> Iterator[Notification]:
        """Yield notifications until close(); raise BleUnavailable on link loss."""

    def close(self) -> None:
        """Disconnect; idempotent and safe from another thread."""


def pack_frame(uuid: str, data: bytes) -> bytes:
    """One socket frame carrying a notification value for a characteristic UUID."""
    if len(data) > MAX_VALUE:
        raise ValueError(f"notification of {len(data)} bytes exceeds {MAX_VALUE}")
    body = uuid_mod.UUID(uuid).bytes + bytes(data)
    return _HEADER.pack(len(body)) + body


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            return None if not chunks else bytes(chunks)
        chunks += chunk
    return bytes(chunks)


def read_frame(sock: socket.socket) -> tuple[str, bytes] | None:
    """Read one frame: (uuid, value), None on a clean end of stream; FrameError on a broken frame."""
    header = _recv_exact(sock, _HEADER.size)
    if header is None:
        return None
    if len(header) < _HEADER.size:
        raise FrameError("truncated_frame", "stream ended inside a frame header")
    (length,) = _HEADER.unpack(header)
    if not 16 <= length <= 16 + MAX_VALUE:
        raise FrameError("bad_frame_length", f"frame length {length}")
    body = _recv_exact(sock, length)
    if body is None or len(body) < length:
        raise FrameError("truncated_frame", "stream ended inside a frame")
    return str(uuid_mod.UUID(bytes=body[:16])), body[16:]


class SocketTransport:
    """NotificationSource over a TCP connection to a simulated instrument (loopback)."""

    def __init__(self, host: str, port: int, connect_timeout: float = 5.0) -> None:
        self._address = (host, port)
        self._connect_timeout = connect_timeout
        self._sock: socket.socket | None = None
        self._closed = threading.Event()

    def open(self) -> None:
        """Connect to the instrument."""
        self._closed.clear()
        try:
            sock = socket.create_connection(self._address, timeout=self._connect_timeout)
        except OSError as exc:
            raise BleUnavailable(f"cannot reach instrument at {self._address}: {exc}") from exc
        sock.settimeout(None)
        self._sock = sock

    def notifications(self) -> Iterator[Notification]:
        """Yield notifications until close(); raise BleUnavailable when the instrument hangs up."""
        sock = self._sock
        if sock is None:
            raise BleUnavailable("not open")
        while True:
            try:
                frame = read_frame(sock)
            except (OSError, FrameError) as exc:
                if self._closed.is_set():
                    return
                raise BleUnavailable(f"link to {self._address} broke: {exc}") from exc
            if frame is None:
                if self._closed.is_set():
                    return
                raise BleUnavailable(f"instrument at {self._address} disconnected")
            yield Notification(frame[0], frame[1], time.time_ns() // 1_000_000)

    def close(self) -> None:
        """Disconnect; unblocks a consumer waiting in notifications()."""
        self._closed.set()
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):  # already disconnected
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


_CLOSED = object()


class BleakTransport:
    """NotificationSource over real Bluetooth LE with bleak (extra `ble`); runs its own asyncio loop thread."""

    def __init__(self, address: str, uuids: Sequence[str], connect_timeout: float = 20.0) -> None:
        self._address = address
        self._uuids = list(uuids)
        self._timeout = connect_timeout
        self._queue: queue.Queue[Any] = queue.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None
        self._errors: tuple[type[BaseException], ...] = (TimeoutError, OSError)

    def open(self) -> None:
        """Start the loop thread, connect and subscribe; BleUnavailable when that fails."""
        try:
            from bleak import BleakClient  # optional dependency, imported only when used
            from bleak.exc import BleakError
        except ImportError as exc:
            raise ConfigError("bleak is not installed: pip install 'gumei-iot[ble]'") from exc
        self._queue = queue.Queue()  # a fresh one: close() left its end marker in the old one
        loop = asyncio.new_event_loop()
        threading.Thread(
            target=loop.run_forever, name=f"bleak-{self._address}", daemon=True
        ).start()
        self._loop = loop
        self._errors = (BleakError, TimeoutError, OSError)

        def on_disconnect(_client: Any) -> None:
            self._queue.put(BleUnavailable(f"instrument {self._address} disconnected"))

        def on_notify(characteristic: Any, data: bytearray) -> None:
            self._queue.put(
                Notification(str(characteristic.uuid), bytes(data), time.time_ns() // 1_000_000)
            )

        async def connect() -> Any:
            client = BleakClient(
                self._address, disconnected_callback=on_disconnect, timeout=self._timeout
            )
            await client.connect()
            for u in self._uuids:
                await client.start_notify(u, on_notify)
            return client

        try:
            self._client = asyncio.run_coroutine_threadsafe(connect(), loop).result(
                self._timeout + 5
            )
        except (BleakError, TimeoutError, OSError) as exc:
            self.close()
            raise BleUnavailable(f"cannot connect to {self._address}: {exc}") from exc

    def notifications(self) -> Iterator[Notification]:
        """Yield notifications until close(); raise BleUnavailable on disconnect."""
        while True:
            item = self._queue.get()
            if item is _CLOSED:
                return
            if isinstance(item, BleUnavailable):
                raise item
            yield item

    def close(self) -> None:
        """Disconnect, stop the loop thread and end notifications()."""
        loop, client = self._loop, self._client
        self._loop = self._client = None
        if loop is not None:
            if client is not None:
                # best effort on shutdown; the link may already be gone
                with contextlib.suppress(*self._errors):
                    asyncio.run_coroutine_threadsafe(client.disconnect(), loop).result(5)
            loop.call_soon_threadsafe(loop.stop)
        self._queue.put(_CLOSED)
