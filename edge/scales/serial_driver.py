"""pyserial driver for a weighing indicator with continuous ASCII output (A&D format)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from contract import now_ms
from edge.errors import FrameError
from edge.scales.ascii_frame import parse_frame
from edge.scales.sample import SourceStats, WeightSample
from edge.scales.serial_port import SerialLink

MAX_LINE = 256  # bytes without a terminator before the buffer is dropped as garbage


class SerialIndicatorSource(SerialLink):
    """Reads frames from a serial port (or a pyserial URL such as loop://); a ScaleSource.

    open() flushes input (pyserial), so the first line may be partial: counted as a resync.
    """

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
        super().__init__(
            port, baudrate=baudrate, silence_s=silence_s, read_timeout_s=read_timeout_s
        )
        self.device, self.checksum, self.terminator = device, checksum, terminator
        self.clock = clock
        self.stats = SourceStats()

    def samples(self) -> Iterator[WeightSample]:
        """Yield good samples; skip and count malformed frames; raise ScaleUnavailable on silence."""
        end = self.terminator[-1:]
        buf = bytearray()
        synced = False
        for chunk in self.chunks():
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
