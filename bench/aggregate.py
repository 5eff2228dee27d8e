"""Benchmark of daily tonnage on one data set: NumPy vs pandas vs a Python loop vs InfluxQL vs the
memory-bandwidth bound. Prints readings/s and ratios against the goals of issue 6."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.report import Figure, Goal, Report
from cloud.aggregate.tonnage import Readings, daily_totals
from cloud.days import DAY_MS, SHANGHAI_OFFSET_MS, day_start_ms, number_of
from contract import CATEGORIES

GOAL_VS_PANDAS = 10.0
GOAL_VS_BANDWIDTH = 0.25
FIRST_DAY = number_of(__import__("datetime").date(2026, 10, 1))
CATEGORY_SHARE = (
    0.36,
    0.48,
    0.155,
    0.005,
)  # dry, wet, recyclable, hazardous: by count, as the fleet sim


@dataclass(frozen=True)
class Method:
    """One measured method: how many readings it processed in how many seconds (a `Figure` in the report)."""

    name: str
    readings: int
    seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.readings / self.seconds if self.seconds > 0 else float("inf")


def make_readings(n: int, days: int = 30, sites: int = 500, seed: int = 6) -> Readings:
    """n readings over `days` Shanghai days and `sites` sites × 4 scales; seq increases per device
    with time; net weight 0.05–8 kg in integer milligrams. In series order: each device's readings
    together, by time (how the runner reads with GROUP BY the tags)."""
    rng = np.random.default_rng(seed)
    start = day_start_ms(FIRST_DAY)
    ts = np.sort(rng.integers(start, start + days * DAY_MS, n, dtype=np.int64))
    site = rng.integers(0, sites, n, dtype=np.int64)
    cat_idx = [CATEGORIES.index(c) for c in ("dry", "wet", "recyclable", "hazardous")]
    category = np.array(cat_idx, dtype=np.int64)[rng.choice(4, n, p=CATEGORY_SHARE)]
    device = site * 4 + category
    order = np.argsort(device, kind="stable")  # ts is sorted: this is series order
    ranks = np.empty(n, dtype=np.int64)
    sorted_dev = device[order]
    run_start = np.concatenate(([0], np.flatnonzero(sorted_dev[1:] != sorted_dev[:-1]) + 1))
    pos = np.arange(n) - np.repeat(run_start, np.diff(np.concatenate((run_start, [n]))))
    ranks[order] = pos
    net_mg = rng.integers(50_000, 8_000_000, n, dtype=np.int64)
    return Readings(
        ts_ms=ts, site=site, category=category, device=device, seq=ranks + 1, net_mg=net_mg
    ).take(order)


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """The fastest of `repeats` wall-clock timings of fn()."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_numpy(r: Readings, sites: int, repeats: int = 5) -> tuple[Method, Method, Method]:
    """daily_totals as the aggregator runs it (series order, with the duplicate proof), the kernel
    alone, and the same readings in time order (the general proofs, for comparison)."""
    full = best_of(repeats, lambda: daily_totals(r, sites, 4))
    keep = np.ones(len(r), dtype=bool)
    kernel = best_of(repeats, lambda: daily_totals(r, sites, 4, keep))
    t = r.take(np.argsort(r.ts_ms, kind="stable"))
    timed = best_of(max(1, repeats // 2), lambda: daily_totals(t, sites, 4))
    return (
        Method(
            "numpy daily_totals (dedup proof + sums)",
            len(r),
            full,
            "series order, as the runner reads",
        ),
        Method("numpy kernel only (dedup known)", len(r), kernel),
        Method(
            "numpy daily_totals, time order",
            len(r),
            timed,
            "the same readings by time: general proofs",
        ),
    )


def bench_pandas(r: Readings, repeats: int = 2) -> Method:
    """A tz-aware pandas groupby as a user would write it (dedup with drop_duplicates)."""
    import pandas as pd

    df = pd.DataFrame(
        {
            "time": pd.to_datetime(r.ts_ms, unit="ms", utc=True),
            "site": r.site,
            "category": r.category,
            "device": r.device,
            "seq": r.seq,
            "net_kg": r.net_mg / 1e6,
        }
    )

    def run() -> pd.DataFrame:
        d = df.drop_duplicates(["device", "seq"])
        day = d["time"].dt.tz_convert("Asia/Shanghai").dt.normalize()
        return d.groupby([day, "site", "category"]).agg(
            net_kg=("net_kg", "sum"), deposits=("net_kg", "size")
        )

    out = run()
    assert int(out["deposits"].sum()) == len(r)
    return Method("pandas tz-aware groupby", len(r), best_of(repeats, run))


def python_loop(
    ts: list[int], site: list[int], cat: list[int], dev: list[int], seq: list[int], net: list[int]
) -> dict[tuple[int, int, int], list[int]]:
    """The plain loop: a set for (device, seq), a dict of [mg, count] per (day, site, category)."""
    seen: set[tuple[int, int]] = set()
    out: dict[tuple[int, int, int], list[int]] = {}
    for t, s, c, d, q, mg in zip(ts, site, cat, dev, seq, net, strict=True):
        if (d, q) in seen:
            continue
        seen.add((d, q))
        key = ((t + SHANGHAI_OFFSET_MS) // DAY_MS, s, c)
        acc = out.get(key)
        if acc is None:
            out[key] = [mg, 1]
        else:
            acc[0] += mg
            acc[1] += 1
    return out


def bench_python(r: Readings, sample: int) -> Method:
    """The plain loop on the first `sample` readings, scaled to all of them."""
    k = min(sample, len(r))
    cols = [a[:k].tolist() for a in (r.ts_ms, r.site, r.category, r.device, r.seq, r.net_mg)]
    seconds = best_of(1, lambda: python_loop(*cols))
    return Method("python loop", len(r), seconds * len(r) / k, f"measured on {k:,}, scaled")


def bench_bandwidth(r: Readings, repeats: int = 5) -> Method:
    """A NumPy sum over the same bytes daily_totals reads (all six int64 columns)."""
    cols = (r.ts_ms, r.site, r.category, r.device, r.seq, r.net_mg)
    nbytes = sum(c.nbytes for c in cols)
    seconds = best_of(repeats, lambda: [c.sum() for c in cols])
    return Method(
        "memory-bandwidth bound (numpy sum)",
        len(r),
        seconds,
        f"{nbytes / seconds / 1e9:.1f} GB/s over {nbytes / len(r):.0f} B/reading",
    )


def bench_influxql(
    r: Readings,
    count: int,
    sites: int,
    progress: Callable[[int], None] | None = None,
    repeats: int = 2,
) -> Method:
    """Load the first `count` readings into a private influxd and time the server-side daily SUM."""
    from bench.aggregate_runner import private_influxd

    k = min(count, len(r))
    with private_influxd() as server:
        client = server.client
        step = 100_000
        for i in range(0, k, step):
            j = min(k, i + step)
            lines = [
                f"waste_reading,category={CATEGORIES[c]},device=D{d},site=S{s} net_kg={mg / 1e6!r},seq={q}i {t * 1_000_000 + q % 1_000_000}"
                for t, s, c, d, q, mg in zip(
                    *(
                        a[i:j].tolist()
                        for a in (r.ts_ms, r.site, r.category, r.device, r.seq, r.net_mg)
                    ),
                    strict=True,
                )
            ]
            client.write_lines(("\n".join(lines) + "\n").encode())
            if progress:
                progress(j - i)
        lo, hi = int(r.ts_ms[:k].min()), int(r.ts_ms[:k].max()) + 1
        q = (
            f"SELECT sum(net_kg), count(net_kg) FROM waste_reading WHERE time >= {lo}ms AND time < {hi}ms "
            "GROUP BY time(1d), site, category tz('Asia/Shanghai')"
        )
        total = [0]

        def run() -> None:
            total[0] = sum(int(v[2] or 0) for s in client.query(q) for v in s.values)

        seconds = best_of(repeats, run)
        assert total[0] == k, f"InfluxQL counted {total[0]} of {k} readings"
    note = (
        "all readings"
        if k == len(r)
        else f"on the first {k:,} readings (a subset: --influx-readings), rate applies"
    )
    return Method("InfluxQL SUM ... GROUP BY time(1d) tz()", k, seconds, note)


def report(methods: list[Method]) -> Report:
    """One figure per method (readings/s; readings, seconds, numpy × and note as detail), the two goals."""
    by = {m.name: m for m in methods}
    ref = methods[0]
    figures = [
        Figure(
            m.name,
            "readings/s",
            m.rate,
            m.seconds,
            f"{m.readings:,} in {m.seconds:.3f} s, numpy {ref.rate / m.rate:.2f}×"
            + (f"; {m.note}" if m.note else ""),
        )
        for m in methods
    ]
    notes = ["(numpy × = how many times faster the full numpy path is)"]
    goals = []
    pandas = by.get("pandas tz-aware groupby")
    bound = by.get("memory-bandwidth bound (numpy sum)")
    if pandas:
        goals.append(
            Goal(
                f"numpy / pandas (goal numpy ≥ {GOAL_VS_PANDAS:.0f}× pandas)",
                ref.rate / pandas.rate,
                GOAL_VS_PANDAS,
                "min",
                "×",
            )
        )
    if bound:
        goals.append(
            Goal(
                "numpy share of bandwidth bound",
                ref.rate / bound.rate,
                GOAL_VS_BANDWIDTH,
                "min",
                "%",
            )
        )
        kernel = by.get("numpy kernel only (dedup known)")
        if kernel:
            notes.append(
                f"the sums alone, duplicates excluded beforehand: {kernel.rate / bound.rate:.1%} of the bound; "
                f"the rest is the (device, seq) duplicate proof"
            )
    return Report(figures=figures, notes=notes, goals=goals)


@dataclass(frozen=True)
class AggregateOptions:
    """What to measure and on how much data."""

    readings: int = 10_000_000
    days: int = 30
    sites: int = 500
    python_sample: int = 1_000_000
    influx_readings: int = 10_000_000  # 0 skips InfluxQL (no influxd)
    seed: int = 6


def run_aggregate_bench(
    opts: AggregateOptions,
    say: Callable[[str], None] = print,
    influx_progress: Callable[[int], None] | None = None,
) -> list[Method]:
    """Every method on the same generated readings, NumPy first (the ratios' reference)."""
    t0 = time.perf_counter()
    r = make_readings(opts.readings, opts.days, opts.sites, opts.seed)
    say(
        f"generated {len(r):,} readings over {opts.days} days, {opts.sites} sites × 4 scales "
        f"in {time.perf_counter() - t0:.1f}s"
    )
    figures = list(bench_numpy(r, opts.sites))
    say("numpy done; pandas ...")
    figures.append(bench_pandas(r))
    say("pandas done; python loop ...")
    figures.append(bench_python(r, opts.python_sample))
    figures.append(bench_bandwidth(r))
    if opts.influx_readings > 0:
        say(f"loading {min(opts.influx_readings, len(r)):,} readings into a private influxd ...")
        figures.append(bench_influxql(r, opts.influx_readings, opts.sites, influx_progress))
    return figures
