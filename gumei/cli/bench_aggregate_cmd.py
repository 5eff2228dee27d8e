"""`gumei bench aggregate`: daily tonnage by NumPy vs pandas, a Python loop, InfluxQL and the bandwidth bound."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import Progress, TaskID


def aggregate(
    readings: Annotated[
        int, typer.Option(help="readings to aggregate", min=1000, max=200_000_000)
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
            help="readings loaded into influxd for InfluxQL (0 = skip; loading 10M takes ~75 s)",
            min=0,
        ),
    ] = 10_000_000,
    seed: int = 6,
) -> None:
    """Measure in one run on the same data; print readings/s and ratios against the goals."""
    from bench.aggregate import AggregateOptions, report, run_aggregate_bench

    opts = AggregateOptions(readings, days, sites, python_sample, influx_readings, seed)
    with Progress(transient=True) as bar:
        tasks: list[TaskID] = []

        def advance(n: int) -> None:
            if not tasks:
                tasks.append(bar.add_task("loading influxd", total=min(influx_readings, readings)))
            bar.advance(tasks[0], n)

        methods = run_aggregate_bench(opts, say=bar.console.print, influx_progress=advance)
    for line in report(methods).lines():
        typer.echo(line)


def register(bench: typer.Typer) -> None:
    """Add `aggregate` to the `gumei bench` group."""
    bench.command("aggregate")(aggregate)
