"""pyserial driver for an XK3190 indicator in continuous mode: yields (gateway ms, grams)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import serial

from contract import now_ms
from edge.errors import ScaleUnavailable
from edge.weighbridge.xk3190 import GRAMS, Mode, Unit, Xk3190Framer


class Xk3190Source:
    """Reads an XK3190's continuous output from a serial port (or a pyserial URL).

    Lifecycle and threading as `edge.scales.source.ScaleSource`: open() -> samples() -> close();
    close() may be called from another thread; `stats` (the framer's) from any thread.
    Malformed frames are counted there and skipped; silence raises ScaleUnavailable.
    """

    def __init__(
        self,
        port: str,
        *,
        mode: Mode = "tf0",
        unit: Unit = "kg",
        baudrate: int = 9600,
        silence_s: float = 5.0,
        read_timeout_s: float = 0.2,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.port, self.baudrate = port, baudrate
        self.silence_s, self.read_timeout_s, self.clock = silence_s, read_timeout_s, clock
        self.framer = Xk3190Framer(mode=mode, unit_g=GRAMS[unit])
        self.stats = self.framer.stats
        self._ser: serial.SerialBase | None = None
        self._closed = threading.Event()

    def open(self) -> None:
        """Open the port (the first frame may be cut: counted as a resync)."""
        self._closed.clear()
        self.framer.reset()
        try:
            self._ser = serial.serial_for_url(
                self.port, baudrate=self.baudrate, timeout=self.read_timeout_s
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ScaleUnavailable(f"cannot open {self.port}: {exc}") from exc

    def close(self) -> None:
        """Stop samples() and close the port; safe from another thread."""
        self._closed.set()
        ser, self._ser = self._ser, None
        if ser is not None:
            if hasattr(ser, "cancel_read"):
                ser.cancel_read()
            ser.close()

    def samples(self) -> Iterator[tuple[int, int]]:
        """Yield (receive time ms, grams) per good frame until close()."""
        ser = self._ser
        if ser is None:
            raise ScaleUnavailable(f"{self.port} is not open")
        last_data = time.monotonic()
        while not self._closed.is_set():
            try:
                chunk = ser.read(max(1, ser.in_waiting))
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                if self._closed.is_set():
                    return
                raise ScaleUnavailable(f"{self.port}: link lost: {exc}") from exc
            if not chunk:
                if self._closed.is_set():
                    return
                if time.monotonic() - last_data > self.silence_s:
                    raise ScaleUnavailable(f"{self.port}: no data for {self.silence_s} s")
                continue
            last_data = time.monotonic()
            weights = self.framer.feed(chunk)
            if weights:
                ts = self.clock()
                self.stats.last_frame_ms = ts
                for grams in weights:
                    yield ts, grams
