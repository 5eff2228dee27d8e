"""Registry and broker commands: list/add/retire sites and devices; generate broker security; rotate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from broker.dynsec import ADMIN, DEFAULT_MONITORS, DEFAULT_WORKERS
from cloud import registry as reg_mod

RegistryOpt = Annotated[Path, typer.Option("--registry", "-r", help="site registry YAML")]
registry_app = typer.Typer(
    no_args_is_help=True, help="The site registry: areas, sites and devices."
)
broker_app = typer.Typer(
    no_args_is_help=True,
    help="Broker security from the registry: identities, ACLs (dynamic security plugin), TLS.",
)


def _change(path: Path, what: str, change: reg_mod.Registry) -> None:
    reg_mod.save(change, path)
    typer.echo(
        f"{what} in {path}; regenerate the broker (gumei broker gen) and restart the cloud services"
    )


@registry_app.command("list")
def list_sites(
    registry: RegistryOpt = reg_mod.DEFAULT_PATH,
    area: Annotated[str | None, typer.Option(help="only this area")] = None,
    kind: Annotated[str | None, typer.Option(help="waste | health")] = None,
    devices: Annotated[
        bool, typer.Option("--devices", help="one line per device instead of per site")
    ] = False,
    retired: Annotated[
        bool, typer.Option("--retired", help="include retired sites and devices")
    ] = False,
) -> None:
    """One tab-separated line per site (or device)."""
    reg = reg_mod.load(registry)
    if area is not None and all(a.id != area for a in reg.areas):
        raise reg_mod.RegistryError(f"unknown area {area!r}")
    for s in reg.sites:
        if (area and s.area != area) or (kind and s.kind != kind) or (s.retired and not retired):
            continue
        if not devices:
            active = sum(1 for d in s.devices if not d.retired)
            typer.echo(
                f"{s.id}\t{s.kind}\t{s.area}\t{active} devices\t{'retired' if s.retired else 'active'}\t{s.name}"
            )
            continue
        for d in s.devices:
            if d.retired and not retired:
                continue
            what = d.category.value if d.category else (d.type or "")
            typer.echo(
                f"{d.id}\t{s.id}\t{d.interface}\t{what}\t{'retired' if d.retired or s.retired else 'active'}"
            )


@registry_app.command("add-area")
def add_area(area_id: str, name: str, registry: RegistryOpt = reg_mod.DEFAULT_PATH) -> None:
    """Add a residential area."""
    _change(
        registry, f"added area {area_id}", reg_mod.add_area(reg_mod.load(registry), area_id, name)
    )


@registry_app.command("add-site")
def add_site(
    site_id: Annotated[str, typer.Argument(help="WS-… waste station or HH-… health hut")],
    area: Annotated[str, typer.Option(help="area id, e.g. A07")],
    name: Annotated[str, typer.Option(help="human name")],
    lat: Annotated[float, typer.Option(help="latitude")],
    lon: Annotated[float, typer.Option(help="longitude")],
    registry: RegistryOpt = reg_mod.DEFAULT_PATH,
) -> None:
    """Add a site (its kind follows from the id)."""
    _change(
        registry,
        f"added site {site_id}",
        reg_mod.add_site(reg_mod.load(registry), site_id, area, name, lat, lon),
    )


@registry_app.command("add-device")
def add_device(
    device_id: Annotated[str, typer.Argument(help="<site id>-<suffix>, e.g. WS-0101-S5")],
    interface: Annotated[str, typer.Option(help="serial | modbus | ble | sim")] = "serial",
    category: Annotated[
        str | None, typer.Option(help="scale category: dry | wet | recyclable | hazardous")
    ] = None,
    type_: Annotated[
        str | None, typer.Option("--type", help="health instrument type, e.g. blood_pressure")
    ] = None,
    capacity_kg: Annotated[float | None, typer.Option(help="bin capacity (scales)")] = None,
    registry: RegistryOpt = reg_mod.DEFAULT_PATH,
) -> None:
    """Add a device to the site its id starts with."""
    reg = reg_mod.add_device(
        reg_mod.load(registry), device_id, interface, category, type_, capacity_kg
    )
    _change(registry, f"added device {device_id}", reg)


@registry_app.command("retire-site")
def retire_site(site_id: str, registry: RegistryOpt = reg_mod.DEFAULT_PATH) -> None:
    """Retire a site: kept for history, its gateway loses broker access at the next broker gen."""
    _change(
        registry, f"retired site {site_id}", reg_mod.retire_site(reg_mod.load(registry), site_id)
    )


@registry_app.command("retire-device")
def retire_device(device_id: str, registry: RegistryOpt = reg_mod.DEFAULT_PATH) -> None:
    """Retire a device: its readings are quarantined from now on."""
    _change(
        registry,
        f"retired device {device_id}",
        reg_mod.retire_device(reg_mod.load(registry), device_id),
    )


@broker_app.command("gen")
def broker_gen(
    out: Annotated[
        Path,
        typer.Option(
            help="directory for mosquitto.conf, dynamic-security.json, tls/, secrets/, ingest/"
        ),
    ],
    registry: RegistryOpt = reg_mod.DEFAULT_PATH,
    host: Annotated[
        list[str] | None, typer.Option(help="broker host name or IP gateways dial (repeat)")
    ] = None,
    port: Annotated[int, typer.Option(help="TLS listener port")] = 8883,
    bind: Annotated[str, typer.Option(help="listener address")] = "0.0.0.0",
    client_certs: Annotated[
        bool, typer.Option(help="issue gateway client certificates and require them")
    ] = False,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="ingestion worker identities ingest-1..N")
    ] = DEFAULT_WORKERS,
    monitors: Annotated[
        int, typer.Option(min=0, max=64, help="read-only monitor identities monitor-1..k")
    ] = DEFAULT_MONITORS,
    state_dir: Annotated[
        Path, typer.Option(help="Mosquitto's persistence dir, where the plugin file is installed")
    ] = Path("/var/lib/mosquitto"),
    plugin: Annotated[
        Path | None, typer.Option(help="mosquitto_dynamic_security.so on the broker host")
    ] = None,
) -> None:
    """Generate the broker from the registry: identities, ACLs, TLS (existing passwords and CA are kept)."""
    from broker.generate import generate_broker

    files = generate_broker(
        out,
        reg_mod.load(registry),
        host or ["localhost", "127.0.0.1"],
        port,
        bind,
        client_certs,
        workers,
        monitors,
        state_dir,
        plugin,
    )
    typer.echo(
        f"{files.users} broker identities (gateways, ingest-1..{workers}, monitor-1..{monitors}, admin) -> {files.dynsec}"
    )
    typer.echo(
        f"config {files.config}; CA for gateways {files.tls.ca_cert}; passwords {files.secrets} (0600); "
        f"worker env files in {files.worker_env[0].parent}"
    )


@broker_app.command("rotate")
def broker_rotate(
    user: Annotated[
        str, typer.Argument(help="a gateway (site id), ingest-N, monitor-N or gumei-admin")
    ],
    out: Annotated[Path, typer.Option(help="the directory gumei broker gen wrote")],
    live_host: Annotated[
        str, typer.Option(help="broker host for the live change (as the admin, over TLS)")
    ] = "localhost",
    live_port: Annotated[
        int | None,
        typer.Option(help="broker TLS port: apply the change live through the control topic"),
    ] = None,
) -> None:
    """Give one identity a new password; every other credential stays byte-for-byte the same."""
    from broker.generate import rotate_password
    from runtime.mqtt import MqttEndpoint

    live = None
    if live_port is not None:
        certs = out / "tls" / "clients"
        admin_cert = (
            {"cert_file": certs / f"{ADMIN}.crt", "key_file": certs / f"{ADMIN}.key"}
            if (certs / f"{ADMIN}.crt").exists()
            else {}
        )
        live = MqttEndpoint(
            host=live_host, port=live_port, ca_file=out / "tls" / "ca.crt", **admin_cert
        )
    rotate_password(out, user, live)
    done = (
        "applied live"
        if live
        else f"install {out / 'dynamic-security.json'} and restart mosquitto (docs/deploy.md)"
    )
    typer.echo(f"rotated {user}: new password in {out / 'secrets' / 'mqtt.json'}; {done}")


def register(app: typer.Typer) -> None:
    """Add the registry and broker commands to the main app."""
    app.add_typer(registry_app, name="registry")
    app.add_typer(broker_app, name="broker")
