"""The waste-station agent: scale sources -> deposit detector -> durable queue -> Publisher.

Also the gateway entry point for either kind (`python -m edge.agent`, `run_gateway`): a config
whose site is `HH-…` runs the health hut (`edge.hut_gateway`).
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import serial
from pydantic import ValidationError

from contract import DeviceStatus, WasteReading, now_ms
from edge.card import CardPseudonymizer, TapWindow, load_district_key
from edge.config import (
    AnyGatewayConfig,
    GatewayConfig,
    HutConfig,
    ModbusDevice,
    SerialDevice,
    WeighbridgeConfig,
    read_secret,
)
from edge.credentials import PasswordFile
from edge.deposits import DepositDetector, EventKind, ScaleEvent
from edge.errors import QueueError, ScaleUnavailable
from edge.lifecycle import open_queue, publish_tuning, serve
from edge.publisher import Publisher
from edge.queue import DurableQueue
from edge.scales.modbus_driver import ModbusScaleSource
from edge.scales.serial_driver import SerialIndicatorSource
from edge.scales.source import ScaleSource
from runtime.mqtt import MqttEndpoint

log = logging.getLogger(__name__)

RECONNECT_MIN_S, RECONNECT_MAX_S = 1.0, 30.0


def make_source(dev: SerialDevice | ModbusDevice) -> ScaleSource:
    """The driver for one configured device (no I/O until open())."""
    if isinstance(dev, SerialDevice):
        return SerialIndicatorSource(
            dev.port,
            device=dev.id,
            baudrate=dev.baudrate,
            checksum=dev.checksum,
            terminator=b"\r\n" if dev.terminator == "crlf" else b"\r",
            silence_s=dev.silence_s,
        )
    return ModbusScaleSource(dev.host, dev.port, unit=dev.unit, device=dev.id, poll_s=dev.poll_s)


@dataclass
class ScaleState:
    """What the agent knows about one scale (written by its thread, read by the status)."""

    device: SerialDevice | ModbusDevice
    source: ScaleSource
    detector: DepositDetector
    taps: TapWindow | None = None
    ok: bool = False
    gross_kg: float | None = None
    deposits: int = 0
    events: Counter[str] = field(default_factory=Counter)

    def status(self) -> DeviceStatus:
        """This scale as a status entry, with its frame and malformed-frame counters."""
        fill = None
        cap = self.device.capacity_kg
        if cap and self.gross_kg is not None:
            fill = round(min(max(self.gross_kg / cap * 100, 0.0), 200.0), 1)
        st = self.source.stats
        return DeviceStatus(
            device=self.device.id,
            ok=self.ok,
            fill_pct=fill,
            frames=st.frames,
            malformed=dict(st.malformed),
            reconnects=st.reconnects,
            deposits=self.deposits,
        )


class WasteAgent:
    """One gateway: a thread per scale, the shared Publisher, optional card taps.

    Lifecycle: construct (no I/O) -> start() -> stop(). Each scale thread opens its source,
    feeds samples to its DepositDetector and, for a deposit, commits the reading to the queue
    (the commit comes before anything else) and then notifies the publisher. A scale that
    becomes unavailable is closed, reopened with exponential back-off and jitter, and its
    detector reset. A queue failure is fatal: `failed` is set and stop_event fires.
    Threading: start()/stop() from the main thread; status() from any thread.
    """

    def __init__(
        self,
        cfg: GatewayConfig,
        queue: DurableQueue,
        endpoint: MqttEndpoint,
        *,
        sources: dict[str, ScaleSource] | None = None,
        pseudonymizer: CardPseudonymizer | None = None,
        credentials: PasswordFile | None = None,
    ) -> None:
        self.cfg, self.queue = cfg, queue
        self.stop_event = threading.Event()
        self.failed: str | None = None
        params = cfg.detector.params()
        window_ms = int(cfg.cards.window_s * 1000) if cfg.cards else 0
        self.scales = [
            ScaleState(
                d,
                (sources or {}).get(d.id) or make_source(d),
                DepositDetector(params),
                TapWindow(pseudonymizer, window_ms) if pseudonymizer else None,
            )
            for d in cfg.devices
        ]
        tuning = publish_tuning(cfg.publish, cfg.queue)
        self.publisher = Publisher(
            endpoint,
            cfg.site,
            "waste",
            queue,
            tuning=tuning,
            status_fn=self.status,
            credentials=credentials,
        )
        self._threads: list[threading.Thread] = []
        self._rng = random.Random()

    def start(self) -> None:
        """Start the publisher and one thread per scale."""
        self.publisher.start()
        for st in self.scales:
            t = threading.Thread(
                target=self._scale_loop, args=(st,), name=f"scale-{st.device.id}", daemon=True
            )
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Stop reading scales, then stop the publisher (offline status)."""
        self.stop_event.set()
        for st in self.scales:
            st.source.close()
        for t in self._threads:
            t.join(10)
        self.publisher.stop()

    def status(self) -> list[DeviceStatus]:
        """Per-device status for the retained status message."""
        return [st.status() for st in self.scales]

    def tap(self, ts_ms: int, card_number: str) -> None:
        """A resident card tap at the station: it names the next deposit on each scale."""
        for st in self.scales:
            if st.taps is not None:
                st.taps.tap(ts_ms, card_number)

    def _scale_loop(self, st: ScaleState) -> None:
        delay = RECONNECT_MIN_S
        while not self.stop_event.is_set():
            try:
                st.source.open()
                for sample in st.source.samples():
                    st.ok, st.gross_kg, delay = True, sample.gross_kg, RECONNECT_MIN_S
                    ev = st.detector.feed(sample)
                    if ev is not None:
                        self._on_event(st, ev)
                    if self.stop_event.is_set():
                        break
            except ScaleUnavailable as exc:
                if self.stop_event.is_set():
                    break
                st.ok = False
                log.warning("%s: %s; reconnecting in about %.0f s", st.device.id, exc, delay)
            except QueueError as exc:
                self.failed = f"{st.device.id}: {exc}"
                log.error("queue failed, stopping: %s", exc)
                self.stop_event.set()
                break
            st.source.close()
            st.detector.reset()
            st.source.stats.reconnects += 1
            self.stop_event.wait(delay * (0.5 + self._rng.random()))
            delay = min(delay * 2, RECONNECT_MAX_S)
        st.source.close()

    def _on_event(self, st: ScaleState, ev: ScaleEvent) -> None:
        st.events[ev.kind.value] += 1
        if ev.kind is not EventKind.DEPOSIT:
            log.info("%s: %s %+.3f kg", st.device.id, ev.kind.value, ev.delta_kg)
            return
        resident = st.taps.claim(ev.ts_ms) if st.taps is not None else None
        gross = ev.gross_kg if 0 <= ev.gross_kg <= 10_000 else None
        dev = st.device
        try:
            self.queue.put(
                dev.id,
                lambda seq: WasteReading(
                    device=dev.id,
                    seq=seq,
                    ts=ev.ts_ms,
                    category=dev.category,
                    net_kg=ev.delta_kg,
                    gross_kg=gross,
                    resident=resident,
                ),
            )
        except (
            ValidationError
        ) as exc:  # cannot happen with a validated config; never stop the scale for it
            st.events["invalid"] += 1
            log.error(
                "%s: deposit not representable in the contract: %s", dev.id, exc.errors()[0]["msg"]
            )
            return
        st.deposits += 1
        self.publisher.notify()

    def stats_line(self) -> str:
        """One log line of counters: frames, malformed by reason, deposits, queue."""
        parts = []
        for st in self.scales:
            s = st.source.stats
            bad = ",".join(f"{k}={v}" for k, v in sorted(s.malformed.items())) or "0"
            parts.append(
                f"{st.device.id} ok={st.ok} frames={s.frames} malformed[{bad}] deposits={st.deposits}"
            )
        q = self.queue.stats()
        ps = self.publisher.stats
        parts.append(
            f"queue buffered={q.buffered} accepted={q.accepted} acked={q.acked} dropped={q.dropped} "
            f"connected={ps.connected} replayed={ps.entries_replayed}"
        )
        return "; ".join(parts)


