"""The weighbridge gateway: XK3190 indicator -> stable weights -> tickets -> durable queue -> MQTT.

Same durable queue, publisher and lifecycle as the station gateway (edge/queue.py,
edge/publisher.py, edge/lifecycle.py); tickets go out as gumei.weighbridge.tickets.v1 on
gumei/v1/waste/{site}/tickets, the retained status on gumei/v1/waste/{site}/status.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter
from collections.abc import Callable

from pydantic import ValidationError

from contract import DeviceStatus, now_ms
from edge.config import WeighbridgeConfig, read_secret
from edge.credentials import PasswordFile
from edge.errors import QueueError, ScaleUnavailable
from edge.lifecycle import open_queue, publish_tuning, serve
from edge.publisher import Publisher
from edge.queue import DurableQueue
from edge.weighbridge.operator import OperatorInput, load_book, save_book
from edge.weighbridge.source import Xk3190Source
from edge.weighbridge.stable import StableParams
from edge.weighbridge.tickets import (
    Aborted,
    GrossRecorded,
    Outcome,
    TicketBook,
    TicketDraft,
    WeighStation,
)
from runtime.mqtt import MqttEndpoint

log = logging.getLogger(__name__)

RECONNECT_MIN_S, RECONNECT_MAX_S = 1.0, 30.0
POLL_S = 0.2  # operator input and timeouts


def station_of(cfg: WeighbridgeConfig) -> WeighStation:
    """The pure weighing state machine with the config's thresholds and stored tares (grams)."""
    w = cfg.weighbridge
    params = StableParams(
        min_truck_g=w.min_truck_kg * 1000,
        empty_g=w.empty_kg * 1000,
        band_g=w.band_kg * 1000,
        stable_ms=int(w.stable_s * 1000),
        max_gap_ms=int(w.max_gap_s * 1000),
    )
    book = TicketBook(
        tare_timeout_ms=int(w.tare_timeout_h * 3600_000),
        stored_tares={plate: kg * 1000 for plate, kg in w.stored_tares_kg.items()},
    )
    return WeighStation(params, load_book(w.state_file, book), int(w.entry_timeout_min * 60_000))


