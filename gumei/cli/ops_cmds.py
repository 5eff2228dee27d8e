"""Operations commands: evaluate the rule table once or in a loop, list events (docs/operations.md)."""

from __future__ import annotations

import datetime as dt
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cloud import registry
from cloud.settings import CloudSettings, load_settings

if TYPE_CHECKING:
    from cloud.ops.delivery import DeliveryResult
    from cloud.ops.evaluator import PassResult
    from cloud.ops.rules import Thresholds

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
        result = Evaluator(influx, registry.load(s.registry), _thresholds(s)).run_once()
    _report(result)
    typer.echo(_summary(result))


def _summary(result: PassResult) -> str:
    return (
        f"evaluated {result.subjects} rule-subject pairs ({result.observed} scales read anew): "
        f"{len(result.opened)} opened, {len(result.resolved)} resolved in {result.seconds:.2f}s"
    )


@ops.command("loop")
def loop(
    config: ConfigOpt = None,
    interval: Annotated[
        float | None,
        typer.Option(min=1, max=86_400, help="seconds between passes (default [ops] interval_s)"),
    ] = None,
) -> None:
    """Evaluate every `interval` seconds until SIGTERM/Ctrl-C, printing events as they open and
    resolve, and deliver them to the configured subscribers after each pass."""
    from cloud.influx import InfluxClient
    from cloud.ops import store
    from cloud.ops.delivery import Deliverer
    from cloud.ops.evaluator import Evaluator, wall_ms

    s = load_settings(config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with InfluxClient(s.influx_config("ops")) as influx:
        deliverer = Deliverer(influx, s.ops.subscribers, wall_ms)

        def after(result: PassResult) -> None:
            _report(result)
            typer.echo(_summary(result))
            if s.ops.subscribers:
                eps = [ev for v in store.read_episodes(influx).values() for ev in v]
                _delivery_report(deliverer.run_once(eps))

        try:
            Evaluator(influx, registry.load(s.registry), _thresholds(s)).loop(
                interval or s.ops.interval_s, after, stop.is_set, stop.wait
            )
        finally:
            deliverer.close()


def _delivery_report(result: DeliveryResult) -> None:
    for name, r in result.by_subscriber.items():
        if r.delivered or r.rejected or r.failed or r.pending:
            typer.echo(
                f"delivery {name}: {r.delivered} delivered, {r.rejected} rejected, "
                f"{r.failed} failed, {r.pending} pending" + (" (backing off)" if r.waiting else "")
            )


@ops.command("deliver")
def deliver(config: ConfigOpt = None) -> None:
    """Send every undelivered event change of the last 7 days to each subscriber once (signed
    JSON or a chat robot's text; docs/operations.md); exit 1 if any is still pending."""
    from cloud.influx import InfluxClient
    from cloud.ops import store
    from cloud.ops.delivery import Deliverer
    from cloud.ops.evaluator import wall_ms

    s = load_settings(config)
    if not s.ops.subscribers:
        typer.echo("no subscribers configured ([[ops.subscribers]] in the config)")
        return
    with InfluxClient(s.influx_config("ops")) as influx:
        deliverer = Deliverer(influx, s.ops.subscribers, wall_ms)
        try:
            eps = [ev for v in store.read_episodes(influx).values() for ev in v]
            result = deliverer.run_once(eps)
        finally:
            deliverer.close()
    _delivery_report(result)
    if any(r.pending for r in result.by_subscriber.values()):
        raise typer.Exit(1)


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


def _thresholds(s: CloudSettings) -> Thresholds:
    """The rules' numbers, with the configured gateway_offline delay ([ops] offline_minutes)."""
    from cloud.ops.rules import Thresholds

    return Thresholds(offline_ms=round(s.ops.offline_minutes * 60_000))
