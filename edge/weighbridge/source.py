"""pyserial driver for an XK3190 indicator in continuous mode: yields (gateway ms, grams)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from contract import now_ms
from edge.scales.serial_port import SerialLink
from edge.weighbridge.xk3190 import GRAMS, Mode, Unit, Xk3190Framer


class Xk3190Source(SerialLink):
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
        super().__init__(
            port, baudrate=baudrate, silence_s=silence_s, read_timeout_s=read_timeout_s
        )
        self.clock = clock
        self.framer = Xk3190Framer(mode=mode, unit_g=GRAMS[unit])
        self.stats = self.framer.stats

    def open(self) -> None:
        """Open the port (the first frame may be cut: counted as a resync)."""
        self.framer.reset()
        super().open()

    def samples(self) -> Iterator[tuple[int, int]]:
        """Yield (receive time ms, grams) per good frame until close()."""
        for chunk in self.chunks():
            weights = self.framer.feed(chunk)
            if weights:
                ts = self.clock()
                self.stats.last_frame_ms = ts
                for grams in weights:
                    yield ts, grams
