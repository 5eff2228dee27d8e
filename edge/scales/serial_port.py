"""The serial link both continuous-output indicator drivers share (the A&D-format scale driver,
`edge.scales.serial_driver`, and the weighbridge's XK3190, `edge.weighbridge.source`).

Opening a pyserial port (or URL such as loop://), closing it from another thread, and reading it
until close(), raising ScaleUnavailable on open failure, link loss and silence; the drivers turn
the chunks into frames.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import serial

from edge.errors import ScaleUnavailable


class SerialLink:
    """A serial port read in chunks: open() -> chunks() -> close(); close() from any thread."""

    def __init__(
        self, port: str, *, baudrate: int, silence_s: float, read_timeout_s: float
    ) -> None:
        self.port, self.baudrate = port, baudrate
        self.silence_s, self.read_timeout_s = silence_s, read_timeout_s
        self._ser: serial.SerialBase | None = None
        self._closed = threading.Event()

    def open(self) -> None:
        """Open the port; pyserial flushes input, so the first frame may be cut."""
        self._closed.clear()
        try:
            self._ser = serial.serial_for_url(
                self.port, baudrate=self.baudrate, timeout=self.read_timeout_s
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ScaleUnavailable(f"cannot open {self.port}: {exc}") from exc

    def close(self) -> None:
        """Stop chunks() (and the samples() reading it) and close the port; safe from another thread."""
        self._closed.set()
        ser, self._ser = self._ser, None
        if ser is not None:
            if hasattr(ser, "cancel_read"):
                ser.cancel_read()
            ser.close()

    def _read(self, ser: serial.SerialBase) -> bytes:
        try:
            return ser.read(max(1, ser.in_waiting))
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            if self._closed.is_set():
                return b""
            raise ScaleUnavailable(f"{self.port}: link lost: {exc}") from exc

    def chunks(self) -> Iterator[bytes]:
        """Yield the bytes read, never empty, until close(); raise ScaleUnavailable when the port
        is not open, the link breaks, or nothing comes for `silence_s`."""
        ser = self._ser
        if ser is None:
            raise ScaleUnavailable(f"{self.port} is not open")
        last_data = time.monotonic()
        while not self._closed.is_set():
            chunk = self._read(ser)
            if not chunk:
                if self._closed.is_set():
                    return
                if time.monotonic() - last_data > self.silence_s:
                    raise ScaleUnavailable(f"{self.port}: no data for {self.silence_s} s")
                continue
            last_data = time.monotonic()
            yield chunk
