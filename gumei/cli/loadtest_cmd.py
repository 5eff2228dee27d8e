"""`gumei loadtest`: drive the real pipeline with a simulated fleet and check it against ground truth."""

from __future__ import annotations

from typing import Annotated

import typer


def loadtest(
    gateways: Annotated[
        int,
        typer.Option(min=1, max=20_000, help="simulated gateways, each its own MQTT connection"),
    ] = 2000,
    seconds: Annotated[float, typer.Option(min=5, help="how long the fleet publishes")] = 60.0,
    workers: Annotated[int, typer.Option(min=1, max=16, help="ingestion worker processes")] = 2,
    warp: Annotated[float, typer.Option(min=1, help="simulated seconds per wall second")] = 120.0,
    seed: Annotated[int, typer.Option(help="random seed of the fleet")] = 7,
) -> None:
    """Run a load test; print the report; exit 1 on any loss or tonnage mismatch."""
    from bench.loadtest import LoadConfig, run_loadtest

    report = run_loadtest(
        LoadConfig(gateways=gateways, seconds=seconds, workers=workers, warp=warp, seed=seed),
        progress=lambda s: typer.echo(s, err=True),
    )
    for line in report.lines():
        typer.echo(line)
    if not report.ok:
        raise typer.Exit(1)
