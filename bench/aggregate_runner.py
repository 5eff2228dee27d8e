"""The aggregator end to end on a real influxd, as it runs: export (read), kernel, encode and write
of one full Shanghai day, against influxd's own raw export of the same query (JSON, CSV, msgpack);
and at city scale, late readings from write to their corrected daily row, today's per-area
recompute beside the former whole-day one."""

from __future__ import annotations

import os
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.proc_stats import cpu_seconds, memory_mb
from bench.report import Figure, Goal, Report
from cloud import measurements as m
from cloud.aggregate.loop import run_lanes
from cloud.aggregate.reader import TIME_PARTS, readings_query
from cloud.aggregate.runner import Aggregator, StageTimes
from cloud.days import DAY_MS, day_start_ms, number_of
from cloud.influx import InfluxClient, InfluxConfig
from cloud.ingest.handler import day_marker_lines
from cloud.lineproto import point_time_ns
from cloud.registry import Area, Device, Registry, Site, default_registry
from cloud.settings import CloudSettings
from contract import CATEGORIES

BENCH_DAY = number_of(__import__("datetime").date(2026, 10, 12))
CATEGORY_SHARE = (0.36, 0.48, 0.155, 0.005)  # dry, wet, recyclable, hazardous (fleet sim)
NAMED_SHARE = 0.7  # readings that carry a resident pseudonym
FORMATS = {
    "json": "application/json",
    "csv": "application/csv",
    "msgpack": "application/x-msgpack",
}
GOAL_BACKFILL_VS_EXPORT = 0.8
GOAL_LATE_P99_S = 2.0


