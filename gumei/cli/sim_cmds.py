"""Simulated devices: the fleet of waste-station gateways."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from cloud import registry as registry_mod
from cloud.days import day_start_ms, number_of, today
from gumei.mqtt import MqttEndpoint

sim = typer.Typer(no_args_is_help=True, help="Simulated device firmware and gateways.")


@sim.command("fleet")
def fleet(
    port: Annotated[int, typer.Option(help="broker port")],
    secrets: Annotated[Path, typer.Option(help="JSON file of gateway passwords by site id")],
    host: Annotated[str, typer.Option(help="broker host")] = "127.0.0.1",
    registry: Annotated[Path, typer.Option(help="site registry YAML")] = registry_mod.DEFAULT_PATH,
    warp: Annotated[float, typer.Option(min=1, help="simulated seconds per wall second until caught up")] = 120.0,
    from_midnight: Annotated[bool, typer.Option(help="start at today's Shanghai midnight")] = True,
) -> None:
    """Run every waste-station gateway of the registry until SIGTERM/Ctrl-C."""
    from firmware_sim.fleet import Fleet

    reg = registry_mod.load(registry)
    try:
        passwords = json.loads(secrets.read_text())
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"cannot read {secrets}: {exc}") from None
    missing = [s.id for s in reg.sites if s.kind == "waste" and s.id not in passwords]
    if missing:
        raise typer.BadParameter(f"no password for {len(missing)} site(s), e.g. {missing[0]}")
    start = day_start_ms(number_of(today())) if from_midnight else None
    f = Fleet(reg, lambda site: MqttEndpoint(host=host, port=port, username=site, password=passwords[site]), warp=warp, start_ms=start)
    f.start()
    typer.echo(f"fleet: {len(f.gateways)} gateways publishing to {host}:{port}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    f.stop()
    typer.echo(f"fleet: sent {f.sent} readings")


def register(app: typer.Typer) -> None:
    """Add the simulator commands to the main app."""
    app.add_typer(sim, name="sim")
