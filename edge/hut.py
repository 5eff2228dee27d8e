"""The health hut gateway loop: card reader and instruments -> decoders -> resident session -> queue.

The agent stops at the durable queue: `put(device, make)` is `edge.queue.DurableQueue.put`, which
gives each measurement its persisted per-device seq; then `on_queued()` (the shared
`edge.publisher.Publisher.notify`) tells the publisher to deliver it.
The raw card number exists only inside `handle()` for the card reader, on its way to the
SessionTracker; it is never stored, logged or counted.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from contract import HealthMeasurement, now_ms
from edge.ble import Assembler, BleDecodeError, BleReading, measured_ms
from edge.ble.errors import BleUnavailable
from edge.ble.transport import Notification, NotificationSource
from edge.errors import FrameError
from edge.health_session import SessionTracker, decode_card_tap

log = logging.getLogger(__name__)

Put = Callable[[str, Callable[[int], HealthMeasurement]], HealthMeasurement]
"""Store one measurement built with the device's next seq (DurableQueue.put)."""
RECONNECT_S = 1.0


@dataclass
class HutStats:
    """Counters of one agent: notifications handled, card taps, measurements queued, frames rejected."""

    notifications: int = 0
    taps: int = 0
    measurements: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> frames
    link_errors: int = 0


class HutAgent:
    """One hut's gateway loop over a NotificationSource per device (card reader included).

    Lifecycle: construct (no I/O) -> start() (opens sources, one reader thread each) -> stop().
    Threading: handle() may be called from any thread; one lock serializes decoding and sessions,
    so a card tap handled before a measurement is attributed to it.
    """

    def __init__(
        self,
        sources: Mapping[str, NotificationSource],
        card_reader: str,
        tracker: SessionTracker,
        put: Put,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._sources = dict(sources)
        self.card_reader = card_reader
        self.tracker = tracker
        self._put = put
        self._on_queued = on_queued
        self._assemblers = {d: Assembler() for d in self._sources if d != card_reader}
        self.stats = HutStats()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def handle(self, device: str, note: Notification) -> list[HealthMeasurement]:
        """Decode one notification of one device; return the measurements it completed (queued)."""
        with self._changed:
            try:
                if device == self.card_reader:
                    self.tracker.tap(decode_card_tap(note.data))
                    self.stats.taps += 1
                    return []
                readings = self._assemblers[device].feed(note.uuid, note.data)
                return [self._queue(device, r, note.received_ms) for r in readings]
            except (BleDecodeError, FrameError) as exc:
                self.stats.rejected[exc.reason] += 1
                log.warning("%s: frame rejected: %s", device, exc.reason)  # never the frame: it may be a card
                return []
            finally:
                self.stats.notifications += 1
                self._changed.notify_all()

    def flush(self) -> list[HealthMeasurement]:
        """Release readings the assemblers still hold (call when the instruments go quiet)."""
        with self._changed:
            out = [self._queue(d, r, now_ms()) for d, a in self._assemblers.items() for r in a.flush()]
            self._changed.notify_all()
            return out

    def _queue(self, device: str, reading: BleReading, received_ms: int) -> HealthMeasurement:
        ts = measured_ms(reading, received_ms)
        type_, values = reading.contract()
        stored = self._put(device, lambda seq: self.tracker.measurement(device, seq, ts, type_, values))
        self.stats.measurements += 1
        self._on_queued()
        return stored

    def wait_for(self, predicate: Callable[[HutStats], bool], timeout: float) -> bool:
        """Block until predicate(stats) holds (re-checked on every handled notification)."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.stats), timeout)

    def start(self) -> None:
        """Open every source and start one reader thread per device."""
        for device, source in self._sources.items():
            source.open()
            t = threading.Thread(target=self._read, args=(device, source), name=f"hut-{device}", daemon=True)
            t.start()
            self._threads.append(t)

    def _read(self, device: str, source: NotificationSource) -> None:
        while not self._stop.is_set():
            try:
                for note in source.notifications():
                    self.handle(device, note)
                return  # closed
            except BleUnavailable as exc:
                self.stats.link_errors += 1
                log.warning("%s: %s; reconnecting", device, exc)
            source.close()
            while not self._stop.wait(RECONNECT_S):
                try:
                    source.open()
                    break
                except BleUnavailable:
                    continue

    def stop(self) -> None:
        """Close every source and wait for the reader threads."""
        self._stop.set()
        for source in self._sources.values():
            source.close()
        for t in self._threads:
            t.join(timeout=5)