def _card_reader(port: str, agent: WasteAgent) -> None:
    """Read card numbers (one per line) from a serial card reader and record them as taps."""
    while not agent.stop_event.is_set():
        try:
            with serial.serial_for_url(port, timeout=0.5) as ser:
                while not agent.stop_event.is_set():
                    line = ser.readline().decode("ascii", errors="replace").strip()
                    if line:
                        agent.tap(now_ms(), line)  # pseudonymized at once; the number is not kept
        except (serial.SerialException, OSError) as exc:
            log.warning("card reader %s: %s", port, exc)
            agent.stop_event.wait(5)


def run(cfg: GatewayConfig, *, on_started: Callable[[WasteAgent], None] | None = None) -> int:
    """Run the agent until SIGTERM/SIGINT; returns the process exit code."""
    password = read_secret(cfg.broker.credentials_file, "broker.credentials_file")
    pseudo = (
        CardPseudonymizer(load_district_key(cfg.cards.district_key_file)) if cfg.cards else None
    )
    queue = open_queue(cfg.queue)
    agent = WasteAgent(
        cfg,
        queue,
        cfg.endpoint(password),
        pseudonymizer=pseudo,
        credentials=PasswordFile(cfg.broker.credentials_file),
    )

    def started(agent: WasteAgent) -> None:
        if cfg.cards is not None and cfg.cards.reader_port:
            threading.Thread(
                target=_card_reader, args=(cfg.cards.reader_port, agent), daemon=True
            ).start()
        if on_started is not None:
            on_started(agent)

    return serve(
        agent,
        queue,
        started=f"agent {cfg.site} started: {len(agent.scales)} scales",
        log_stats_s=cfg.log_stats_s,
        on_started=started,
    )


