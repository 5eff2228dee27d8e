"""Cloud commands: ingest worker, aggregator, API, tokens."""

from __future__ import annotations

import datetime as dt
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress

from cloud import registry
from cloud.settings import CloudSettings, load_settings

if TYPE_CHECKING:
    from cloud.aggregate.targets import TargetRules

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (GUMEI_* env overrides)")
]


def _settings(config: Path | None) -> CloudSettings:
    return load_settings(config)


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def ingest(
    config: ConfigOpt = None,
    name: Annotated[
        str | None,
        typer.Option(help="worker name = broker username = MQTT client id (ingest-1..N)"),
    ] = None,
    ready_file: Annotated[
        Path | None, typer.Option(help="written after each granted subscription, removed on stop")
    ] = None,
) -> None:
    """Run one ingestion worker until SIGTERM/Ctrl-C."""
    from cloud.health.lines import health_lines
    from cloud.influx import InfluxClient
    from cloud.ingest.handler import BatchPlanner
    from cloud.ingest.worker import IngestWorker

    s = _settings(config)
    if name:
        s = s.model_copy(update={"ingest": s.ingest.model_copy(update={"name": name})})
    if ready_file:
        s = s.model_copy(update={"ingest": s.ingest.model_copy(update={"ready_file": ready_file})})
    endpoint = s.worker_endpoint()
    influx = InfluxClient(s.influx_config("ingest"))
    planner = BatchPlanner(
        registry.LiveRegistry(s.registry), health_lines, max_age_days=s.ingest.max_age_days
    )
    worker = IngestWorker(endpoint, influx, planner, s.ingest.options())
    worker.start()
    _wait_for_signal()
    worker.stop()
    influx.close()


aggregate = typer.Typer(
    no_args_is_help=True, help="Daily tonnage aggregation and the plan's targets."
)


def _rules(s: CloudSettings) -> TargetRules:
    """The target rules of the settings' [targets] section."""
    return s.targets.rules()


@aggregate.command("run")
def aggregate_run(config: ConfigOpt = None) -> None:
    """Recompute the days touched by new or late readings since the last run, once."""
    from cloud.aggregate.runner import Aggregator
    from cloud.influx import InfluxClient

    s = _settings(config)
    with InfluxClient(s.influx_config("aggregate")) as influx:
        result = Aggregator(
            influx, registry.load(s.registry), _rules(s), health_k=s.health_min_residents
        ).run_incremental()
    typer.echo(
        f"aggregated {len(result.days)} day(s): {result.rows} rows from {result.readings} readings, "
        f"targets for {result.target_days} day(s)"
    )


@aggregate.command("loop")
def aggregate_loop(
    config: ConfigOpt = None,
    interval: Annotated[
        float | None, typer.Option(help="seconds from the start of a run to the next", min=0.1)
    ] = None,
    residents_interval: Annotated[
        float | None,
        typer.Option(help="seconds between recounts of the district's distinct residents", min=1),
    ] = None,
) -> None:
    """Run the incremental aggregation every second (aggregate_interval_s) until SIGTERM/Ctrl-C."""
    from cloud.aggregate.loop import run_lanes
    from cloud.aggregate.runner import Aggregator
    from cloud.influx import InfluxClient, InfluxError

    s = _settings(config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def failed(exc: InfluxError) -> None:
        typer.echo(f"aggregation failed, will retry: {exc}", err=True)

    with InfluxClient(s.influx_config("aggregate")) as influx:
        # a registry change (live provisioning) makes the next run use a new Aggregator
        agg = registry.LiveRegistry(s.registry).derive(
            lambda reg: Aggregator(influx, reg, _rules(s), health_k=s.health_min_residents)
        )
        # the district's distinct residents scan a whole day in influxd: their own, slower lane,
        # so a late reading's rows never wait for it (docs/aggregation.md)
        run_lanes(
            agg,
            stop,
            failed,
            interval or s.aggregate_interval_s,
            residents_interval or s.aggregate_residents_interval_s,
        )


@aggregate.command("backfill")
def aggregate_backfill(
    start: Annotated[dt.datetime, typer.Argument(formats=["%Y-%m-%d"], help="first day")],
    end: Annotated[dt.datetime, typer.Argument(formats=["%Y-%m-%d"], help="last day (inclusive)")],
    config: ConfigOpt = None,
) -> None:
    """Recompute every day of a range, with a progress bar."""
    from cloud.aggregate.runner import Aggregator
    from cloud.influx import InfluxClient

    if end < start:
        raise typer.BadParameter("end is before start")
    s = _settings(config)
    days = (end.date() - start.date()).days + 1
    with InfluxClient(s.influx_config("aggregate")) as influx, Progress() as bar:
        task = bar.add_task("aggregating days", total=days)
        result = Aggregator(
            influx, registry.load(s.registry), _rules(s), health_k=s.health_min_residents
        ).backfill(start.date(), end.date(), progress=lambda n: bar.advance(task, n))
    typer.echo(
        f"backfilled {len(result.days)} day(s): {result.rows} rows from {result.readings} readings, "
        f"targets for {result.target_days} day(s)"
    )


def api(config: ConfigOpt = None, host: str | None = None, port: int | None = None) -> None:
    """Serve the HTTP API under uvicorn."""
    import uvicorn

    from cloud.api.app import create_app

    s = _settings(config)
    # proxy_headers off: the app reads X-Forwarded-For itself, from api_forwarded_allow_ips only
    uvicorn.run(
        create_app(s),
        host=host or s.api_host,
        port=port or s.api_port,
        log_level="warning",
        proxy_headers=False,
        access_log=False,
    )


token = typer.Typer(no_args_is_help=True, help="API tokens (stored hashed).")


@token.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="operator | health | admin | inspector")],
    name: Annotated[str, typer.Option(help="who or what uses it")],
    config: ConfigOpt = None,
) -> None:
    """Create a token and print it once (recorded in the audit trail, without the secret)."""
    from cloud.auth import TokenStore

    s = _settings(config)
    made = TokenStore(s.tokens).create(name, role)
    _audit_token_event(s, "token_created", made.split("_")[1], role=role, subject_name=name)
    typer.echo(made)


def _audit_token_event(s: CloudSettings, event: str, subject: str, **fields: str) -> None:
    """Record a token made or revoked on the cloud host (who: the host user) in the audit trail."""
    import getpass

    from cloud.api.app import audit_log

    audit_log(s).append(
        {"event": event, "subject_token": subject, **fields, "by": f"cli:{getpass.getuser()}"}
    )


@token.command("revoke")
def token_revoke(token_id: str, config: ConfigOpt = None) -> None:
    """Revoke a token by its id (gm_<id>_…)."""
    from cloud.auth import TokenStore

    s = _settings(config)
    TokenStore(s.tokens).revoke(token_id)
    _audit_token_event(s, "token_revoked", token_id)
    typer.echo(f"revoked {token_id}")


@token.command("list")
def token_list(config: ConfigOpt = None) -> None:
    """List tokens (ids, names, roles; never secrets)."""
    from cloud.auth import TokenStore

    for rec in TokenStore(_settings(config).tokens).list():
        typer.echo(f"{rec.id}\t{rec.role}\t{rec.name}\t{'revoked' if rec.revoked else 'active'}")


def register(app: typer.Typer) -> None:
    """Add the cloud commands to the main app."""
    app.command("ingest")(ingest)
    app.command("api")(api)
    app.add_typer(aggregate, name="aggregate")
    app.add_typer(token, name="token")
