"""Load test: a simulated fleet drives the real pipeline; the report compares it with ground truth.

Starts its own broker, influxd, ingestion workers and API; runs the fleet; optionally injects
faults at given times; then checks stored = sent − quarantined and the API's daily tonnage
against the ground truth, to the gram.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.proc_stats import ProcStats, sample
from bench.report import Goal
from broker.dynsec import DEFAULT_WORKERS
from cloud import registry as registry_mod
from cloud.days import date_of, day_number
from cloud.influx import InfluxClient, InfluxError
from contract import WasteReading
from contract.models import FUTURE_TOLERANCE_MS
from devstack.services import free_port, wait_for_port
from devstack.stack import LocalStack
from firmware_sim.fleet import Fleet, GroundTruth
from firmware_sim.truth import api_daily, compare, expected_daily

Fault = Callable[["LoadRun"], Awaitable[None]]


@dataclass
class LoadConfig:
    """What to run."""

    gateways: int = 2000
    seconds: float = 60.0
    workers: int = 2
    warp: float = 120.0
    tick_s: float = 1.0
    seed: int = 7
    skew_ms: dict[str, int] = field(default_factory=dict)
    faults: list[tuple[float, Fault]] = field(default_factory=list)  # (at second, coroutine)
    drain_timeout_s: float = 180.0
    root: Path | None = None


@dataclass
class Report:
    """What happened, and whether it matched the ground truth."""

    gateways: int = 0
    connected_peak: int = 0
    sent: int = 0
    expected_quarantined: int = 0
    stored: int = 0
    quarantined: int = 0
    lost: int = 0
    unsent: int = 0
    duplicated: int = 0
    seconds: float = 0.0
    drain_s: float = 0.0
    throughput: float = 0.0
    ack_p50_ms: float = 0.0
    ack_p99_ms: float = 0.0
    visible_p50_ms: float = 0.0
    visible_p99_ms: float = 0.0
    workers: list[ProcStats] = field(default_factory=list)
    daily_rows: int = 0
    tonnage_error_g: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.unsent == 0
            and self.duplicated == 0
            and not self.mismatches
            and self.stored == self.sent - self.expected_quarantined
        )

    def goals(self) -> list[Goal]:
        """The checks `ok` makes, in the benchmarks' report format (`bench.report.Goal`)."""
        return [
            Goal(
                "readings lost, duplicated or still queued",
                self.lost + self.duplicated + self.unsent,
                1,
                "max",
            ),
            Goal(
                "stored - (sent - expected quarantined)",
                abs(self.stored - (self.sent - self.expected_quarantined)),
                1,
                "max",
            ),
            Goal("daily tonnage mismatches", len(self.mismatches), 1, "max"),
        ]

    def lines(self) -> list[str]:
        """The printed report."""
        out = [
            f"gateways           {self.gateways} (peak connected {self.connected_peak})",
            f"readings sent      {self.sent} in {self.seconds:.1f} s ({self.throughput:,.0f} readings/s)",
            f"stored             {self.stored}",
            f"quarantined        {self.quarantined} (expected {self.expected_quarantined}: future timestamps)",
            f"lost / duplicated  {self.lost} / {self.duplicated} (still queued at gateways after the flush: {self.unsent})",
            f"drain after stop   {self.drain_s:.1f} s",
            f"publish->PUBACK    p50 {self.ack_p50_ms:.0f} ms, p99 {self.ack_p99_ms:.0f} ms",
            f"publish->queryable p50 {self.visible_p50_ms:.0f} ms, p99 {self.visible_p99_ms:.0f} ms (probe readings)",
        ]
        out += [
            f"worker {w.name:<11} cpu {w.cpu_s:.1f} s ({w.cpu_pct:.0f} %), peak RSS {w.peak_rss_mb:.0f} MB"
            for w in self.workers
        ]
        out.append(f"daily rows checked {self.daily_rows}; tonnage error {self.tonnage_error_g} g")
        out += ["", *(g.line() for g in self.goals())]
        out += [f"MISMATCH {m}" for m in self.mismatches[:20]]
        out.append("RESULT " + ("OK: nothing lost, tonnage exact" if self.ok else "FAILED"))
        return out


