"""The instrument side of the socket transport: a loopback TCP server that notifies framed values."""

from __future__ import annotations

import contextlib
import socket
import threading

from edge.ble.transport import pack_frame


class PeripheralServer:
    """A simulated BLE peripheral: accepts gateway connections and sends them notification frames.

    Lifecycle: construct (binds 127.0.0.1 on a free port, no thread yet) -> start() -> notify() ...
    -> close(). Threading: one accept thread; notify() and close() may be called from any thread.
    """

    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.name = name
        self._listener = socket.create_server((host, port))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=f"peripheral-{name}", daemon=True)

    def start(self) -> PeripheralServer:
        """Start accepting connections."""
        self._thread.start()
        return self

    def wait_connected(self, timeout: float = 5.0) -> bool:
        """Block until at least one gateway is connected (or timeout); True when connected."""
        return self._connected.wait(timeout)

    def notify(self, uuid: str, data: bytes) -> int:
        """Send one notification to every connected gateway; return how many got it."""
        frame = pack_frame(uuid, data)
        sent = 0
        with self._lock:
            for client in list(self._clients):
                try:
                    client.sendall(frame)
                    sent += 1
                except OSError:
                    self._clients.remove(client)
                    client.close()
        return sent

    def send_raw(self, data: bytes) -> None:
        """Send raw bytes (a broken frame) to every connected gateway."""
        with self._lock:
            for client in self._clients:
                client.sendall(data)

    def disconnect_all(self) -> None:
        """Drop every gateway connection (the instrument powered off), keep listening."""
        with self._lock:
            clients, self._clients = self._clients, []
            self._connected.clear()
        for client in clients:
            client.close()

    def close(self) -> None:
        """Stop listening and drop connections; idempotent."""
        with contextlib.suppress(OSError):  # not listening any more
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept thread on Linux
        self._listener.close()
        self.disconnect_all()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # listener closed
            with self._lock:
                self._clients.append(client)
                self._connected.set()
