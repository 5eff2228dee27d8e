"""Audit commands (cloud host, admin): read and prune the trail of access to residents' records."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Annotated

import typer

from cloud.settings import load_settings
from contract.models import RESIDENT_PATTERN

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (GUMEI_* env overrides)")
]
audit = typer.Typer(
    no_args_is_help=True, help="The audit trail of per-resident health data access."
)


@audit.command("list")
def audit_list(
    since: Annotated[
        str | None, typer.Option(help="7d, 24h, 30m, or an ISO date/time (UTC)")
    ] = None,
    token: Annotated[str | None, typer.Option(help="only this token id")] = None,
    resident: Annotated[str | None, typer.Option(help="only this resident pseudonym (r-…)")] = None,
    limit: Annotated[int, typer.Option(min=1, help="the newest N records")] = 1000,
    config: ConfigOpt = None,
) -> None:
    """Print audit records as JSON lines, oldest first."""
    from cloud.api.app import audit_log
    from cloud.audit import parse_since

    if resident is not None and not re.fullmatch(RESIDENT_PATTERN, resident):
        raise typer.BadParameter(
            "a resident pseudonym looks like r-<32 hex>", param_hint="--resident"
        )
    log = audit_log(load_settings(config))
    for rec in log.read(parse_since(since, time.time()) if since else None, token, resident, limit):
        typer.echo(json.dumps(rec, ensure_ascii=False))


@audit.command("prune")
def audit_prune(config: ConfigOpt = None) -> None:
    """Remove records older than audit_retention_days (the API also does it daily); the prune is recorded."""
    from cloud.api.app import audit_log

    log = audit_log(load_settings(config))
    typer.echo(
        f"removed {log.prune()} record(s) older than {log.retention_days:g} days from {log.path}"
    )


def register(app: typer.Typer) -> None:
    """Add the audit commands to the main app."""
    app.add_typer(audit, name="audit")
