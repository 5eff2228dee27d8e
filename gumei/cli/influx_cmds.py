"""`gumei influx grants|migrate-health`: the per-service InfluxDB users and the health database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cloud.settings import SettingsError

influx_app = typer.Typer(
    no_args_is_help=True, help="InfluxDB users, grants and the health database."
)
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="cloud TOML config (GUMEI_* env overrides)")
]


@influx_app.command("grants")
def grants(
    config: ConfigOpt = None,
    print_only: Annotated[
        bool,
        typer.Option("--print", help="print the InfluxQL (with passwords) instead of applying it"),
    ] = False,
) -> None:
    """Create both databases and one user per service with exactly its grants (InfluxDB 1.x).

    Users and passwords come from [influx.ingest|aggregate|api|grafana]; applying needs the
    administrator in [influx] username/password (GUMEI_INFLUX__USERNAME/PASSWORD). Idempotent.
    """
    from cloud.influx import InfluxClient
    from cloud.influx_grants import SERVICES, apply, grant_table, statements
    from cloud.settings import load_settings

    s = load_settings(config).influx
    missing = [
        svc for svc in SERVICES if not (getattr(s, svc).username and getattr(s, svc).password)
    ]
    if missing:
        raise SettingsError(
            f"no username/password for {', '.join(f'[influx.{m}]' for m in missing)} in the config"
        )
    creds = {svc: (getattr(s, svc).username, getattr(s, svc).password) for svc in SERVICES}
    stmts = statements(s.database, s.health_database, s.records_database, creds)
    if print_only:
        typer.echo("\n".join(f"{x};" for x in stmts))
        return
    with InfluxClient(s.config()) as admin:
        apply(admin, stmts)
    users = {svc: c[0] for svc, c in creds.items()}
    for g in grant_table(s.database, s.health_database, s.records_database, users):
        typer.echo(f"{g.username:20} {g.privilege:5} on {g.database}")


@influx_app.command("migrate-health")
def migrate_health(config: ConfigOpt = None) -> None:
    """Move health_measurement and health dead letters from the main database into the health
    database and recompute health_daily (exact there, suppressed here); as the administrator."""
    from cloud.health.migrate import migrate_health as run
    from cloud.influx import InfluxClient
    from cloud.settings import load_settings

    settings = load_settings(config)
    with InfluxClient(settings.influx.config()) as admin:
        before, after, days = run(admin, settings.health_min_residents)
    for label, c in (("before", before), ("after", after)):
        typer.echo(
            f"{label}: health_measurement {settings.influx.database}={c.main_measurements} "
            f"{settings.influx.health_database}={c.health_measurements}; health dead letters "
            f"{settings.influx.database}={c.main_dead_letters} {settings.influx.health_database}={c.health_dead_letters}"
        )
    typer.echo(f"health_daily recomputed for {days} hut-day(s)")


def register(app: typer.Typer) -> None:
    """Add `gumei influx …` to the main app."""
    app.add_typer(influx_app, name="influx")
