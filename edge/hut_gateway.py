"""The health-hut gateway process: configured devices -> HutAgent -> durable queue -> the shared Publisher.

`python -m edge.agent --config FILE` and `gumei edge run` land here when the config's site is `HH-…`.
Every device is a `NotificationSource`: Bluetooth LE instruments through bleak (`BleakTransport`),
a serial card reader through `SerialCardSource`, simulated devices through the framed socket
(`SocketTransport`); the agent behind them is the same code in each case.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping

import serial

from contract import DeviceStatus
from edge.ble import height_weight
from edge.ble.errors import BleUnavailable
from edge.ble.transport import BleakTransport, Notification, NotificationSource, SocketTransport
from edge.card import load_district_key
from edge.config import (
    BleDevice,
    HutConfig,
    SerialCardReader,
    SerialStation,
    SocketDevice,
    read_secret,
)
from edge.credentials import PasswordFile
from edge.health_session import CARD_TAP_UUID, SessionTracker
from edge.hut import HutAgent
from edge.lifecycle import open_queue, publish_tuning, serve
from edge.publisher import Publisher
from edge.queue import DurableQueue
from runtime.mqtt import MqttEndpoint

log = logging.getLogger(__name__)
TICK_S = 1.0  # housekeeping: release readings held by quiet instruments


class SerialCardSource:
    """NotificationSource over a serial card reader that sends one card number per line.

    Each line becomes a notification of the card characteristic, so the agent treats a serial
    reader exactly like a Bluetooth one. Threading as NotificationSource: one consumer thread,
    close() from any thread.
    """

    def __init__(self, port: str, baudrate: int = 9600, uuid: str = CARD_TAP_UUID) -> None:
        self._port, self._baudrate, self._uuid = port, baudrate, uuid
        self._ser: serial.SerialBase | None = None
        self._closed = threading.Event()

    def open(self) -> None:
        """Open the serial port; BleUnavailable when it cannot be opened."""
        self._closed.clear()
        try:
            self._ser = serial.serial_for_url(self._port, baudrate=self._baudrate, timeout=0.5)
        except (serial.SerialException, OSError) as exc:
            raise BleUnavailable(f"card reader {self._port}: {exc}") from exc

    def notifications(self) -> Iterator[Notification]:
        """Yield one notification per non-empty line until close(); BleUnavailable on a lost port."""
        ser = self._ser
        if ser is None:
            raise BleUnavailable("not open")
        while not self._closed.is_set():
            try:
                line = ser.readline()
            except (
                serial.SerialException,
                OSError,
                TypeError,
            ) as exc:  # TypeError: closed under readline
                if self._closed.is_set():
                    return
                raise BleUnavailable(f"card reader {self._port}: {exc}") from exc
            data = line.strip()
            if data:
                yield Notification(self._uuid, data, time.time_ns() // 1_000_000)

    def close(self) -> None:
        """Close the port; the consumer's next readline ends notifications()."""
        self._closed.set()
        ser, self._ser = self._ser, None
        if ser is not None:
            ser.close()


def make_source(
    dev: BleDevice | SocketDevice | SerialCardReader | SerialStation, card_uuids: list[str]
) -> NotificationSource:
    """The transport for one configured device (no I/O until open())."""
    if isinstance(dev, BleDevice):
        return BleakTransport(
            dev.address, dev.characteristics or card_uuids, connect_timeout=dev.connect_timeout_s
        )
    if isinstance(dev, SerialCardReader):
        return SerialCardSource(dev.port, dev.baudrate)
    if isinstance(dev, SerialStation):  # each line is one station frame
        return SerialCardSource(dev.port, dev.baudrate, height_weight.FRAME_UUID)
    return SocketTransport(dev.host, dev.port)


class HutGateway:
    """One health hut: a HutAgent over the configured devices and the shared Publisher (kind health).

    Lifecycle: construct (no I/O) -> start() -> stop(). A queue failure sets stop_event and `failed`.
    Threading: start()/stop()/tick() from the main thread; status() on the publisher thread.
    """

    def __init__(
        self,
        cfg: HutConfig,
        queue: DurableQueue,
        endpoint: MqttEndpoint,
        district_key: bytes,
        *,
        sources: Mapping[str, NotificationSource] | None = None,
        credentials: PasswordFile | None = None,
    ) -> None:
        self.cfg, self.queue = cfg, queue
        self.stop_event = threading.Event()
        h = cfg.hut
        card_uuids = h.card_characteristics()
        self.sources = (
            dict(sources)
            if sources is not None
            else {d.id: make_source(d, card_uuids) for d in (h.card_reader, *h.instruments)}
        )
        self.publisher = Publisher(
            endpoint,
            cfg.site,
            "health",
            queue,
            tuning=publish_tuning(cfg.publish, cfg.queue),
            status_fn=self.status,
            credentials=credentials,
        )
        self.agent = HutAgent(
            self.sources,
            h.card_reader.id,
            SessionTracker(district_key, h.session_timeout_s),
            queue.put,
            self.publisher.notify,
            on_failure=self.stop_event.set,
        )

    @property
    def failed(self) -> str | None:
        """Why the gateway stopped on its own (a queue failure), else None."""
        return self.agent.failed

    def status(self) -> list[DeviceStatus]:
        """Per-device status for the retained status message."""
        return self.agent.status()

    def start(self) -> None:
        """Start the publisher, then one reader thread per device."""
        self.publisher.start()
        self.agent.start()

    def tick(self) -> None:
        """Housekeeping: release readings held by instruments quiet for flush_after_s."""
        self.agent.flush_idle(self.cfg.hut.flush_after_s)

    def stop(self) -> None:
        """Stop reading devices, release what the assemblers hold, then stop the publisher (offline)."""
        self.stop_event.set()
        self.agent.stop()
        if self.agent.failed is None:
            self.agent.flush()
        self.publisher.stop()

    def stats_line(self) -> str:
        """One log line of counters: per device frames and rejects, taps, measurements, queue."""
        parts = []
        for d, st in self.agent.devices.items():
            bad = ",".join(f"{k}={v}" for k, v in sorted(st.rejected.items())) or "0"
            parts.append(f"{d} ok={st.connected} frames={st.notifications} rejected[{bad}]")
        s, q, ps = self.agent.stats, self.queue.stats(), self.publisher.stats
        parts.append(f"taps={s.taps} measurements={s.measurements} link_errors={s.link_errors}")
        parts.append(
            f"queue buffered={q.buffered} accepted={q.accepted} acked={q.acked} dropped={q.dropped} "
            f"connected={ps.connected} replayed={ps.entries_replayed}"
        )
        return "; ".join(parts)


def run(cfg: HutConfig, *, on_started: Callable[[HutGateway], None] | None = None) -> int:
    """Run the hut gateway until SIGTERM/SIGINT; returns the process exit code."""
    password = read_secret(cfg.broker.credentials_file, "broker.credentials_file")
    key = load_district_key(cfg.hut.district_key_file)
    queue = open_queue(cfg.queue)
    gw = HutGateway(
        cfg,
        queue,
        cfg.endpoint(password),
        key,
        credentials=PasswordFile(cfg.broker.credentials_file),
    )
    return serve(
        gw,
        queue,
        started=f"hut {cfg.site} started: {len(cfg.hut.instruments)} instruments and card reader "
        f"{cfg.hut.card_reader.id}",
        log_stats_s=cfg.log_stats_s,
        on_started=on_started,
        tick=gw.tick,
        tick_s=TICK_S,
    )
