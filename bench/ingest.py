"""`gumei bench ingest`: the ingestion against its ceilings, side by side, in one run on one machine.

Everything runs on a private LocalStack (Mosquitto + influxd on free ports). Throughput phases
drain a backlog: the messages are first queued by the broker for the subscriber's persistent
session, then the subscriber (or the worker processes) connect and the clock runs from their
CONNACK until the count is reached (for the pipeline: verified by an InfluxDB COUNT query), so the
publisher's speed does not cap the figure and every phase is measured the same way.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import paho.mqtt.client as mqtt

from bench import proc_stats
from bench.loadgen import Load, LoadPublisher, make_load, paced, waste_sites
from bench.report import Figure, Goal, Report
from broker.dynsec import worker_name
from cloud import registry as registry_mod
from cloud.days import DAY_MS, day_start_ms, number_of, today
from cloud.influx import InfluxClient
from cloud.lineproto import join_lines
from contract.topics import SHARED_INGEST
from devstack.services import stop_process
from devstack.stack import LocalStack
from runtime.mqtt import connect_persistent, make_client
from runtime.system import ServiceError

# Each phase writes its own Shanghai day, from 60 days ago on: inside the workers' default 90-day
# horizon (older readings are too_old dead letters), never in the future.
BASE_MS = day_start_ms(number_of(today()) - 60)


RECEIVE_MAXIMUM = (
    2000  # the workers' default; Mosquitto 2.0 drains a deep in-flight window far slower
)


class BenchError(RuntimeError):
    """A benchmark phase failed (lost readings, a process that did not start, ...)."""


@dataclass(frozen=True)
class IngestOptions:
    """Sizes of one run; scale multiplies every count (0.01 for a smoke run)."""

    scale: float = 1.0
    single_messages: int = 30_000
    batch_messages: int = 10_000
    per_batch: int = 100
    ceiling_points: int = 1_000_000
    ceiling_batch: int = 10_000
    latency_seconds: float = 5.0
    publisher_sites: int = 16
    timeout_s: float = 180.0

    def n(self, count: int, floor: int = 1) -> int:
        return max(floor, int(count * self.scale))


@dataclass
class BenchResult:
    """All figures of one run and the goals' ratios."""

    figures: dict[str, Figure] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    goals: list[Goal] = field(default_factory=list)

    def add(self, key: str, fig: Figure) -> None:
        self.figures[key] = fig


