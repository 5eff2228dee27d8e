"""`gumei inspections`: seed demo inspections; print the sorting-effectiveness rate of a period."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

inspections = typer.Typer(
    no_args_is_help=True,
    help="On-site sorting inspections (五有) and 实效达标率 (docs/inspections.md).",
)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (GUMEI_* env overrides)")
]


@inspections.command("seed")
def seed_cmd(
    config: ConfigOpt = None,
    days: Annotated[int, typer.Option(min=1, max=366, help="spread over this many past days")] = 28,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same day: same points)")] = 15,
) -> None:
    """Write a seeded set of demo inspections (every area, some stations, every unit and public place)."""
    from cloud.influx import InfluxClient
    from cloud.inspections.demo import demo_records
    from cloud.inspections.demo import seed as write
    from cloud.inspections.places import load_places
    from cloud.registry import load
    from cloud.settings import load_settings

    s = load_settings(config)
    records = demo_records(
        load(s.registry),
        load_places(s.inspections.places),
        dt.datetime.now(dt.UTC),
        days=days,
        seed=seed,
        pass_score=s.inspections.pass_score,
    )
    with InfluxClient(s.influx_config("api")) as influx:  # the identity that writes inspections
        n = write(influx, records)
    typer.echo(f"wrote {n} demo inspections over the last {days} days")


@inspections.command("rate")
def rate_cmd(
    start: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="first Shanghai day")],
    end: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="last Shanghai day")],
    config: ConfigOpt = None,
) -> None:
    """实效达标率 of a period: places whose latest inspection is 达标, per place type and overall."""
    from cloud.influx import InfluxClient
    from cloud.inspections import store
    from cloud.inspections.effectiveness import effectiveness
    from cloud.inspections.record import PLACE_TYPES
    from cloud.settings import load_settings

    if end < start:
        raise typer.BadParameter("end is before start", param_hint="--end")
    if (end - start).days >= 366:
        raise typer.BadParameter("at most 366 days at once", param_hint="--end")
    s = load_settings(config)
    with InfluxClient(s.influx_config("api")) as influx:
        rows = store.read(influx, start.date(), end.date())
    rates = effectiveness([r.check() for r in rows])
    for key in (*PLACE_TYPES, "all"):
        r = rates[key]
        pct = "—" if r.pct is None else f"{r.pct:.1f} %"
        typer.echo(f"{key:<12} {r.passed:>5} / {r.places:<5} places 达标  {pct}")


def register(app: typer.Typer) -> None:
    app.add_typer(inspections, name="inspections")
