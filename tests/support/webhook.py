"""A real HTTP receiver of operations webhooks for tests: it can be down, slow, failing, or fine.

Lifecycle: `Receiver(port)`, `start()`, `stop()` (then nothing listens: connection refused), start
again on the same port. `mode` is "ok" (200), "500", "400", "huge" (500 with 4 MiB of body), or "slow" (answers 200
after `delay_s`).
Every request that reached it is recorded (path, headers, body), also the ones it failed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int


class Receiver:
    def __init__(self, port: int) -> None:
        self.port = port
        self.mode = "ok"
        self.delay_s = 2.0
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def record(self, r: Received) -> None:
        with self._lock:
            self.received.append(r)

    def idempotency_keys(self, answered: int | None = 200) -> list[str]:
        """Idempotency keys of the requests answered `answered` (None: all), in arrival order."""
        with self._lock:
            return [
                r.headers.get("idempotency-key", "")
                for r in self.received
                if answered is None or r.answered == answered
            ]


def _handler(rx: Receiver) -> Any:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            mode = rx.mode
            status = {"ok": 200, "500": 500, "400": 400, "slow": 200, "huge": 500}[mode]
            headers = {k.lower(): v for k, v in self.headers.items()}
            rx.record(Received(self.path, headers, body, status))
            if mode == "slow":
                time.sleep(rx.delay_s)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                if mode == "huge":  # a hostile receiver: megabytes of error
                    for _ in range(64):
                        self.wfile.write(b"x" * 65536)
                self.wfile.write(b'{"ok": true}' if status == 200 else b'{"error": "no"}')
            except OSError:  # the client gave up (timed out) before the answer
                pass

    return Handler
