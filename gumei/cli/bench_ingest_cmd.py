"""`gumei bench ingest`: ingestion throughput and latency against the MQTT and InfluxDB ceilings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def ingest(
    scale: Annotated[
        float,
        typer.Option(
            help="multiply every message/point count (0.01 = smoke run)", min=0.001, max=10
        ),
    ] = 1.0,
    latency_seconds: Annotated[
        float, typer.Option(help="length of the latency phase", min=0.5, max=120)
    ] = 5.0,
    workdir: Annotated[
        Path | None, typer.Option(help="keep the stack's files and logs here (default: temp dir)")
    ] = None,
) -> None:
    """Measure, in one run: MQTT ceiling, InfluxDB ceiling, end to end (1 and 100 readings per
    message, 1 and 2 workers), publish->queryable latency at half the sustained rate; print ratios."""
    from bench.ingest import BenchError, IngestOptions, format_result, run_ingest_bench

    try:
        result = run_ingest_bench(
            IngestOptions(scale=scale, latency_seconds=latency_seconds), workdir, report=typer.echo
        )
    except BenchError as exc:
        typer.echo(f"gumei: error: benchmark failed: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(format_result(result))


def register(bench: typer.Typer) -> None:
    """Add `ingest` to the `gumei bench` group."""
    bench.command("ingest")(ingest)
