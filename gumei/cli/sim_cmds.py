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
    transfer: Annotated[
        str | None,
        typer.Option(
            help="a weighbridge site (WB-…) of the registry: a simulated transfer station whose "
            "trucks collect the stations' bins every 2 h and are weighed there"
        ),
    ] = None,
    fill_bin: Annotated[
        str | None,
        typer.Option(
            help="a scale (device id) whose bin fills past 90 % once the clock has caught up "
            "(its readings carry gross_kg): raises the bin_full event"
        ),
    ] = None,
    fill_seconds: Annotated[
        float, typer.Option(min=1, max=86_400, help="how long --fill-bin takes to fill")
    ] = 60.0,
    kill_gateway: Annotated[
        str | None,
        typer.Option(
            help="a waste station whose gateway is cut off for good (no DISCONNECT: its Last "
            "Will marks it offline) after --kill-after seconds: raises gateway_offline"
        ),
    ] = None,
    kill_after: Annotated[
        float, typer.Option(min=0, max=86_400, help="seconds before --kill-gateway is cut off")
    ] = 60.0,
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
    try:
        f = Fleet(
            reg,
            lambda site: MqttEndpoint(
                host=host, port=port, username=site, password=passwords[site], **ca
            ),
            warp=warp,
            start_ms=start,
            fill=(fill_bin, fill_seconds) if fill_bin else None,
            kill=(kill_gateway, kill_after) if kill_gateway else None,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if transfer is not None:
        if transfer not in passwords:
            raise typer.BadParameter(f"no password for the weighbridge {transfer}")
        try:
            f.add_transfer(
                reg,
                transfer,
                MqttEndpoint(
                    host=host, port=port, username=transfer, password=passwords[transfer], **ca
                ),
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
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
    if f.transfer is not None:
        typer.echo(f"fleet: transfer station {transfer}: {f.transfer.made} tickets")


@sim.command("weighbridge")
def weighbridge(
    operator_file: Annotated[
        Path, typer.Option(help="JSON-lines file the operator's entries are appended to")
    ],
    trucks: Annotated[int, typer.Option(min=1, max=1000, help="trucks to weigh")] = 6,
    seed: Annotated[int, typer.Option(help="random seed of loads, plates and noise")] = 1,
    speed: Annotated[
        float, typer.Option(min=0.1, max=100, help="simulated seconds per second")
    ] = 1.0,
    mode: Annotated[
        str, typer.Option(help="continuous output: tf0 (STX frames) or eq ('=')")
    ] = "tf0",
    areas: Annotated[str, typer.Option(help="comma-separated source areas")] = "A07,A08",
    stored_every: Annotated[
        int, typer.Option(min=0, help="every n-th truck has a stored tare")
    ] = 3,
    glitch_rate: Annotated[
        float, typer.Option(min=0, max=0.5, help="share of garbled frames")
    ] = 0.0,
    link: Annotated[
        Path | None, typer.Option(help="also make this symlink to the serial port")
    ] = None,
) -> None:
    """A truck-scale indicator (耀华 XK3190 continuous output) and its operator, until all trucks
    are weighed: frames on a pseudo-terminal, entries appended to --operator-file; prints the port,
    the stored tares to configure and, at the end, the tickets the gateway should make (JSON lines)."""
    from firmware_sim.weighbridge import WeighbridgeSim, make_trucks, timeline

    if mode not in ("tf0", "eq"):
        raise typer.BadParameter("--mode must be tf0 or eq")
    area_list = [a.strip() for a in areas.split(",") if a.strip()]
    plan = make_trucks(trucks, seed, area_list, stored_every)
    t = timeline(plan, seed=seed, mode="tf0" if mode == "tf0" else "eq", glitch_rate=glitch_rate)
    sim = WeighbridgeSim(t, operator_file, speed)
    if link is not None:
        link.unlink(missing_ok=True)
        link.symlink_to(sim.port)
    typer.echo(f"weighbridge: indicator on {sim.port} ({mode}, kg), operator input {operator_file}")
    tares = {x.plate: x.tare_g // 1000 for x in plan if x.stored_tare}
    typer.echo(f"weighbridge: stored_tares_kg = {json.dumps(tares, ensure_ascii=False)}")
    typer.echo(f"weighbridge: {len(plan)} trucks over {t.duration_ms / 1000 / speed:.0f} s")
    stopped = False

    def stop(*_: object) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sim.start()
    try:
        while not stopped and not sim.wait(0.2):
            pass
    finally:
        sim.close()
        if link is not None:
            link.unlink(missing_ok=True)
    for x in plan:
        typer.echo(
            json.dumps(
                {**x.entry, "gross_g": x.gross_g, "tare_g": x.tare_g, "net_g": x.net_g},
                ensure_ascii=False,
            )
        )
    typer.echo(
        f"weighbridge: done, {t.glitches} garbled frames, net {sum(x.net_g for x in plan)} g"
    )


def register(app: typer.Typer) -> None:
    """Add the simulator commands to the main app."""
    app.add_typer(sim, name="sim")
