"""`gumei edge run|check-config` (the gateway agent) and `gumei bench scales|edge`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from edge.errors import EdgeError

edge = typer.Typer(
    no_args_is_help=True, help="The site gateway agent (WS-… waste station or HH-… health hut)."
)
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="gateway TOML file")]


def _fail(exc: EdgeError) -> typer.Exit:
    for line in str(exc).splitlines():
        print(f"gumei: error: {line}", file=sys.stderr)
    return typer.Exit(2)


@edge.command("run")
def edge_run(config: ConfigOpt = Path("/etc/gumei/gateway.toml")) -> None:
    """Run the gateway agent the config describes until SIGTERM: a waste station (site WS-…,
    deploy/systemd/gumei-edge.service) or a health hut (site HH-…, deploy/systemd/gumei-hut.service)."""
    from edge import agent
    from edge.config import check_files, load_config

    try:
        cfg = load_config(config)
        problems = check_files(cfg)
        if problems:
            raise EdgeError("\n".join(f"{config}: {p}" for p in problems))
        code = agent.run_gateway(cfg)
    except EdgeError as exc:
        raise _fail(exc) from None
    raise typer.Exit(code)


@edge.command("check-config")
def edge_check_config(config: ConfigOpt = Path("/etc/gumei/gateway.toml")) -> None:
    """Validate a gateway config (waste station or health hut) and the files it names; one line per mistake."""
    from edge.config import check_files, describe, load_config

    try:
        cfg = load_config(config)
    except EdgeError as exc:
        raise _fail(exc) from None
    problems = check_files(cfg)
    if problems:
        raise _fail(EdgeError("\n".join(f"{config}: {p}" for p in problems)))
    typer.echo(f"{config}: ok: {describe(cfg)}")


def bench_scales(
    hours: Annotated[float, typer.Option(min=0.1, help="simulated hours per scale")] = 24.0,
    seed: Annotated[int, typer.Option(help="random seed")] = 1,
) -> None:
    """Deposit detection accuracy against the scale simulator's ground truth (4 scales)."""
    from bench.scales import accuracy_report, run_accuracy_bench

    report = accuracy_report(run_accuracy_bench(hours, seed))
    for line in report.lines():
        typer.echo(line)
    if not report.meets:
        raise typer.Exit(1)


def bench_edge(
    seconds: Annotated[float, typer.Option(min=5, help="steady-state measuring time")] = 60.0,
    backlog: Annotated[
        int, typer.Option(min=100, help="readings buffered during the outage")
    ] = 50_000,
    fps: Annotated[float, typer.Option(min=0.1, help="frames per second per scale")] = 1.0,
    via_cli: Annotated[
        bool,
        typer.Option(help="run the agent as `gumei edge run` instead of `python -m edge.agent`"),
    ] = False,
) -> None:
    """Footprint of one agent (4 scales at `fps`) and its replay rate after an outage, in one run."""
    from bench.edge import edge_report, run_edge_bench

    r = run_edge_bench(
        seconds=seconds, backlog=backlog, fps=fps, via_cli=via_cli, progress=typer.echo
    )
    report = edge_report(r, via_cli)
    for line in report.lines():
        typer.echo(line)
    if not report.meets:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `gumei edge …` to the main app."""
    app.add_typer(edge, name="edge")


def register_bench(bench: typer.Typer) -> None:
    """Add `gumei bench scales` and `gumei bench edge`."""
    bench.command("scales")(bench_scales)
    bench.command("edge")(bench_edge)