class LoadRun:
    """One load test in progress; faults get it to act on the stack and the processes."""

    # Set by the run once the fleet is built (faults and the checks read them).
    fleet: Fleet
    probe_readings: list[WasteReading]
    truth: GroundTruth

    def __init__(self, cfg: LoadConfig, root: Path, progress: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.progress = progress
        # one more site than gateways: the latency probe is a gateway of its own (client ids are bound)
        areas = max(1, math.ceil((cfg.gateways + 1) / 8))
        full = registry_mod.default_registry(areas=areas)
        waste = [s for s in full.sites if s.kind == "waste"][: cfg.gateways + 1]
        self.registry = registry_mod.Registry(areas=full.areas, sites=waste)
        self.registry_path = root / "sites.yaml"
        root.mkdir(parents=True, exist_ok=True)
        registry_mod.save(self.registry, self.registry_path)
        self.stack = LocalStack(
            root / "stack", self.registry, workers=max(cfg.workers, DEFAULT_WORKERS)
        )
        self.api_port = free_port()
        self.config: Path | None = None
        self.worker_names: list[str] = []

    def start_services(self) -> None:
        self.stack.start()
        self.config = self.stack.write_cloud_config(
            self.registry_path, extra=f"api_port = {self.api_port}"
        )
        for i in range(1, self.cfg.workers + 1):
            self.start_worker(f"ingest-{i}")
        api = self.stack.spawn("api", "api", "--config", str(self.config))
        deadline = time.monotonic() + 60
        for name in self.worker_names:
            self.stack.wait_ready(
                name, self.process(name), timeout=max(0.0, deadline - time.monotonic())
            )
        wait_for_port(
            self.api_port,
            api,
            max(1.0, deadline - time.monotonic()),
            self.stack.root / "logs" / "api.log",
        )

    def start_worker(self, name: str) -> None:
        assert self.config is not None
        self.stack.spawn(name, "ingest", "--config", str(self.config), "--name", name)
        if name not in self.worker_names:
            self.worker_names.append(name)

    def process(self, name: str) -> subprocess.Popen[bytes]:
        """The live process of a spawned component."""
        for n, proc in reversed(self.stack.processes):
            if n == name:
                return proc
        raise KeyError(name)


async def _probe_latency(
    run: LoadRun, influx: InfluxClient, stop: asyncio.Event, out: list[float]
) -> None:
    """Once a second, publish one probe reading and time until InfluxDB returns it.

    After a lost connection the probe waits REPLAY_DELAY_S, then re-sends its recent readings,
    the same at-least-once policy as the simulated gateways.
    """
    import aiomqtt

    from contract import WasteBatch, encode
    from contract.topics import waste_readings
    from firmware_sim.fleet import REPLAY_DELAY_S

    site = run.registry.sites[0]
    device = site.devices[0]
    ep = run.stack.endpoint(site.id)
    seq = time.time_ns()
    tls = aiomqtt.TLSParameters(ca_certs=str(ep.ca_file)) if ep.ca_file else None
    sent: list[WasteReading] = run.probe_readings
    replay = False
    while not stop.is_set():
        try:
            async with aiomqtt.Client(
                ep.host,
                ep.port,
                username=ep.username,
                password=ep.password,
                identifier=site.id,
                tls_params=tls,
            ) as client:
                if replay and sent:
                    again = WasteBatch(site=site.id, readings=sent[-60:])
                    await client.publish(waste_readings(site.id), encode(again), qos=1)
                    replay = False
                while not stop.is_set():
                    seq += 1
                    ts = int(time.time() * 1000)
                    r = WasteReading(
                        device=device.id, seq=seq, ts=ts, category=device.category, net_kg=0.01
                    )
                    sent.append(r)  # accepted: it must arrive
                    t0 = time.monotonic()
                    await client.publish(
                        waste_readings(site.id),
                        encode(WasteBatch(site=site.id, readings=[r])),
                        qos=1,
                    )
                    q = f"SELECT count(net_kg) FROM waste_reading WHERE device = '{device.id}' AND seq = {seq} AND time >= {ts - 1}ms"
                    while time.monotonic() - t0 < 30 and not stop.is_set():
                        series = await asyncio.to_thread(influx.query, q, 0)
                        if series and series[0].values and series[0].values[0][1]:
                            out.append((time.monotonic() - t0) * 1000)
                            break
                        await asyncio.sleep(0.02)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
        except (aiomqtt.MqttError, InfluxError):
            replay = True
            await asyncio.sleep(REPLAY_DELAY_S)


async def _drive(run: LoadRun, influx: InfluxClient, report: Report) -> None:
    cfg = run.cfg
    start_ms = int(time.time() * 1000 - cfg.seconds * cfg.warp * 1000)
    # the probe is gateway sites[0] (client id = site id, bound by the broker): the fleet runs the other cfg.gateways
    others = registry_mod.Registry(areas=run.registry.areas, sites=run.registry.sites[1:])
    fleet = Fleet(
        others,
        run.stack.endpoint,
        warp=cfg.warp,
        start_ms=start_ms,
        tick_s=cfg.tick_s,
        seed=cfg.seed,
        skew_ms=cfg.skew_ms,
    )
    run.fleet = fleet
    run.probe_readings = []
    stop = asyncio.Event()
    visible: list[float] = []
    t0 = time.monotonic()
    tasks = [
        asyncio.create_task(fleet.run(stop)),
        asyncio.create_task(_probe_latency(run, influx, stop, visible)),
    ]

    async def faults() -> None:
        for at, fault in sorted(cfg.faults, key=lambda f: f[0]):
            await asyncio.sleep(max(0.0, at - (time.monotonic() - t0)))
            run.progress(
                f"fault at {time.monotonic() - t0:.0f}s: {getattr(fault, '__name__', 'fault')}"
            )
            await fault(run)

    fault_task = asyncio.create_task(faults())
    while time.monotonic() - t0 < cfg.seconds:
        await asyncio.sleep(min(5.0, cfg.seconds - (time.monotonic() - t0)))
        report.connected_peak = max(report.connected_peak, fleet.connected)
        run.progress(
            f"{time.monotonic() - t0:5.0f}s  gateways connected {fleet.connected}/{len(fleet.gateways)}  "
            f"readings {len(fleet.truth.readings)}"
        )
    await fault_task
    stop.set()
    await asyncio.gather(*tasks)
    report.seconds = time.monotonic() - t0
    truth = fleet.truth
    truth.add(run.registry.sites[0].id, run.probe_readings)
    report.gateways = len(fleet.gateways)
    report.unsent = fleet.unsent()
    report.sent = len(truth.readings)
    report.throughput = report.sent / report.seconds
    lat = sorted(truth.latencies_ms)
    if lat:
        report.ack_p50_ms, report.ack_p99_ms = _pct(lat, 50), _pct(lat, 99)
    if visible:
        report.visible_p50_ms, report.visible_p99_ms = (
            _pct(sorted(visible), 50),
            _pct(sorted(visible), 99),
        )
    run.truth = truth


def _pct(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p / 100))]


