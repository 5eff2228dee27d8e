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
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from contract import DeviceStatus, HealthMeasurement, now_ms
from edge.ble import Assembler, BleDecodeError, BleReading, measured_ms
from edge.ble.errors import BleUnavailable
from edge.ble.transport import Notification, NotificationSource
from edge.errors import FrameError, QueueError
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


@dataclass
class DeviceState:
    """What the agent knows about one device (written under the agent's lock or by its thread)."""

    connected: bool = False
    notifications: int = 0
    last_monotonic: float = 0.0
    rejected: Counter[str] = field(default_factory=Counter)


class HutAgent:
    """One hut's gateway loop over a NotificationSource per device (card reader included).

    Lifecycle: construct (no I/O) -> start() (one reader thread per device: it opens the source,
    and reopens it every second while the device is unreachable) -> stop().
    Threading: handle() may be called from any thread; one lock serializes decoding and sessions,
    so a card tap handled before a measurement is attributed to it. A queue failure is fatal:
    `failed` is set and on_failure() is called (from the reader thread).
    """

    def __init__(
        self,
        sources: Mapping[str, NotificationSource],
        card_reader: str,
        tracker: SessionTracker,
        put: Put,
        on_queued: Callable[[], None] = lambda: None,
        on_failure: Callable[[], None] = lambda: None,
    ) -> None:
        self._sources = dict(sources)
        self.card_reader = card_reader
        self.tracker = tracker
        self._put = put
        self._on_queued = on_queued
        self._on_failure = on_failure
        self.failed: str | None = None
        self.devices = {d: DeviceState() for d in self._sources}
        self._assemblers = {d: Assembler() for d in self._sources if d != card_reader}
        self.stats = HutStats()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def handle(self, device: str, note: Notification) -> list[HealthMeasurement]:
        """Decode one notification of one device; return the measurements it completed (queued)."""
        with self._changed:
            state = self.devices.get(device)
            if state is not None:
                state.notifications += 1
                state.last_monotonic = time.monotonic()
            try:
                if device == self.card_reader:
                    self.tracker.tap(decode_card_tap(note.data))
                    self.stats.taps += 1
                    return []
                readings = self._assemblers[device].feed(note.uuid, note.data)
                return [self._queue(device, r, note.received_ms) for r in readings]
            except (BleDecodeError, FrameError) as exc:
                self.stats.rejected[exc.reason] += 1
                if state is not None:
                    state.rejected[exc.reason] += 1
                log.warning(
                    "%s: frame rejected: %s", device, exc.reason
                )  # never the frame: it may be a card
                return []
            finally:
                self.stats.notifications += 1
                self._changed.notify_all()

    def flush(self) -> list[HealthMeasurement]:
        """Release readings the assemblers still hold (call when the instruments go quiet)."""
        with self._changed:
            out = [
                self._queue(d, r, now_ms()) for d, a in self._assemblers.items() for r in a.flush()
            ]
            self._changed.notify_all()
            return out

    def flush_idle(self, quiet_s: float) -> list[HealthMeasurement]:
        """Release held readings of devices that have sent nothing for quiet_s (a production timer)."""
        now = time.monotonic()
        with self._changed:
            out = [
                self._queue(d, r, now_ms())
                for d, a in self._assemblers.items()
                if now - self.devices[d].last_monotonic >= quiet_s
                for r in a.flush()
            ]
            if out:
                self._changed.notify_all()
            return out

    def status(self) -> list[DeviceStatus]:
        """Per-device status for the retained status message: link up, frames, rejected by reason."""
        return [
            DeviceStatus(
                device=d,
                ok=st.connected,
                frames=st.notifications,
                malformed=dict(st.rejected),
            )
            for d, st in self.devices.items()
        ]

    def _queue(self, device: str, reading: BleReading, received_ms: int) -> HealthMeasurement:
        ts = measured_ms(reading, received_ms)
        type_, values = reading.contract()
        stored = self._put(
            device, lambda seq: self.tracker.measurement(device, seq, ts, type_, values)
        )
        self.stats.measurements += 1
        self._on_queued()
        return stored

    def wait_for(self, predicate: Callable[[HutStats], bool], timeout: float) -> bool:
        """Block until predicate(stats) holds (re-checked on every handled notification)."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.stats), timeout)

    def start(self) -> None:
        """Start one reader thread per device (each opens its source; an absent device is retried)."""
        for device, source in self._sources.items():
            t = threading.Thread(
                target=self._read, args=(device, source), name=f"hut-{device}", daemon=True
            )
            t.start()
            self._threads.append(t)

    def _read(self, device: str, source: NotificationSource) -> None:
        state = self.devices[device]
        quiet = False  # an instrument switched off for hours is logged once, not every second
        while not self._stop.is_set():
            try:
                source.open()
                state.connected, quiet = True, False
                log.info("%s: connected", device)
                for note in source.notifications():
                    self.handle(device, note)
                return  # closed
            except BleUnavailable as exc:
                self.stats.link_errors += 1
                if not quiet:
                    log.warning("%s: %s; retrying every %.0f s", device, exc, RECONNECT_S)
                quiet = True
            except QueueError as exc:
                self.failed = f"{device}: {exc}"
                log.error("queue failed, stopping: %s", exc)
                self._on_failure()
                return
            finally:
                state.connected = False
            source.close()
            self._stop.wait(RECONNECT_S)

    def stop(self) -> None:
        """Close every source and wait for the reader threads."""
        self._stop.set()
        for source in self._sources.values():
            source.close()
        for t in self._threads:
            t.join(timeout=5)
