"""`gumei quarantine`: read the dead letters (what, when, which site, why)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

quarantine = typer.Typer(
    no_args_is_help=True, help="Dead letters: payloads and entries the ingestion rejected."
)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (GUMEI_* env overrides)")
]


def parse_window(text: str) -> dt.timedelta:
    """`90s`, `15m`, `6h`, `7d` as a timedelta (parsed by the one duration parser, dashboards.macros)."""
    from dashboards.macros import parse_duration

    try:
        return dt.timedelta(milliseconds=parse_duration(text, units=("s", "m", "h", "d")))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a duration like 30m, 6h or 7d") from None


@quarantine.command("list")
def list_dead_letters(
    config: ConfigOpt = None,
    since: Annotated[str, typer.Option(help="how far back: 30m, 6h, 7d")] = "1d",
    site: Annotated[str | None, typer.Option(help="only this site")] = None,
    code: Annotated[
        str | None, typer.Option(help="only this reason code, e.g. invalid_entry")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    payload: Annotated[bool, typer.Option(help="show the payload excerpt")] = False,
) -> None:
    """Newest dead letters first."""
    from cloud.influx import InfluxClient
    from cloud.quarantine import QuarantineStore
    from cloud.settings import load_settings

    window = parse_window(since)
    settings = load_settings(config)
    with InfluxClient(settings.influx_config("api")) as influx:
        letters = QuarantineStore(influx).recent(window, site=site, code=code, limit=limit)
    for d in letters:
        if as_json:
            row = {**dataclasses.asdict(d), "time": d.time.isoformat()}
            typer.echo(json.dumps(row, ensure_ascii=False))
            continue
        typer.echo(
            f"{d.time.isoformat(timespec='milliseconds')}  {d.site:<10} {d.code:<20} x{d.entries:<4} {d.reason}"
        )
        if payload:
            typer.echo(f"    {d.topic}: {d.payload[:300]}")
    if not letters and not as_json:
        typer.echo(f"no dead letters in the last {since}")


@quarantine.command("replay")
def replay_dead_letters(
    code: Annotated[str, typer.Option(help="unknown_site | unknown_device")],
    since: Annotated[str, typer.Option(help="how far back: 30m, 6h, 7d")],
    config: ConfigOpt = None,
    site: Annotated[str | None, typer.Option(help="only this site")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="say what would be written, write nothing")
    ] = False,
) -> None:
    """Re-ingest readings refused because their station or scale was not registered yet.

    Planned with the registry as it is now, as a worker plans them; each reading counts once
    however often it is replayed (its identity (device, seq) is its point in InfluxDB).
    """
    from cloud import registry
    from cloud.health.lines import health_lines
    from cloud.influx import InfluxClient
    from cloud.ingest.handler import BatchPlanner
    from cloud.ingest.replay import REPLAYABLE, replay
    from cloud.quarantine import QuarantineStore
    from cloud.settings import load_settings

    if code not in REPLAYABLE:
        raise typer.BadParameter(
            f"{code!r}: only {' and '.join(REPLAYABLE)} dead letters can become valid by a registry change"
        )
    window = parse_window(since)
    s = load_settings(config)
    # least privilege: the API's identity reads the quarantine, the workers' identity writes
    with (
        InfluxClient(s.influx_config("api")) as reader,
        InfluxClient(s.influx_config("ingest")) as writer,
    ):
        letters = QuarantineStore(reader).recent(window, site=site, code=code, limit=100_000)
        planner = BatchPlanner(
            registry.load(s.registry), health_lines, max_age_days=s.ingest.max_age_days
        )
        result = replay(writer, planner, letters, dry_run=dry_run)
    for line in result.unusable:
        typer.echo(f"not replayable: {line}", err=True)
    refused = ", ".join(f"{n} {c}" for c, n in sorted(result.refused.items())) or "none"
    typer.echo(
        f"{len(letters)} dead letter(s) {code} in the last {since}: "
        f"{result.written} reading(s) {'would be ' if dry_run else ''}written, still refused: {refused}"
    )


def register(app: typer.Typer) -> None:
    """Add `quarantine` to the main app."""
    app.add_typer(quarantine, name="quarantine")
