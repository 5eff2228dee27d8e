"""`gumei bench ops`: the operations evaluator's cost by pass on a private influxd (bench/ops.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer


def ops(
    stations: Annotated[
        int, typer.Option(help="waste stations (4 scales each)", min=8, max=20_000)
    ] = 324,
    history_days: Annotated[int, typer.Option(help="days of deposits loaded", min=1, max=28)] = 28,
    every_h: Annotated[
        int, typer.Option(help="hours between deposits per scale", min=1, max=24)
    ] = 2,
    touched_pct: Annotated[
        float, typer.Option(help="% of stations with new data", min=0.01, max=100)
    ] = 10.0,
    seed: int = 16,
) -> None:
    """Run the evaluator's first, steady and incremental passes; print figures and goals."""
    from bench.ops import OpsBenchOptions, report, run_ops_bench

    with tempfile.TemporaryDirectory(prefix="gumei-bench-ops-") as tmp:
        result = run_ops_bench(
            Path(tmp) / "influxd",
            OpsBenchOptions(stations, history_days, every_h, touched_pct, seed),
        )
    rep = report(result)
    for x in rep.lines():
        typer.echo(x)
    if not rep.meets:
        raise typer.Exit(1)


def register(bench: typer.Typer) -> None:
    bench.command("ops")(ops)