def _diagnose_loss(
    influx: InfluxClient, truth: GroundTruth, valid: list[WasteReading]
) -> list[str]:
    """Name the lost readings, when the broker acknowledged them, and what their gateway saw."""
    stored: set[tuple[str, int]] = set()
    for s in influx.query_chunks("SELECT seq, device FROM waste_reading"):
        i, j = s.columns.index("device"), s.columns.index("seq")
        stored.update((v[i], v[j]) for v in s.values)
    out = []
    for r in valid:
        if (r.device, r.seq) in stored:
            continue
        payload = truth.message_of.get((r.device, r.seq), b"")
        acks = ", ".join(
            time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"
            for t in truth.acked_at.get(payload, [])
        )
        site = truth.site_of.get(r.device, "?")
        seen = "; ".join(
            time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d} {e}"
            for t, e in truth.events
            if e.startswith((site + " ", "broker"))
        )
        out.append(
            f"lost {r.device} seq {r.seq}: acked at [{acks}]; gateway: {seen or 'no connection loss seen'}"
        )
        if len(out) >= 10:
            break
    return out


def _verify(run: LoadRun, influx: InfluxClient, report: Report, token: str) -> None:
    truth = run.truth
    now = int(time.time() * 1000)
    future = [r for r in truth.readings if r.ts > now + FUTURE_TOLERANCE_MS - 60_000]
    report.expected_quarantined = len(future)
    valid = [r for r in truth.readings if r.ts <= now + FUTURE_TOLERANCE_MS - 60_000]
    expected = len({(r.device, r.seq) for r in valid})
    t0 = time.monotonic()
    stored = 0
    while time.monotonic() - t0 < run.cfg.drain_timeout_s:
        series = influx.query("SELECT count(net_kg) FROM waste_reading")
        stored = int(series[0].values[0][1]) if series else 0
        if stored >= expected:
            break
        time.sleep(0.5)
    report.drain_s = time.monotonic() - t0
    report.stored = stored
    q = influx.query("SELECT sum(entries) FROM quarantine")
    report.quarantined = int(q[0].values[0][1]) if q else 0
    report.lost = max(0, expected - stored)
    diagnosis = _diagnose_loss(influx, truth, valid) if report.lost else []
    report.duplicated = max(0, stored - expected)
    days = sorted({day_number(r.ts) for r in valid})
    assert run.config is not None
    from cloud.aggregate.runner import Aggregator

    Aggregator(influx, run.registry).recompute(days)
    exp = expected_daily(valid, truth.site_of)
    rows: list[dict[str, object]] = []
    with httpx.Client(
        base_url=f"http://127.0.0.1:{run.api_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    ) as http:
        if days:
            r = http.get(
                "/api/v1/waste/daily",
                params={
                    "start": date_of(days[0]).isoformat(),
                    "end": date_of(days[-1]).isoformat(),
                },
            )
            r.raise_for_status()
            rows = r.json()["rows"]
    actual = api_daily(rows)
    report.daily_rows = len(actual)
    report.mismatches = diagnosis + compare(exp, actual)
    report.tonnage_error_g = sum(
        abs(exp.get(k, (0, 0))[0] - actual.get(k, (0, 0))[0]) for k in set(exp) | set(actual)
    )
    if report.quarantined != report.expected_quarantined:
        report.mismatches.append(
            f"quarantined {report.quarantined} != expected {report.expected_quarantined}"
        )


def run_loadtest(cfg: LoadConfig, progress: Callable[[str], None] = print) -> Report:
    """Run a load test end to end and return its report (services are always stopped)."""
    with tempfile.TemporaryDirectory(prefix="gumei-load-") as tmp:
        root = cfg.root or Path(tmp)
        run = LoadRun(cfg, root, progress)
        report = Report()
        try:
            progress(
                f"starting broker, influxd, {cfg.workers} worker(s) and the API for {cfg.gateways} gateways"
            )
            run.start_services()
            token = run.stack.tokens().create("loadtest", "operator")
            with InfluxClient(run.stack.influx_config()) as influx:
                asyncio.run(_drive(run, influx, report))
                report.workers = [
                    sample(name, run.process(name).pid, report.seconds)
                    for name in run.worker_names
                    if run.process(name).poll() is None
                ]
                progress(
                    f"fleet stopped after {report.seconds:.0f}s; waiting for the pipeline to drain"
                )
                _verify(run, influx, report, token)
        finally:
            run.stack.stop()
        return report
