"""`gumei bench aggregate`: the aggregator end to end on a real influxd (export, kernel, write
against influxd's raw export), the NumPy kernel against pandas, a Python loop, InfluxQL and the
bandwidth bound; `--city`: full-day backfill and late readings at city scale (minutes; not in CI)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from rich.progress import Progress, TaskID


def aggregate(
    readings: Annotated[
        int, typer.Option(help="readings for the kernel comparison", min=1000, max=200_000_000)
    ] = 10_000_000,
    days: Annotated[int, typer.Option(help="Shanghai days they span", min=1, max=3660)] = 30,
    sites: Annotated[
        int, typer.Option(help="waste stations (4 scales each)", min=1, max=16_000)
    ] = 500,
    python_sample: Annotated[
        int, typer.Option(help="readings the Python loop runs on (scaled up)", min=100)
    ] = 1_000_000,
    influx_readings: Annotated[
        int,
        typer.Option(
            help="readings loaded into influxd for InfluxQL GROUP BY (0 = skip; 10M takes ~75 s)",
            min=0,
        ),
    ] = 1_000_000,
    runner_readings: Annotated[
        int,
        typer.Option(
            help="one sub-district day through the runner on influxd, end to end (0 = skip)",
            min=0,
        ),
    ] = 300_000,
    city: Annotated[
        bool, typer.Option("--city", help="city scale instead: backfill and late readings")
    ] = False,
    stations: Annotated[int, typer.Option(help="--city: stations", min=8)] = 20_000,
    city_readings: Annotated[int, typer.Option(help="--city: readings of the day", min=1000)] = (
        6_000_000
    ),
    late: Annotated[int, typer.Option(help="--city: late readings, per-area design", min=1)] = 100,
    late_former: Annotated[
        int, typer.Option(help="--city: late readings, whole-day design (each ~a backfill)", min=1)
    ] = 3,
    seed: int = 6,
) -> None:
    """Measure in one run on the same data; print figures and ratios against the goals."""
    import logging

    from bench.aggregate import AggregateOptions, report, run_aggregate_bench
    from bench.aggregate_runner import city_report, run_city, run_subdistrict, runner_figures

    logging.getLogger("cloud.aggregate").setLevel(logging.WARNING)  # a line per run otherwise
    with Progress(transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def advancer(name: str, total: int) -> Callable[[int], None]:
            def advance(n: int) -> None:
                if name not in tasks:
                    tasks[name] = bar.add_task(name, total=total)
                bar.advance(tasks[name], n)

            return advance

        if city:
            figures = run_city(
                stations,
                city_readings,
                late,
                late_former,
                bar.console.print,
                advancer("loading influxd", city_readings),
            )
            out = city_report(figures)
        else:
            opts = AggregateOptions(readings, days, sites, python_sample, influx_readings, seed)
            methods = run_aggregate_bench(
                opts,
                say=bar.console.print,
                influx_progress=advancer("loading influxd", min(influx_readings, readings)),
            )
            out = report(methods)
            if runner_readings:
                bar.console.print(f"the runner on one day of {runner_readings:,} readings ...")
                f = run_subdistrict(
                    runner_readings, bar.console.print, advancer("loading", runner_readings)
                )
                figs, notes, goal = runner_figures(f, "sub-district")
                out.figures += figs
                out.notes += notes
                if goal:
                    out.goals.append(goal)
    for line in out.lines():
        typer.echo(line)


def register(bench: typer.Typer) -> None:
    """Add `aggregate` to the `gumei bench` group."""
    bench.command("aggregate")(aggregate)
