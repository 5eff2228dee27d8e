"""`gumei gateway bundle`: the installer bundle of one gateway (broker/bundle.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cloud import registry as reg_mod

gateway = typer.Typer(no_args_is_help=True, help="Gateways: installer bundles.")


@gateway.command("bundle")
def bundle(
    site: Annotated[str, typer.Argument(help="the site id, e.g. WS-0701")],
    out: Annotated[Path, typer.Option(help="a new directory for the bundle")],
    broker_dir: Annotated[Path, typer.Option(help="the directory gumei broker gen wrote")],
    broker_url: Annotated[
        str, typer.Option(help="how the gateway reaches the broker, e.g. mqtts://mqtt.example:8883")
    ],
    registry: Annotated[
        Path, typer.Option("--registry", "-r", help="site registry YAML")
    ] = reg_mod.DEFAULT_PATH,
    install_dir: Annotated[Path, typer.Option(help="where the files go on the gateway")] = Path(
        "/etc/gumei"
    ),
    district_key: Annotated[
        Path | None,
        typer.Option(help="the district key file: for a health hut or a station with --cards"),
    ] = None,
    cards: Annotated[
        bool, typer.Option("--cards", help="the station has a resident card reader")
    ] = False,
    queue_dir: Annotated[Path, typer.Option(help="the gateway's durable queue directory")] = Path(
        "/var/lib/gumei-edge"
    ),
) -> None:
    """Write everything one gateway needs, and nothing of any other gateway's."""
    from broker.bundle import write_bundle

    made = write_bundle(
        out,
        reg_mod.load(registry),
        site,
        broker_dir,
        broker_url,
        install_dir,
        district_key,
        cards,
        queue_dir,
    )
    typer.echo(f"bundle for {site} in {made.out}: {', '.join(made.files)} (see INSTALL.txt)")


def register(app: typer.Typer) -> None:
    """Add `gateway` to the main app."""
    app.add_typer(gateway, name="gateway")