def city_registry(stations: int, per_area: int = 8) -> Registry:
    """A registry of `stations` waste stations, `per_area` to an area, four scales each
    (S1 dry, S2 wet, S3 recyclable, S4 hazardous), generated on the fly."""
    n_areas = -(-stations // per_area)
    areas = [Area(id=f"C{a:05d}", name=f"area {a}") for a in range(n_areas)]
    sites = [
        Site(
            id=f"WS-C{i:05d}",
            kind="waste",
            area=f"C{i // per_area:05d}",
            name=f"station {i}",
            lat=31.15,
            lon=121.38,
            devices=[
                Device(id=f"WS-C{i:05d}-S{k + 1}", category=c) for k, c in enumerate(CATEGORIES)
            ],
        )
        for i in range(stations)
    ]
    return Registry(areas=areas, sites=sites)


def waste_sites(registry: Registry) -> list[Site]:
    return [s for s in registry.sites if s.kind == "waste" and not s.retired]


def _device_of(site: Site, category: str) -> str:
    for d in site.devices:
        if d.category == category or category in d.also_categories:
            return d.id
    return site.devices[0].id


@dataclass
class DayData:
    """Generated readings of one day, as the columns the loader formats (series order not needed)."""

    day: int
    site: np.ndarray  # index into the registry's waste sites
    category: np.ndarray
    ts_ms: np.ndarray
    seq: np.ndarray
    grams: np.ndarray
    resident: np.ndarray  # -1: none

    def __len__(self) -> int:
        return int(self.site.shape[0])


def make_day(n_sites: int, n: int, day: int, seed: int = 17) -> DayData:
    """n readings over one Shanghai day at random stations; seq increases per device with time;
    0.05–8 kg in whole grams; 70 % name a resident from a pool of n / 4."""
    rng = np.random.default_rng(seed)
    site = rng.integers(0, n_sites, n, dtype=np.int64)
    category = rng.choice(4, n, p=CATEGORY_SHARE).astype(np.int64)
    ts = rng.integers(day_start_ms(day), day_start_ms(day) + DAY_MS, n, dtype=np.int64)
    device = site * 4 + category
    order = np.lexsort((ts, device))
    d = device[order]
    starts = np.concatenate(([0], np.flatnonzero(d[1:] != d[:-1]) + 1))
    rank = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n)))
    seq = np.empty(n, dtype=np.int64)
    seq[order] = rank + 1
    resident = np.where(
        rng.random(n) < NAMED_SHARE, rng.integers(0, max(1, n // 4), n, dtype=np.int64), -1
    )
    grams = rng.integers(50, 8000, n, dtype=np.int64)
    return DayData(day, site, category, ts, seq, grams, resident)


def day_lines(registry: Registry, data: DayData, step: int = 100_000) -> Iterator[bytes]:
    """The readings as line protocol bodies of `step` lines, as the worker writes them."""
    sites = waste_sites(registry)
    heads = [
        f"{m.WASTE_READING.name},area={s.area},category={c},device={_device_of(s, c)},site={s.id} net_kg="
        for s in sites
        for c in CATEGORIES
    ]
    for i in range(0, len(data), step):
        j = min(len(data), i + step)
        cols = zip(
            (data.site[i:j] * 4 + data.category[i:j]).tolist(),
            data.grams[i:j].tolist(),
            data.seq[i:j].tolist(),
            data.resident[i:j].tolist(),
            data.ts_ms[i:j].tolist(),
            strict=True,
        )
        lines = [
            f"{heads[k]}{g / 1000},seq={q}i"
            + (f',resident="r-{r:032x}"' if r >= 0 else "")
            + f" {point_time_ns(t, q)}"
            for k, g, q, r, t in cols
        ]
        yield ("\n".join(lines) + "\n").encode()


def load(influx: InfluxClient, bodies: Iterator[bytes], progress: Callable[[int], None]) -> None:
    """Write the bodies, formatting the next while influxd takes the last."""
    with ThreadPoolExecutor(1) as pool:
        pending = None
        for b in bodies:
            if pending is not None:
                pending.result()
            pending = pool.submit(influx.write_lines, b)
            progress(b.count(b"\n"))
        if pending is not None:
            pending.result()


@dataclass
class PrivateInfluxd:
    """A private influxd: a client of it, and its process (to wait until it is idle)."""

    client: InfluxClient
    pid: int

    def settle(self, quiet: float = 0.05, window_s: float = 2.0, limit_s: float = 300.0) -> float:
        """Wait until influxd uses under `quiet` of a core over `window_s` (its compactions after a
        load done), at most limit_s; return the seconds waited. Measuring before that would charge
        whatever runs first with influxd's background work."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < limit_s:
            c0 = cpu_seconds(self.pid)
            time.sleep(window_s)
            if cpu_seconds(self.pid) - c0 < quiet * window_s:
                break
        return time.perf_counter() - t0


@contextmanager
def private_influxd() -> Iterator[PrivateInfluxd]:
    """A private influxd in a temp dir, and a client of it (generous timeouts)."""
    from devstack.services import Influxd

    with tempfile.TemporaryDirectory(prefix="gumei-bench-") as tmp:
        server = Influxd(Path(tmp) / "influxd")
        server.start()
        try:
            assert server.proc is not None
            config = InfluxConfig(
                url=server.url,
                database=server.database,
                auth="basic",
                username=server.username,
                password=server.password,
                timeout_s=900,
            )
            with InfluxClient(config) as client:
                client.execute(f'CREATE DATABASE "{config.health_database}"')
                yield PrivateInfluxd(client, server.proc.pid)
        finally:
            server.stop()


def raw_export_sliced(influx: InfluxClient, day: int, parts: int = TIME_PARTS) -> tuple[float, int]:
    """Seconds and bytes for influxd to answer the day as the runner asks it: `parts` time slices
    at once, MessagePack, bodies read and discarded (the ceiling of the runner's own read)."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(parts) as pool:
        sizes = list(
            pool.map(
                lambda k: raw_export(influx, readings_query(day, None, k, parts), "msgpack")[1],
                range(parts),
            )
        )
    return time.perf_counter() - t0, sum(sizes)


def raw_export(
    influx: InfluxClient, q: str, fmt: str, chunk_size: int = 50_000
) -> tuple[float, int]:
    """Seconds and bytes for influxd to answer a query in a response format, body read and
    discarded (the ceiling of any reader of that query), through the client's own lean streamed
    read (InfluxClient.query_bytes), so the reference pays no more client CPU than it must."""
    t0 = time.perf_counter()
    n = sum(len(b) for b in influx.query_bytes(q, FORMATS[fmt], chunk_size))
    return time.perf_counter() - t0, n


@dataclass
class ExportFigures:
    """One full-day recompute by the runner beside influxd's raw export of the same query."""

    readings: int
    times: StageTimes
    wall: float
    raw: dict[str, tuple[float, int]] = field(default_factory=dict)
    sliced: tuple[float, int] = (0.0, 0)  # raw msgpack export of the runner's time slices at once
    cpu: dict[str, float] = field(default_factory=dict)  # CPU-s, this process + influxd

    @property
    def whole(self) -> float:
        """Seconds of the runner's day: read + kernel + encode + write."""
        t = self.times
        return t.read + t.kernel + t.encode + t.write

    @property
    def best_raw(self) -> tuple[str, float]:
        fmt = min(self.raw, key=lambda f: self.raw[f][0])
        return fmt, self.raw[fmt][0]


def measure_full_day(
    influx: InfluxClient,
    registry: Registry,
    day: int,
    targets: bool = False,
    repeats: int = 2,
    influxd_pid: int | None = None,
) -> ExportFigures:
    """The runner's whole-day recompute (stage times) and influxd's raw exports of its query,
    interleaved (runner, then each format, `repeats` times), each the best of its `repeats`: the
    same number of tries under the same conditions for both sides of the ratio. With influxd's
    pid, also the CPU seconds (this process + influxd) of each side, the least of its tries."""
    q = readings_query(day)
    sliced = (float("inf"), 0)
    best: ExportFigures | None = None
    raw: dict[str, tuple[float, int]] = {}
    cpu: dict[str, float] = {}

    def cpu_now() -> float:
        return cpu_seconds(os.getpid()) + (cpu_seconds(influxd_pid) if influxd_pid else 0.0)

    for _ in range(repeats):
        agg = Aggregator(influx, registry)
        c0, t0 = cpu_now(), time.perf_counter()
        result = agg.recompute([day], targets=targets)
        run = ExportFigures(result.readings, agg.times, time.perf_counter() - t0)
        cpu["runner"] = min(cpu.get("runner", float("inf")), cpu_now() - c0)
        if best is None or run.whole < best.whole:
            best = run
        for fmt in FORMATS:
            c0 = cpu_now()
            try:
                raw[fmt] = min(raw.get(fmt, (float("inf"), 0)), raw_export(influx, q, fmt))
            except RuntimeError:
                continue
            cpu[fmt] = min(cpu.get(fmt, float("inf")), cpu_now() - c0)
        sliced = min(sliced, raw_export_sliced(influx, day))
    assert best is not None, "repeats must be at least 1"
    best.raw = raw
    best.sliced = sliced
    best.cpu = cpu if influxd_pid else {}
    return best


@dataclass
class LateFigures:
    """Seconds from writing one late reading (with its marker) to its corrected daily row."""

    design: str
    latencies: list[float]

    def pct(self, p: float) -> float:
        return float(np.percentile(np.array(self.latencies), p)) if self.latencies else 0.0


def _row(influx: InfluxClient, day: int, site: str, category: str) -> tuple[int, int]:
    """(net_g, deposits) of one daily row, by the query the API's /waste/daily runs."""
    lo = day_start_ms(day)
    q = (
        f"SELECT net_g, deposits FROM {m.WASTE_DAILY.name} WHERE time >= {lo}ms AND "
        f"time < {lo + DAY_MS}ms AND \"site\" = '{site}' AND \"category\" = '{category}' "
        'GROUP BY "site", "area", "category"'
    )
    for s in influx.query(q):
        for _, net_g, deposits in s.values:
            return int(net_g), int(deposits)
    return 0, 0


def measure_late(
    influx: InfluxClient,
    registry: Registry,
    day: int,
    count: int,
    whole_days: bool,
    seed: int,
    say: Callable[[str], None],
    timeout_s: float = 600.0,
) -> LateFigures:
    """The aggregator loop runs in a thread as `gumei aggregate loop` runs it (cloud/aggregate/loop.py,
    the production defaults: a run every second, the residents lane every minute); one at a time,
    a late reading at a random station is written with its marker in one request (as the worker
    does), and the time until the API's query returns the corrected row is taken."""
    agg = Aggregator(influx, registry, whole_days=whole_days)
    stop = threading.Event()
    errors: list[BaseException] = []
    defaults = CloudSettings.model_fields

    def loop() -> None:  # `gumei aggregate loop`, with the production defaults
        try:
            run_lanes(
                lambda: agg,
                stop,
                errors.append,
                defaults["aggregate_interval_s"].default,
                defaults["aggregate_residents_interval_s"].default,
            )
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    rng = random.Random(seed)
    sites = waste_sites(registry)
    thread = threading.Thread(target=loop, name="bench-aggregate-loop")
    thread.start()
    latencies: list[float] = []
    try:
        for i in range(count):
            site = rng.choice(sites)
            c = rng.randrange(4)
            category, device = CATEGORIES[c], _device_of(site, CATEGORIES[c])
            before = _row(influx, day, site.id, category)
            seq, grams = 100_000_000 + i, rng.randrange(50, 8000)
            ts = day_start_ms(day) + rng.randrange(DAY_MS)
            point = (
                f"{m.WASTE_READING.name},area={site.area},category={category},device={device},"
                f"site={site.id} net_kg={grams / 1000},seq={seq}i {point_time_ns(ts, seq)}"
            )
            t0 = time.perf_counter()
            markers = day_marker_lines(Counter({(day, site.id): 1}), time.time_ns())
            influx.write_lines(("\n".join([point, *markers]) + "\n").encode())
            want = (before[0] + grams, before[1] + 1)
            while _row(influx, day, site.id, category) != want:
                if errors:
                    raise errors[0]
                if time.perf_counter() - t0 > timeout_s:
                    raise RuntimeError(f"late reading {i} not aggregated in {timeout_s:.0f} s")
                time.sleep(0.02)
            latencies.append(time.perf_counter() - t0)
            if (i + 1) % 10 == 0 or whole_days:
                say(f"  {i + 1}/{count} late readings, last {latencies[-1]:.2f} s")
    finally:
        stop.set()
        thread.join()
    return LateFigures("whole day (former)" if whole_days else "per area (now)", latencies)


def reset_peak_rss() -> None:
    """Start a new peak-RSS (VmHWM) measurement for this process (Linux)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mb() -> float:
    return memory_mb(os.getpid())[1]


@dataclass
class CityFigures:
    """The city-scale run: load, backfill (with its stage times and peak RSS), raw exports, and
    late readings under both designs."""

    stations: int
    readings: int
    load_s: float
    backfill: ExportFigures
    backfill_rss_mb: float
    base_rss_mb: float
    late_now: LateFigures
    late_former: LateFigures


def run_city(
    stations: int,
    readings: int,
    late: int,
    late_former: int,
    say: Callable[[str], None],
    progress: Callable[[int], None],
    seed: int = 17,
) -> CityFigures:
    """Everything at city scale on one private influxd (not in CI: minutes, gigabytes)."""
    t0 = time.perf_counter()
    registry = city_registry(stations)
    say(f"registry of {stations:,} stations in {time.perf_counter() - t0:.1f} s")
    with private_influxd() as server:
        influx = server.client
        data = make_day(stations, readings, BENCH_DAY, seed)
        t0 = time.perf_counter()
        load(influx, day_lines(registry, data), progress)
        load_s = time.perf_counter() - t0
        del data
        say(f"loaded {readings:,} readings in {load_s:.0f} s; waiting for influxd to settle ...")
        say(f"influxd idle after {server.settle():.0f} s; full-day backfill ...")
        base = memory_mb(os.getpid())[0]
        reset_peak_rss()
        backfill = measure_full_day(
            influx, registry, BENCH_DAY, targets=True, repeats=1, influxd_pid=server.pid
        )
        rss = peak_rss_mb()
        say(f"backfill {backfill.wall:.1f} s; raw exports {backfill.raw}")
        say(f"{late} late readings, per-area recompute (now) ...")
        now = measure_late(influx, registry, BENCH_DAY, late, False, seed, say)
        say(f"{late_former} late readings, whole-day recompute (the former design) ...")
        former = measure_late(influx, registry, BENCH_DAY, late_former, True, seed + 1, say)
    return CityFigures(stations, readings, load_s, backfill, rss, base, now, former)


def run_subdistrict(
    readings: int, say: Callable[[str], None], progress: Callable[[int], None], seed: int = 17
) -> ExportFigures:
    """One Shanghai day of the sub-district (the default registry's stations) through the runner."""
    registry = default_registry()
    with private_influxd() as server:
        data = make_day(len(waste_sites(registry)), readings, BENCH_DAY, seed)
        load(server.client, day_lines(registry, data), progress)
        waited = server.settle()
        say(
            f"loaded {readings:,} readings of one day at {len(waste_sites(registry))} stations; "
            f"influxd idle after {waited:.0f} s"
        )
        return measure_full_day(
            server.client, registry, BENCH_DAY, repeats=3, influxd_pid=server.pid
        )


def runner_figures(f: ExportFigures, label: str) -> tuple[list[Figure], list[str], Goal | None]:
    """The runner's stages and influxd's raw exports as figures; the backfill-vs-export goal."""
    n = f.readings
    t = f.times
    whole = f.whole
    stages = [
        ("export (read) into columns", t.read),
        ("kernel (daily_totals + group_cube)", t.kernel),
        ("encode + write rows", t.encode + t.write),
        ("whole day (read + kernel + encode + write)", whole),
    ]
    figures = [
        Figure(f"{label} runner: {name}", "readings/s", n / s if s else 0.0, s, f"{s:.3f} s")
        for name, s in stages
    ]
    for fmt, (s, size) in f.raw.items():
        figures.append(
            Figure(
                f"{label} influxd raw export, {fmt}",
                "readings/s",
                n / s if s else 0.0,
                s,
                f"{s:.3f} s, {size / 1e6:.0f} MB",
            )
        )
    if f.sliced[0]:
        s, size = f.sliced
        figures.append(
            Figure(
                f"{label} influxd raw export, msgpack, {TIME_PARTS} time slices at once",
                "readings/s",
                n / s,
                s,
                f"{s:.3f} s, {size / 1e6:.0f} MB",
            )
        )
    notes = [
        f"{label}: kernel {t.kernel / whole:.1%} of the runner's day, export {t.read / whole:.1%}"
        if whole
        else f"{label}: no readings"
    ]
    if f.sliced[0] and whole:
        notes.append(
            f"{label}: the runner reads the day as {TIME_PARTS} time slices at once (influxd answers "
            f"a query on one core); against the raw export of those slices: "
            f"{f.sliced[0] / whole:.2f}×, against the single query (the goal's reference) below"
        )
    goal = None
    if f.raw and whole:
        fmt, raw = f.best_raw
        if "runner" in f.cpu and fmt in f.cpu:
            notes.append(
                f"{label}: CPU seconds (this process + influxd): runner {f.cpu['runner']:.2f}, "
                f"raw {fmt} export {f.cpu[fmt]:.2f} ({f.cpu[fmt] / f.cpu['runner']:.2f}×: what "
                "the ratio tends to when other work keeps both cores busy)"
            )
        goal = Goal(
            f"{label} backfill rate / influxd raw export rate ({fmt})",
            raw / whole,
            GOAL_BACKFILL_VS_EXPORT,
            "min",
            "×",
        )
    return figures, notes, goal


def city_report(c: CityFigures) -> Report:
    """The city-scale figures and the two goals, both designs side by side."""
    figures, notes, goal = runner_figures(c.backfill, "city")
    t = c.backfill.times
    notes += [
        f"city: {c.stations:,} stations, {c.readings:,} readings loaded in {c.load_s:.0f} s; "
        f"backfill wall {c.backfill.wall:.1f} s: the day's rows {c.backfill.whole:.1f} s, "
        f"reconciliation and sorting comparison {t.weighbridge:.2f} s, targets {t.targets:.2f} s; "
        f"peak RSS during backfill {c.backfill_rss_mb:.0f} MiB (process before: {c.base_rss_mb:.0f} MiB)",
    ]
    for late in (c.late_now, c.late_former):
        notes.append(
            f"late reading -> corrected daily row, {late.design}: p50 {late.pct(50):.2f} s, "
            f"p99 {late.pct(99):.2f} s, max {max(late.latencies, default=0):.2f} s "
            f"over {len(late.latencies)} readings"
        )
    goals = [
        Goal(
            "city late reading -> daily row p99, per area (s)",
            c.late_now.pct(99),
            GOAL_LATE_P99_S,
            "max",
            "s",
        ),
        Goal(
            "city late reading -> daily row p99, whole day (former) (s)",
            c.late_former.pct(99),
            GOAL_LATE_P99_S,
            "max",
            "s",
        ),
    ]
    if goal:
        goals.append(goal)
    return Report(figures=figures, notes=notes, goals=goals)