class IngestBench:
    """Runs the phases in order; `report` is called with one line per finished figure."""

    def __init__(
        self, workdir: Path, options: IngestOptions, report: Callable[[str], None] = print
    ) -> None:
        self.options = options
        self.report = report
        self.registry = registry_mod.load()
        self.stack = LocalStack(workdir, self.registry)
        self.sites = waste_sites(self.registry, options.publisher_sites)
        self.probe_site = waste_sites(self.registry, 1, skip=options.publisher_sites)[0]
        self._day = 0
        self._seq = 1
        self._workers: dict[str, subprocess.Popen[bytes]] = {}
        self._sessions: set[str] = set()

    # -- plumbing ----------------------------------------------------------------------

    def _next_load(self, messages: int, per_message: int) -> Load:
        load = make_load(self.sites, messages, per_message, BASE_MS + self._day * DAY_MS, self._seq)
        self._day += 1
        self._seq += load.readings
        return load

    def _publish_backlog(self, load: Load) -> None:
        pub = LoadPublisher(self.stack.endpoint, [s.id for s in self.sites])
        try:
            pub.wait_connected()
            pub.publish_all(load.messages)
            pub.wait_published(self.options.timeout_s)
        finally:
            pub.close()

    @staticmethod
    def _count(influx: InfluxClient, where: str) -> int:
        series = influx.query(f"SELECT count(net_kg) FROM waste_reading WHERE {where}")
        return int(series[0].values[0][1]) if series and series[0].values else 0

    def _start_workers(self, names: list[str]) -> float:
        """Spawn `gumei ingest` processes together; return when the first one's subscription was granted."""
        for name in names:
            self._workers[name] = self.stack.spawn(
                name, "ingest", "--config", str(self.config), "--name", name
            )
            self._sessions.add(name)
        up: dict[str, float] = {}
        deadline = time.monotonic() + 30
        while len(up) < len(names):
            for name in names:
                proc = self._workers[name]
                if proc.poll() is not None:
                    raise BenchError(
                        f"worker {name} exited with {proc.returncode}: {self.stack.log_of(name)[-300:]}"
                    )
                if name not in up and self.stack.worker_ready(name, proc) is not None:
                    up[name] = time.monotonic()
            if time.monotonic() > deadline:
                raise BenchError(
                    f"workers {sorted(set(names) - set(up))} did not subscribe within 30s"
                )
            time.sleep(0.01)
        return min(up.values())

    def _stop_workers(self) -> None:
        for proc in self._workers.values():
            stop_process(proc)
        self._workers.clear()

    def _wait_count(self, influx: InfluxClient, load: Load) -> float:
        """The moment every reading of the load is queryable, verified by a full COUNT.

        A full COUNT over a million points costs influxd about 0.14 s of CPU, and InfluxQL's cost
        grows with the series it touches, so polling it would take CPU from the writes being
        measured. The poll counts instead the readings of one site (the last message's) in the
        last 1 % of the load's time (published last, so stored last but for a batch or two, about
        1 ms of influxd CPU a poll), and runs the full count once those are all there; the time
        taken is after the full count returned, so never early.
        """
        last = load.messages[-1]
        tail_start = load.end_ms - max(1, (load.end_ms - load.start_ms) // 100)
        tail = sum(
            max(0, m.first_ts + m.readings - max(m.first_ts, tail_start))
            for m in load.messages
            if m.site == last.site and m.first_ts + m.readings > tail_start
        )
        probe = f"site = '{last.site}' AND time >= {tail_start}ms AND time < {load.end_ms}ms"
        deadline = time.monotonic() + self.options.timeout_s
        while True:
            if self._count(influx, probe) >= tail:
                n = self._count(influx, load.where())
                if n == load.readings:
                    return time.monotonic()
                if n > load.readings:
                    raise BenchError(f"{n} readings stored, {load.readings} published: duplicates")
                time.sleep(0.03)
            if time.monotonic() > deadline:
                raise BenchError(
                    f"only {self._count(influx, load.where())} of {load.readings} readings stored after {self.options.timeout_s:.0f}s"
                )
            time.sleep(0.02)

    # -- phases --------------------------------------------------------------------------

    def mqtt_ceiling(self) -> Figure:
        """A bare paho QoS 1 subscriber that only counts, draining a backlog of 1-reading messages."""
        load = self._next_load(self.options.n(self.options.single_messages, 50), 1)
        got = 0
        done = threading.Event()
        up = threading.Event()
        t_up = [0.0]

        def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
            nonlocal got
            got += 1
            if got >= len(load.messages):
                done.set()

        def on_connect(
            c: mqtt.Client, _u: object, _f: object, rc: mqtt.ReasonCode, _p: object
        ) -> None:
            t_up[0] = time.monotonic()
            c.subscribe(SHARED_INGEST, qos=1)
            up.set()

        # worker identity 1 in the workers' group, before any worker runs (it unsubscribes at the end)
        ep = self.stack.endpoint(worker_name(1))
        client = make_client(ep, worker_name(1))
        client.on_message, client.on_connect = on_message, on_connect
        connect_persistent(client, ep, receive_maximum=RECEIVE_MAXIMUM)
        client.loop_start()
        if not up.wait(15):
            raise BenchError("bare subscriber did not connect")
        time.sleep(0.3)  # SUBACK
        client.disconnect()
        client.loop_stop()
        self._publish_backlog(load)
        up.clear()
        connect_persistent(client, ep, receive_maximum=RECEIVE_MAXIMUM)
        client.loop_start()
        if not done.wait(self.options.timeout_s):
            raise BenchError(f"bare subscriber got {got} of {len(load.messages)} messages")
        seconds = time.monotonic() - t_up[0]
        client.unsubscribe(SHARED_INGEST)
        client.disconnect()
        client.loop_stop()
        return Figure(
            "MQTT ceiling: bare paho QoS 1 subscriber, counting",
            "msg/s",
            len(load.messages) / seconds,
            seconds,
            f"{len(load.messages)} msgs",
        )

    def influx_ceiling(self, influx: InfluxClient, connections: int) -> Figure:
        """Pre-built 10k-point line-protocol batches posted over 1 or 2 connections."""
        o = self.options
        total = o.n(o.ceiling_points, o.n(o.ceiling_batch, 100) * connections)
        size = min(o.n(o.ceiling_batch, 100), total)
        start_ns = (BASE_MS + self._day * DAY_MS) * 1_000_000
        self._day += 1
        bodies = []
        for b in range(total // size):
            lines = (
                f"bench_ceiling,area=A01,category=dry,device=WS-0101-S{i % 4 + 1},site=WS-{i % 300:04d} "
                f"net_kg={(i % 5000) / 100 + 0.01!r},seq={b * size + i}i {start_ns + (b * size + i) * 1000}"
                for i in range(size)
            )
            bodies.append(join_lines(lines))
        started = time.monotonic()
        with ThreadPoolExecutor(connections) as pool:
            list(pool.map(influx.write_lines, bodies))
        seconds = time.monotonic() - started
        points = len(bodies) * size
        how = ", gzip" if influx.gzip else ""
        return Figure(
            f"InfluxDB ceiling: {size}-point batches, {connections} connection(s){how}",
            "points/s",
            points / seconds,
            seconds,
            f"{points} points",
        )

    def end_to_end(self, influx: InfluxClient, workers: int, per_message: int) -> Figure:
        """Backlog of messages → N worker processes → InfluxDB, until COUNT equals what was sent."""
        o = self.options
        messages = o.n(o.single_messages, 50) if per_message == 1 else o.n(o.batch_messages, 10)
        load = self._next_load(messages, per_message)
        names = [worker_name(i + 1) for i in range(workers)]
        missing = [n for n in names if n not in self._sessions]
        if missing:  # a worker's persistent session must exist before the backlog to get its share
            self._start_workers(missing)
        self._stop_workers()
        self._publish_backlog(load)
        started = self._start_workers(names)
        cpu0 = self._cpu()
        finished = self._wait_count(influx, load)
        cpu = {k: v - cpu0.get(k, 0.0) for k, v in self._cpu().items()}
        seconds = finished - started
        cores = ", ".join(f"{k} {v / seconds:.2f}" for k, v in cpu.items())
        return Figure(
            f"end to end: {per_message}-reading messages, {workers} worker(s)",
            "readings/s",
            load.readings / seconds,
            seconds,
            f"{load.readings} readings in {messages} msgs ({messages / seconds:,.0f} msg/s); cores used: {cores}",
        )

    def _cpu(self) -> dict[str, float]:
        """CPU seconds so far of the workers (together), influxd and Mosquitto."""
        procs = {
            "influxd": self.stack.influxd.proc if self.stack.influxd else None,
            "mosquitto": self.stack.mosquitto.proc if self.stack.mosquitto else None,
        }
        out = {
            "workers": sum(
                proc_stats.cpu_seconds(p.pid) for p in self._workers.values() if p.poll() is None
            )
        }
        out.update(
            {
                k: proc_stats.cpu_seconds(p.pid)
                for k, p in procs.items()
                if p is not None and p.poll() is None
            }
        )
        return out

    def latency(self, influx: InfluxClient, readings_per_s: float) -> dict[str, float]:
        """Publish → queryable at a steady rate; every 10th message is a probe whose arrival is polled."""
        o = self.options
        per = o.per_batch
        msg_rate = max(readings_per_s / per, 2.0)
        total = max(int(msg_rate * o.latency_seconds), 20)
        background = self._next_load(total, per)
        probes_every = 10
        n_probes = max(total // probes_every, 2)
        probe_start = BASE_MS + self._day * DAY_MS
        self._day += 1
        # probe p: `per` readings of the probe site, all inside second p of its day
        probes = [
            make_load(
                [self.probe_site], 1, per, probe_start + p * 1000, self._seq + p * per
            ).messages[0]
            for p in range(n_probes)
        ]
        self._seq += n_probes * per
        sent: dict[int, float] = {}
        seen: dict[int, float] = {}
        stop = threading.Event()
        q = (
            f"SELECT count(net_kg) FROM waste_reading WHERE site = '{self.probe_site.id}' AND time >= {probe_start}ms "
            f"AND time < {probe_start + n_probes * 1000}ms GROUP BY time(1s)"
        )

        def poll() -> None:
            while not stop.is_set() or len(seen) < len(sent):
                now = time.monotonic()
                for s in influx.query(q):
                    for t, c in s.values:
                        p = (t - probe_start) // 1000
                        if c == per and p not in seen:
                            seen[p] = now
                if stop.is_set() and time.monotonic() - stop_time[0] > 30:
                    return
                time.sleep(0.01)

        stop_time = [0.0]
        poller = threading.Thread(target=poll, daemon=True)
        pub = LoadPublisher(self.stack.endpoint, [s.id for s in self.sites] + [self.probe_site.id])
        try:
            pub.wait_connected()
            poller.start()
            schedule = []
            for i, msg in enumerate(background.messages):
                schedule.append(msg)
                if i % probes_every == probes_every - 1 and i // probes_every < n_probes:
                    schedule.append(probes[i // probes_every])
            probe_ids = {id(m): p for p, m in enumerate(probes)}
            for _due, msg in paced(schedule, msg_rate * (1 + 1 / probes_every)):
                p = probe_ids.get(id(msg))
                if p is not None:
                    sent[p] = time.monotonic()
                pub.publish(msg)
            pub.wait_published(o.timeout_s)
        finally:
            stop_time[0] = time.monotonic()
            stop.set()
            poller.join(40)
            pub.close()
        lat = sorted((seen[p] - sent[p]) * 1000 for p in sent if p in seen)
        if len(lat) < len(sent):
            raise BenchError(
                f"{len(sent) - len(lat)} of {len(sent)} probe messages never became queryable"
            )
        return {
            "rate_readings_s": msg_rate * per,
            "probes": float(len(lat)),
            "p50_ms": statistics.median(lat),
            "p99_ms": lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))],
            "max_ms": lat[-1],
        }

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> BenchResult:
        result = BenchResult()
        self.stack.start()
        try:
            self.config = self.stack.write_cloud_config(registry_mod.DEFAULT_PATH)
            config = self.stack.influx_config()
            with (
                InfluxClient(config) as influx,
                InfluxClient(replace(config, gzip=True)) as gzipped,
            ):
                self._phase(result, "mqtt", self.mqtt_ceiling)
                # As the workers write (no gzip on loopback), and gzip-compressed: the best counts.
                self._phase(result, "influx1", lambda: self.influx_ceiling(influx, 1))
                self._phase(result, "influx2", lambda: self.influx_ceiling(influx, 2))
                self._phase(result, "influx1gz", lambda: self.influx_ceiling(gzipped, 1))
                self._phase(result, "influx2gz", lambda: self.influx_ceiling(gzipped, 2))
                # 1-worker phases first: a persistent shared subscriber that is offline still gets its
                # share queued (Mosquitto), so ingest-2's session must not exist yet.
                self._phase(result, "e2e_1x1", lambda: self.end_to_end(influx, 1, 1))
                self._stop_workers()
                self._phase(
                    result, "e2e_1x100", lambda: self.end_to_end(influx, 1, self.options.per_batch)
                )
                self._stop_workers()
                self._phase(result, "e2e_2x1", lambda: self.end_to_end(influx, 2, 1))
                self._stop_workers()
                self._phase(
                    result, "e2e_2x100", lambda: self.end_to_end(influx, 2, self.options.per_batch)
                )
                sustained = max(
                    result.figures["e2e_1x100"].value, result.figures["e2e_2x100"].value
                )
                self.report(
                    f"latency at half the sustained rate ({sustained / 2:,.0f} readings/s, 2 workers) ..."
                )
                result.latency_ms = self.latency(influx, sustained / 2)
                self._stop_workers()
        finally:
            self._stop_workers()
            self.stack.stop()
        f = result.figures
        influx_best = max(f[k].value for k in ("influx1", "influx2", "influx1gz", "influx2gz"))
        batched = max(f["e2e_1x100"].value, f["e2e_2x100"].value)
        single_msgs = max(f["e2e_1x1"].value, f["e2e_2x1"].value)  # 1 reading = 1 message
        result.goals = [
            Goal("batched e2e / InfluxDB ceiling", batched / influx_best, 0.5, "min", "%"),
            Goal(
                "single-reading e2e msg/s / MQTT ceiling",
                single_msgs / f["mqtt"].value,
                0.6,
                "min",
                "%",
            ),
            Goal("p99 publish->queryable (s)", result.latency_ms["p99_ms"] / 1000, 1.0, "max"),
        ]
        return result

    def _phase(self, result: BenchResult, key: str, fn: Callable[[], Figure]) -> None:
        fig = fn()
        result.add(key, fig)
        self.report(
            f"{fig.name:<58} {fig.value:>12,.0f} {fig.unit:<10} ({fig.seconds:.2f}s, {fig.detail})"
        )


def run_ingest_bench(
    options: IngestOptions, workdir: Path | None = None, report: Callable[[str], None] = print
) -> BenchResult:
    """Run the benchmark in workdir (a fresh temp dir by default)."""
    with tempfile.TemporaryDirectory(prefix="gumei-bench-") as tmp:
        try:
            return IngestBench(workdir or Path(tmp), options, report).run()
        except (ServiceError, TimeoutError) as exc:
            raise BenchError(str(exc).splitlines()[0]) from exc


def format_result(result: BenchResult) -> str:
    """The side-by-side table printed at the end (`bench.report.Report`)."""
    lat = result.latency_ms
    latency = (
        f"{'publish->queryable at ' + format(lat['rate_readings_s'], ',.0f') + ' readings/s':<58} "
        f"p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms, max {lat['max_ms']:.0f} ms ({lat['probes']:.0f} probes)"
    )
    report = Report(
        figures=[replace(f, detail="") for f in result.figures.values()],
        notes=[latency],
        goals=result.goals,
    )
    return "\n".join(["", *report.lines()])
