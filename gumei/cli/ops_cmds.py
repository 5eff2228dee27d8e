"""Operations commands: evaluate the rule table once or in a loop, list events (docs/operations.md)."""

from __future__ import annotations

import datetime as dt
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cloud import registry
from cloud.settings import load_settings

if TYPE_CHECKING:
    from cloud.ops.evaluator import PassResult

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (GUMEI_* env overrides)")
]
ops = typer.Typer(no_args_is_help=True, help="Operations events: rules as code, lifecycle.")


def _at(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _report(result: PassResult) -> None:
    for c in result.changes:
        word = "OPEN    " if c.action == "open" else "RESOLVED"
        typer.echo(
            f"{_at(c.at_ms)} {word} {c.rule} {c.subject} ({c.severity}, {c.audience}) value={c.value:.4g}"
        )


@ops.command("evaluate")
def evaluate(config: ConfigOpt = None) -> None:
    """One pass of every rule: open and resolve events, print each change and a summary."""
    from cloud.influx import InfluxClient
    from cloud.ops.evaluator import Evaluator

    s = load_settings(config)
    with InfluxClient(s.influx_config("ops")) as influx:
        result = Evaluator(influx, registry.load(s.registry)).run_once()
    _report(result)
    typer.echo(
        f"evaluated {result.subjects} rule-subject pairs ({result.observed} scales read anew): "
        f"{len(result.opened)} opened, {len(result.resolved)} resolved in {result.seconds:.2f}s"
    )


@ops.command("loop")
def loop(
    config: ConfigOpt = None,
    interval: Annotated[
        float, typer.Option(min=1, max=86_400, help="seconds between passes")
    ] = 60.0,
) -> None:
    """Evaluate every `interval` seconds until SIGTERM/Ctrl-C, printing events as they open and resolve."""
    from cloud.influx import InfluxClient
    from cloud.ops.evaluator import Evaluator

    s = load_settings(config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with InfluxClient(s.influx_config("ops")) as influx:
        Evaluator(influx, registry.load(s.registry)).loop(interval, _report, stop.is_set, stop.wait)


@ops.command("events")
def events(
    config: ConfigOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="resolved events too")] = False,
) -> None:
    """Events as stored (active ones by default): state, overdue, rule, subject, opened."""
    import time

    from cloud.influx import InfluxClient
    from cloud.ops import store

    s = load_settings(config)
    now = time.time_ns() // 1_000_000
    with InfluxClient(s.influx_config("ops")) as influx:
        eps = [ev for v in store.read_episodes(influx).values() for ev in v]
    for ev in sorted(eps, key=lambda e: -e.opened_ms):
        if all_ or ev.active:
            late = " OVERDUE" if ev.overdue(now) else ""
            typer.echo(f"{ev.state}{late}\t{ev.severity}\t{ev.id}\topened {_at(ev.opened_ms)}")


def register(app: typer.Typer) -> None:
    app.add_typer(ops, name="ops")
