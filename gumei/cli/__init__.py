"""`gumei`: the one command line for everything a person runs."""

from __future__ import annotations

import logging
import sys

import typer

from gumei.cli import (
    audit_cmds,
    cloud_cmds,
    dashboards_cmds,
    edge_cmds,
    gateway_cmds,
    health_cmds,
    influx_cmds,
    inspection_cmds,
    loadtest_cmd,
    ops_cmds,
    registry_cmds,
    run_cmd,
    sim_cmds,
    tools_cmds,
)
from gumei.cli.errors import KNOWN_ERRORS, missing_extra

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Gumei community IoT: waste-sorting scales and smart health hut, edge to cloud.",
)
app.command("run")(run_cmd.run)
app.command("loadtest")(loadtest_cmd.loadtest)
cloud_cmds.register(app)
sim_cmds.register(app)
tools_cmds.register(app)
registry_cmds.register(app)
health_cmds.register(app)
edge_cmds.register(app)
gateway_cmds.register(app)
dashboards_cmds.register(app)
audit_cmds.register(app)
influx_cmds.register(app)
inspection_cmds.register(app)
ops_cmds.register(app)


def main() -> None:
    """Entry point: known errors become one clear line and exit code 2."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        app()
    except KNOWN_ERRORS as exc:
        print(f"gumei: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except ModuleNotFoundError as exc:
        message = missing_extra(exc)
        if message is None:
            raise
        print(f"gumei: error: {message}", file=sys.stderr)
        sys.exit(2)
