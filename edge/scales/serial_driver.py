"""pyserial driver for a weighing indicator with continuous ASCII output (A&D format)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import serial

from contract import now_ms
from edge.errors import FrameError, ScaleUnavailable
from edge.scales.ascii_frame import parse_frame
from edge.scales.sample import SourceStats, WeightSample

MAX_LINE = 256  # bytes without a terminator before the buffer is dropped as garbage


class SerialIndicatorSource:
    """Reads frames from a serial port (or a pyserial URL such as loop://); a ScaleSource."""

    def __init__(
        self,
        port: str,
        *,
        device: str = "",
        baudrate: int = 9600,
        checksum: bool = False,
        terminator: bytes = b"\r\n",
        silence_s: float = 5.0,
        read_timeout_s: float = 0.2,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if terminator not in (b"\r\n", b"\r"):
            raise ValueError("terminator must be CR LF or CR")
        self.port, self.device, self.baudrate = port, device, baudrate
        self.checksum, self.terminator = checksum, terminator
        self.silence_s, self.read_timeout_s, self.clock = silence_s, read_timeout_s, clock
        self.stats = SourceStats()
        self._ser: serial.SerialBase | None = None
        self._closed = threading.Event()

    def open(self) -> None:
        """Open the port; pyserial flushes input, so the first line may be partial."""
        self._closed.clear()
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

    def _read(self, ser: serial.SerialBase) -> bytes:
        try:
            return ser.read(max(1, ser.in_waiting))
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            if self._closed.is_set():
                return b""
            raise ScaleUnavailable(f"{self.port}: link lost: {exc}") from exc

    def samples(self) -> Iterator[WeightSample]:
        """Yield good samples; skip and count malformed frames; raise ScaleUnavailable on silence."""
        ser = self._ser
        if ser is None:
            raise ScaleUnavailable(f"{self.port} is not open")
        end = self.terminator[-1:]
        buf = bytearray()
        synced = False
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
            buf += chunk
            while (i := buf.find(end)) >= 0:
                line = bytes(buf[: i + 1])
                del buf[: i + 1]
                sample = self._decode(line, first=not synced)
                synced = True
                if sample is not None:
                    yield sample
            if len(buf) > MAX_LINE:
                self.stats.malformed["no_terminator"] += 1
                buf.clear()

    def _decode(self, line: bytes, first: bool) -> WeightSample | None:
        try:
            frame = parse_frame(line, checksum=self.checksum)
        except FrameError as exc:
            if first:
                self.stats.resyncs += 1  # the tail of a frame cut by open()'s flush
            else:
                self.stats.malformed[exc.reason] += 1
            return None
        ts = self.clock()
        self.stats.frames += 1
        self.stats.last_frame_ms = ts
        return frame.to_sample(ts, self.device)
