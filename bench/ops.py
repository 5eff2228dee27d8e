"""`gumei bench ops`: the operations evaluator's cost on a real influxd, by pass.

A registry of N stations (4 scales each) gets `history_days` of deposits (one per scale every
`every_h` hours, gross weight rising between emptyings) and a dirty marker per station, written
straight to a private influxd; then the evaluator runs with an injected clock:

1. the first pass: every station touched, every profile learned (4 weeks of hourly counts);
2. a pass with no new data (profiles stored, markers behind the watermark): the steady cost;
3. a pass after `touched_pct` % of the stations got a reading (over 90 %: bin_full opens).

The steady and the touched pass are what a minute-by-minute loop costs; the first pass is once a
day (profiles) or after a restart with a cold watermark.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.report import Figure, Goal, Report
from cloud import measurements as m
from cloud.influx import InfluxClient, InfluxConfig
from cloud.lineproto import FieldValue, line
from cloud.ops.evaluator import OVERLAP_MS, Evaluator, PassResult
from cloud.registry import Registry, default_registry
from devstack.services import Influxd

HOUR_MS = 3_600_000
STEADY_GOAL_S = 10.0  # a pass must take well under the loop's minute


@dataclass(frozen=True)
class OpsBenchOptions:
    stations: int = 324
    history_days: int = 28
    every_h: int = 2
    touched_pct: float = 10.0
    seed: int = 16


@dataclass(frozen=True)
class OpsBenchResult:
    stations: int
    scales: int
    readings: int
    load_s: float
    first: PassResult
    steady: PassResult
    touched: PassResult
    touched_stations: int


def registry_of(stations: int) -> Registry:
    """The default registry's shape (about 8 stations an area) with about `stations` stations."""
    return default_registry(areas=max(1, round(stations / 8)))


def _history(reg: Registry, o: OpsBenchOptions, now: int) -> Iterator[str]:
    rng = random.Random(o.seed)
    seq = 0
    steps = o.history_days * 24 // o.every_h
    for s in reg.sites:
        if s.kind != "waste":
            continue
        for d in s.devices:
            tags = {"site": s.id, "area": s.area, "device": d.id, "category": str(d.category)}
            gross = 0.0
            for k in range(steps):
                ts = now - o.history_days * 24 * HOUR_MS + k * o.every_h * HOUR_MS
                ts += rng.randrange(o.every_h * HOUR_MS)
                gross = 0.0 if k % 6 == 0 else gross + 5.0
                seq += 1
                fields: dict[str, FieldValue] = {"net_kg": 5.0, "gross_kg": gross, "seq": seq}
                yield line(m.WASTE_READING.name, tags, fields, ts * 10**6 + seq % 10**6)
        marker: dict[str, FieldValue] = {"day": "bench", "points": 1}
        yield line(m.DIRTY_SITE_DAY.name, {"site": s.id}, marker, (now - 60_000) * 10**6)


def _write(influx: InfluxClient, lines: Iterator[str], batch: int = 50_000) -> int:
    n, buf = 0, []
    for x in lines:
        buf.append(x)
        if len(buf) == batch:
            influx.write_lines(("\n".join(buf) + "\n").encode())
            n, buf = n + len(buf), []
    if buf:
        influx.write_lines(("\n".join(buf) + "\n").encode())
        n += len(buf)
    return n


def run_ops_bench(root: Path, o: OpsBenchOptions) -> OpsBenchResult:
    """Load the history into a private influxd under `root`, run the three passes, measure."""
    shutil.rmtree(root, ignore_errors=True)
    server = Influxd(root)
    server.start()
    cfg = InfluxConfig(
        url=server.url, auth="basic", username=server.username, password=server.password
    )
    try:
        with InfluxClient(cfg) as influx:
            reg = registry_of(o.stations)
            waste = [s for s in reg.sites if s.kind == "waste"]
            now = time.time_ns() // 1_000_000
            t0 = time.perf_counter()
            readings = _write(influx, _history(reg, o, now)) - len(waste)
            load_s = time.perf_counter() - t0
            clock = [now]
            ev = Evaluator(influx, reg, clock=lambda: clock[0])
            first = ev.run_once()
            clock[0] += 2 * OVERLAP_MS  # the markers fall behind the watermark
            ev.run_once()
            clock[0] += 60_000
            steady = ev.run_once()
            step = max(1, round(100 / o.touched_pct))
            touched = waste[::step]
            new = []
            for k, s in enumerate(touched):
                d = s.devices[0]
                tags = {"site": s.id, "area": s.area, "device": d.id, "category": str(d.category)}
                fields: dict[str, FieldValue] = {"net_kg": 5.0, "gross_kg": 230.0, "seq": 10**9 + k}
                new.append(line(m.WASTE_READING.name, tags, fields, (clock[0] - 1000) * 10**6 + k))
                new.append(
                    line(
                        m.DIRTY_SITE_DAY.name,
                        {"site": s.id},
                        {"day": "bench", "points": 1},
                        (clock[0] - 1000) * 10**6 + k,
                    )
                )
            _write(influx, iter(new))
            clock[0] += 60_000
            after = ev.run_once()
            return OpsBenchResult(
                len(waste),
                sum(len(s.devices) for s in waste),
                readings,
                load_s,
                first,
                steady,
                after,
                len(touched),
            )
    finally:
        server.stop()


def report(r: OpsBenchResult) -> Report:
    """Figures (passes per second, as a rate) and the goals a minute's loop needs."""
    figs = [
        Figure(
            "history loaded into influxd",
            "readings/s",
            r.readings / max(r.load_s, 1e-9),
            r.load_s,
            f"{r.readings:,} readings, {r.stations} stations, {r.scales} scales",
        ),
    ]
    notes = [
        f"first pass (all stations touched, profiles learned)   {r.first.seconds:8.2f} s  "
        f"{r.first.observed} scales read, {r.first.subjects} rule-subject pairs",
        f"steady pass (no new data)                             {r.steady.seconds:8.2f} s  "
        f"{r.steady.observed} scales read",
        f"pass with {r.touched_stations} stations touched {'':<22}{r.touched.seconds:8.2f} s  "
        f"{r.touched.observed} scales read, {len(r.touched.opened)} events opened",
    ]
    goals = [
        Goal("steady pass (s)", r.steady.seconds, STEADY_GOAL_S, "max", "s"),
        Goal("pass with new data (s)", r.touched.seconds, STEADY_GOAL_S, "max", "s"),
        Goal("scales re-read with no new data", r.steady.observed, 1, "max"),
        Goal(
            "bin_full events opened / stations touched",
            len(r.touched.opened) / max(r.touched_stations, 1),
            1.0,
            "min",
            "×",
        ),
    ]
    return Report(figs, notes, goals)