def run_gateway(cfg: AnyGatewayConfig) -> int:
    """Run the agent the config describes (waste station, health hut or weighbridge); returns the
    exit code."""
    if isinstance(cfg, HutConfig):
        from edge import hut_gateway

        return hut_gateway.run(cfg)
    if isinstance(cfg, WeighbridgeConfig):
        from edge.weighbridge import gateway

        return gateway.run(cfg)
    return run(cfg)


def main(argv: list[str] | None = None) -> None:
    """Lean entry point for gateways (`python -m edge.agent --config FILE`): no CLI imports.

    `gumei edge run` does the same, but the `gumei` CLI also imports the cloud tools (NumPy,
    httpx, rich), about 35 MiB more resident memory on a small gateway.
    """
    import argparse
    import sys

    from edge.config import check_files, describe, load_config
    from edge.errors import EdgeError

    parser = argparse.ArgumentParser(
        prog="python -m edge.agent",
        description="Run a site gateway agent (WS-… waste station, HH-… health hut, WB-… weighbridge).",
    )
    parser.add_argument(
        "--config", "-c", default="/etc/gumei/gateway.toml", help="gateway TOML file"
    )
    parser.add_argument(
        "--check", action="store_true", help="only validate the config and its files"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        cfg = load_config(args.config)
        problems = check_files(cfg)
        if problems:
            raise EdgeError("\n".join(f"{args.config}: {p}" for p in problems))
        if args.check:
            print(f"{args.config}: ok: {describe(cfg)}")
            sys.exit(0)
        sys.exit(run_gateway(cfg))
    except EdgeError as exc:
        for line in str(exc).splitlines():
            print(f"edge: error: {line}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
