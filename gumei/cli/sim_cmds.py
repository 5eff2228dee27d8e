"""Simulated devices: the fleet of waste-station gateways."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Annotated

import typer

from cloud import registry as registry_mod
from cloud.days import day_start_ms, number_of, today
from runtime.mqtt import MqttEndpoint

sim = typer.Typer(no_args_is_help=True, help="Simulated device firmware and gateways.")


@sim.command("fleet")
def fleet(
    port: Annotated[int, typer.Option(help="broker port")],
    secrets: Annotated[Path, typer.Option(help="JSON file of gateway passwords by site id")],
    host: Annotated[str, typer.Option(help="broker host")] = "127.0.0.1",
    registry: Annotated[Path, typer.Option(help="site registry YAML")] = registry_mod.DEFAULT_PATH,
    warp: Annotated[
        float, typer.Option(min=1, help="simulated seconds per wall second until caught up")
    ] = 120.0,
    from_midnight: Annotated[bool, typer.Option(help="start at today's Shanghai midnight")] = True,
    ca_file: Annotated[Path | None, typer.Option(help="CA certificate: connect with TLS")] = None,
) -> None:
    """Run every waste-station gateway of the registry until SIGTERM/Ctrl-C."""
    from firmware_sim.fleet import Fleet

    reg = registry_mod.load(registry)
    try:
        passwords = json.loads(secrets.read_text())
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"cannot read {secrets}: {exc}") from None
    missing = [
        s.id for s in reg.sites if s.kind == "waste" and not s.retired and s.id not in passwords
    ]
    if missing:
        raise typer.BadParameter(f"no password for {len(missing)} site(s), e.g. {missing[0]}")
    start = day_start_ms(number_of(today())) if from_midnight else None
    ca = {"ca_file": ca_file} if ca_file else {}
    f = Fleet(
        reg,
        lambda site: MqttEndpoint(
            host=host, port=port, username=site, password=passwords[site], **ca
        ),
        warp=warp,
        start_ms=start,
    )
    typer.echo(f"fleet: {len(f.gateways)} gateways publishing to {host}:{port}")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await f.run(stop)

    asyncio.run(main())
    typer.echo(
        f"fleet: sent {len(f.truth.readings)} readings in {f.truth.acked_messages} acknowledged messages"
    )


def register(app: typer.Typer) -> None:
    """Add the simulator commands to the main app."""
    app.add_typer(sim, name="sim")