class WeighbridgeGateway:
    """One weighbridge: the indicator thread, the operator thread, the Publisher.

    Lifecycle: construct (no I/O) -> start() -> stop(). The indicator thread feeds weights to the
    station; the operator thread (every POLL_S) hands operator entries to it and lets time pass
    (tare and entry timeouts). Both hold `_lock` while touching the station. A ticket is committed
    to the queue before the publisher is notified; the book's state file is rewritten after each
    change. A queue failure is fatal (`failed`, stop_event).
    """

    def __init__(
        self,
        cfg: WeighbridgeConfig,
        queue: DurableQueue,
        endpoint: MqttEndpoint,
        *,
        source: Xk3190Source | None = None,
        station: WeighStation | None = None,
        clock: Callable[[], int] = now_ms,
        credentials: PasswordFile | None = None,
    ) -> None:
        w = cfg.weighbridge
        self.cfg, self.queue, self.clock = cfg, queue, clock
        self.device = w.id
        self.stop_event = threading.Event()
        self.failed: str | None = None
        self.source = source or Xk3190Source(
            w.port, mode=w.mode, unit=w.unit, baudrate=w.baudrate, silence_s=w.silence_s
        )
        self.station = station or station_of(cfg)
        self.operator = OperatorInput(
            w.operator_input, {k: v.model_dump(mode="json") for k, v in w.cards.items()}
        )
        self.publisher = Publisher(
            endpoint,
            cfg.site,
            "waste",
            queue,
            tuning=publish_tuning(cfg.publish, cfg.queue),
            status_fn=self.status,
            stream="tickets",
            credentials=credentials,
        )
        self.ok = False
        self.tickets = 0
        self.grosses = 0
        self.aborted: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._rng = random.Random()

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the publisher, the indicator thread and the operator thread."""
        self.operator.poll()  # entries typed while the gateway was down are not for today's truck
        self.publisher.start()
        for target, name in (
            (self._indicator_loop, "indicator"),
            (self._operator_loop, "operator"),
        ):
            t = threading.Thread(target=target, name=f"{name}-{self.device}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Stop reading, then stop the publisher (offline status)."""
        self.stop_event.set()
        self.source.close()
        for t in self._threads:
            t.join(10)
        self.publisher.stop()

    def status(self) -> list[DeviceStatus]:
        """The indicator's status entry with its counters (fields v1 readers ignore)."""
        st = self.source.stats
        return [
            DeviceStatus(
                device=self.device,
                ok=self.ok,
                frames=st.frames,
                malformed=dict(st.malformed),
                reconnects=st.reconnects,
                tickets=self.tickets,
                aborted=dict(self.aborted),
                open_grosses=len(self.station.book.open),
            )
        ]

    def stats_line(self) -> str:
        """One log line of counters."""
        s = self.source.stats
        bad = ",".join(f"{k}={v}" for k, v in sorted(s.malformed.items())) or "0"
        ab = ",".join(f"{k}={v}" for k, v in sorted(self.aborted.items())) or "0"
        q = self.queue.stats()
        return (
            f"{self.device} ok={self.ok} frames={s.frames} malformed[{bad}] tickets={self.tickets} "
            f"aborted[{ab}] open={len(self.station.book.open)}; queue buffered={q.buffered} "
            f"accepted={q.accepted} acked={q.acked} connected={self.publisher.stats.connected}"
        )

    # ---- threads ------------------------------------------------------------------------
    def _indicator_loop(self) -> None:
        delay = RECONNECT_MIN_S
        while not self.stop_event.is_set():
            try:
                self.source.open()
                for ts, grams in self.source.samples():
                    self.ok, delay = True, RECONNECT_MIN_S
                    with self._lock:
                        self._handle(self.station.feed(ts, grams))
                    if self.stop_event.is_set():
                        break
            except ScaleUnavailable as exc:
                if self.stop_event.is_set():
                    break
                self.ok = False
                log.warning("%s: %s; reconnecting in about %.0f s", self.device, exc, delay)
            except QueueError as exc:
                self._fail(exc)
                break
            self.source.close()
            with self._lock:
                self._handle(self.station.interrupted(self.clock()))
            self.source.stats.reconnects += 1
            self.stop_event.wait(delay * (0.5 + self._rng.random()))
            delay = min(delay * 2, RECONNECT_MAX_S)
        self.source.close()

    def _operator_loop(self) -> None:
        while not self.stop_event.wait(POLL_S):
            try:
                entries = self.operator.poll()
                with self._lock:
                    for e in entries:
                        self.station.enter(self.clock(), e)
                        log.info(
                            "%s: entry for %s (%s)", self.device, e.plate, e.category or "tare"
                        )
                    self._handle(self.station.tick(self.clock()))
            except QueueError as exc:
                self._fail(exc)
                return
            except OSError as exc:
                log.warning("operator input %s: %s", self.operator.path, exc)

    def _fail(self, exc: Exception) -> None:
        self.failed = f"{self.device}: {exc}"
        log.error("queue failed, stopping: %s", exc)
        self.stop_event.set()

    # ---- outcomes (called with _lock held) ----------------------------------------------
    def _handle(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        for o in outcomes:
            if isinstance(o, TicketDraft):
                self._queue_ticket(o)
            elif isinstance(o, GrossRecorded):
                self.grosses += 1
                log.info(
                    "%s: gross of %s: %d kg",
                    self.device,
                    o.weighing.entry.plate,
                    o.weighing.grams // 1000,
                )
            elif isinstance(o, Aborted):
                self.aborted[o.reason] += 1
                log.warning(
                    "%s: weighing aborted (%s), plate %s, %s g, no ticket",
                    self.device,
                    o.reason,
                    o.plate or "-",
                    "-" if o.grams is None else o.grams,
                )
        try:
            save_book(self.cfg.weighbridge.state_file, self.station.book)
        except OSError as exc:
            log.error("%s: cannot save the ticket book: %s", self.device, exc)

    def _queue_ticket(self, draft: TicketDraft) -> None:
        try:
            t = self.queue.put(self.device, lambda n: draft.ticket(self.device, n))
        except ValidationError as exc:  # a draft the contract refuses: never stop the bridge for it
            self.aborted["invalid"] += 1
            log.error("%s: ticket not representable: %s", self.device, exc.errors()[0]["msg"])
            return
        self.tickets += 1
        log.info(
            "%s: ticket %d: %s %s net %d g (gross %d g, tare %d g %s)",
            self.device,
            t.ticket,
            t.plate,
            t.category.value + (f"/{t.subcategory.value}" if t.subcategory else ""),
            t.net_g,
            t.gross_g,
            t.tare_g,
            t.tare_source,
        )
        self.publisher.notify()


def run(
    cfg: WeighbridgeConfig, *, on_started: Callable[[WeighbridgeGateway], None] | None = None
) -> int:
    """Run the weighbridge gateway until SIGTERM/SIGINT; returns the process exit code."""
    password = read_secret(cfg.broker.credentials_file, "broker.credentials_file")
    queue = open_queue(cfg.queue)
    gw = WeighbridgeGateway(
        cfg, queue, cfg.endpoint(password), credentials=PasswordFile(cfg.broker.credentials_file)
    )
    return serve(
        gw,
        queue,
        started=f"weighbridge {cfg.site} started: indicator {gw.device} on {cfg.weighbridge.port}",
        log_stats_s=cfg.log_stats_s,
        on_started=on_started,
    )
