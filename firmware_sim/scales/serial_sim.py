"""A weighing indicator's continuous RS-232 output, served on a pseudo-terminal."""

from __future__ import annotations

import os
import threading
import tty
from collections.abc import Iterable
from typing import Self


class PtyIndicator:
    """Writes indicator frames to a pty master; a driver opens `port` (the slave) with pyserial.

    Like a real RS-232 line, bytes nobody reads are lost once the pty buffer is full.
    """

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no CR/LF translation or echo before the driver opens it
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        self.written = 0
        self.dropped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def write(self, frame: bytes) -> bool:
        """Send one frame now; False when the line buffer is full and it was lost."""
        with self._lock:
            if self._master < 0:
                return False
            try:
                os.write(self._master, frame)
            except BlockingIOError:
                self.dropped += 1
                return False
        self.written += 1
        return True

    def play(self, frames: Iterable[tuple[int, bytes]], speed: float = 1.0) -> None:
        """Send (ts_ms, frame) pairs in a thread, paced by their timestamps divided by speed."""
        if self._thread is not None:
            raise RuntimeError("already playing")
        self._stop.clear()
        self._thread = threading.Thread(target=self._play, args=(iter(frames), speed), daemon=True)
        self._thread.start()

    def _play(self, frames: Iterable[tuple[int, bytes]], speed: float) -> None:
        prev: int | None = None
        for ts, frame in frames:
            if prev is not None and ts > prev and self._stop.wait((ts - prev) / 1000 / speed):
                return
            if self._stop.is_set():
                return
            prev = ts
            self.write(frame)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until play() has sent everything; True when done."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        """Stop playing; the port stays open (a silent line)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def unplug(self) -> None:
        """Close the line for good: a reader sees the device disappear."""
        self.stop()
        with self._lock:
            if self._master >= 0:
                os.close(self._master)
                self._master = -1

    def close(self) -> None:
        """Stop and release both ends of the pty."""
        self.unplug()
        if self._slave >= 0:
            os.close(self._slave)
            self._slave = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
