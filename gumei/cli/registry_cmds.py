"""Registry and broker commands: list/add/retire sites and devices; generate broker security; rotate."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated

import typer

from broker.dynsec import ADMIN, DEFAULT_MONITORS, DEFAULT_WORKERS
from cloud import registry as reg_mod
from cloud.days import today
from runtime.mqtt import MqttEndpoint
from runtime.system import ServiceError

RegistryOpt = Annotated[Path, typer.Option("--registry", "-r", help="site registry YAML")]
registry_app = typer.Typer(
    no_args_is_help=True, help="The site registry: areas, sites and devices."
)
broker_app = typer.Typer(
    no_args_is_help=True,
    help="Broker security from the registry: identities, ACLs (dynamic security plugin), TLS.",
)


BrokerDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--broker-dir", help="the directory gumei broker gen wrote: apply the change to the broker"
    ),
]
LiveHostOpt = Annotated[str, typer.Option(help="broker host (as the admin, over TLS)")]
LivePortOpt = Annotated[int, typer.Option(help="broker TLS port")]
ByOpt = Annotated[str | None, typer.Option("--by", help="who makes the change (change log)")]


def _admin_endpoint(out: Path, host: str, port: int) -> MqttEndpoint:
    """The running broker as gumei-admin, with the files `gumei broker gen --out out` wrote."""
    certs = out / "tls" / "clients"
    cert = (
        {"cert_file": certs / f"{ADMIN}.crt", "key_file": certs / f"{ADMIN}.key"}
        if (certs / f"{ADMIN}.crt").exists()
        else {}
    )
    return MqttEndpoint(host=host, port=port, ca_file=out / "tls" / "ca.crt", **cert)


def _change(
    path: Path,
    what: str,
    change: reg_mod.Registry,
    broker_dir: Path | None = None,
    live_host: str = "localhost",
    live_port: int = 8883,
    by: str | None = None,
) -> None:
    """Save the registry (atomically, with a change-log line); with broker_dir, apply it live.

    The running ingestion workers, aggregator and API reload the file by themselves within seconds
    (cloud.registry.LiveRegistry); the broker learns new and retired gateways through its control
    topic (broker.live.sync_gateways). Nothing restarts.
    """
    reg_mod.save(change, path)
    reg_mod.log_change(path, what, by or _who())
    if broker_dir is None:
        typer.echo(
            f"{what} in {path}; the cloud services reload it within seconds; "
            f"apply it to the broker: add --broker-dir (or gumei broker sync)"
        )
        return
    done = _sync(change, broker_dir, live_host, live_port)
    typer.echo(f"{what} in {path}; broker: {done}; the cloud services reload it within seconds")


def _sync(registry: reg_mod.Registry, broker_dir: Path, host: str, port: int) -> str:
    from broker.generate import load_or_make_passwords
    from broker.live import BrokerPaths, sync_gateways

    paths = BrokerPaths.of_generated(broker_dir)
    if not paths.secrets.exists():
        raise ServiceError(f"no {paths.secrets}: run gumei broker gen --out {broker_dir} first")
    admin = _admin_endpoint(broker_dir, host, port).model_copy(
        update={
            "username": ADMIN,
            "password": load_or_make_passwords(paths.secrets, [ADMIN])[ADMIN],
        }
    )
    changes = sync_gateways(registry, paths, admin)
    if not changes:
        return "no gateway to add or remove"
    parts = []
    if changes.add:
        parts.append(f"gateways added {', '.join(changes.add)} (passwords in {paths.secrets})")
    if changes.remove:
        parts.append(f"gateways removed and disconnected {', '.join(changes.remove)}")
    return "; ".join(parts)


def _who() -> str:
    return os.environ.get("SUDO_USER") or os.environ.get("USER") or f"uid {os.getuid()}"


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
def add_area(
    area_id: str,
    name: str,
    registry: RegistryOpt = reg_mod.DEFAULT_PATH,
    by: ByOpt = None,
) -> None:
    """Add a residential area."""
    change = reg_mod.add_area(reg_mod.load(registry), area_id, name)
    _change(registry, f"added area {area_id}", change, by=by)


@registry_app.command("add-site")
def add_site(
    site_id: Annotated[str, typer.Argument(help="WS-… waste station or HH-… health hut")],
    area: Annotated[str, typer.Option(help="area id, e.g. A07")],
    name: Annotated[str, typer.Option(help="human name")],
    lat: Annotated[float, typer.Option(help="latitude")],
    lon: Annotated[float, typer.Option(help="longitude")],
    registry: RegistryOpt = reg_mod.DEFAULT_PATH,
    broker_dir: BrokerDirOpt = None,
    live_host: LiveHostOpt = "localhost",
    live_port: LivePortOpt = 8883,
    by: ByOpt = None,
) -> None:
    """Add a site (its kind follows from the id); with --broker-dir its gateway may connect at once."""
    change = reg_mod.add_site(reg_mod.load(registry), site_id, area, name, lat, lon)
    _change(registry, f"added site {site_id}", change, broker_dir, live_host, live_port, by)


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
    by: ByOpt = None,
) -> None:
    """Add a device to the site its id starts with (its readings count as soon as workers reload)."""
    reg = reg_mod.add_device(
        reg_mod.load(registry), device_id, interface, category, type_, capacity_kg
    )
    _change(registry, f"added device {device_id}", reg, by=by)


@registry_app.command("retire-site")
def retire_site(
    site_id: str,
    registry: RegistryOpt = reg_mod.DEFAULT_PATH,
    broker_dir: BrokerDirOpt = None,
    live_host: LiveHostOpt = "localhost",
    live_port: LivePortOpt = 8883,
    by: ByOpt = None,
) -> None:
    """Retire a site: kept for history; with --broker-dir its gateway is disconnected and refused."""
    change = reg_mod.retire_site(reg_mod.load(registry), site_id)
    _change(registry, f"retired site {site_id}", change, broker_dir, live_host, live_port, by)


@registry_app.command("move-site")
def move_site(
    site_id: str,
    area: Annotated[str, typer.Option(help="the new area id")],
    since: Annotated[
        dt.datetime,
        typer.Option("--from", formats=["%Y-%m-%d"], help="first Shanghai day in the new area"),
    ],
    registry: RegistryOpt = reg_mod.DEFAULT_PATH,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="cloud TOML: restate days already aggregated (from today back)"
        ),
    ] = None,
    by: ByOpt = None,
) -> None:
    """Move a station to another area from a day on; days before keep the old area everywhere."""
    before = reg_mod.load(registry)
    site = before.site(site_id)
    change = reg_mod.move_site(before, site_id, area, since.date())
    old = site.area if site is not None else ""
    _change(
        registry, f"moved site {site_id} from {old} to {area} from {since.date()}", change, by=by
    )
    if config is None:
        if since.date() <= today():
            typer.echo(
                "days from then to today already aggregated keep the old area until restated: "
                "run again with --config, or gumei aggregate backfill"
            )
        return
    from cloud.aggregate.moves import restate_after_move
    from cloud.influx import InfluxClient
    from cloud.settings import load_settings

    with InfluxClient(load_settings(config).influx_config("aggregate")) as influx:
        days = restate_after_move(influx, change, site_id, old, since.date())
    typer.echo(f"{days} stored day(s) marked for the aggregator to restate in {area} and {old}")


@registry_app.command("retire-device")
def retire_device(
    device_id: str, registry: RegistryOpt = reg_mod.DEFAULT_PATH, by: ByOpt = None
) -> None:
    """Retire a device: its readings are quarantined as soon as the workers reload (seconds)."""
    change = reg_mod.retire_device(reg_mod.load(registry), device_id)
    _change(registry, f"retired device {device_id}", change, by=by)


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
    stage: Annotated[
        bool,
        typer.Option(
            "--stage", help="a gateway: stage the new password (its bundle carries it) first"
        ),
    ] = False,
    grace: Annotated[
        str, typer.Option(help="with --stage: when gumei broker sync may switch (24h, 7d)")
    ] = "24h",
    commit: Annotated[
        bool, typer.Option("--commit", help="switch the broker to the staged password now")
    ] = False,
) -> None:
    """Give one identity a new password; every other credential stays byte-for-byte the same.

    A gateway rotates without downtime in two steps: --stage (install its new bundle, which has
    the staged password as mqtt-password.next), then --commit, or a gumei broker sync after the
    grace time: the gateway switches by itself when the broker refuses the old password.
    """
    import datetime as dt

    from broker.generate import commit_rotation, rotate_password, stage_rotation
    from gumei.cli.quarantine_cmds import parse_window

    if stage and commit:
        raise typer.BadParameter("--stage and --commit are two steps: one at a time")
    live = None if live_port is None else _admin_endpoint(out, live_host, live_port)
    done = (
        "applied live"
        if live
        else f"install {out / 'dynamic-security.json'} and restart mosquitto (docs/deploy.md)"
    )
    if stage:
        due = dt.datetime.now(dt.UTC) + parse_window(grace)
        stage_rotation(out, user, due)
        typer.echo(
            f"staged a new password for {user} (due {due:%Y-%m-%d %H:%M} UTC): make its bundle "
            f"(gumei gateway bundle {user} …) and install it; then --commit or gumei broker sync"
        )
        return
    if commit:
        commit_rotation(out, user, live)
        typer.echo(f"rotated {user} to its staged password; {done}")
        return
    rotate_password(out, user, live)
    typer.echo(f"rotated {user}: new password in {out / 'secrets' / 'mqtt.json'}; {done}")


@broker_app.command("sync")
def broker_sync(
    out: Annotated[Path, typer.Option(help="the directory gumei broker gen wrote")],
    registry: RegistryOpt = reg_mod.DEFAULT_PATH,
    live_host: LiveHostOpt = "localhost",
    live_port: LivePortOpt = 8883,
) -> None:
    """Bring the running broker's gateways to the registry (add new, remove retired), live; and
    switch the gateways whose staged password is due (gumei broker rotate --stage)."""
    import datetime as dt

    from broker.generate import commit_rotation, due_rotations

    typer.echo(f"broker: {_sync(reg_mod.load(registry), out, live_host, live_port)}")
    for user in due_rotations(out, dt.datetime.now(dt.UTC)):
        commit_rotation(out, user, _admin_endpoint(out, live_host, live_port))
        typer.echo(f"broker: rotated {user} to its staged password (due)")


def register(app: typer.Typer) -> None:
    """Add the registry and broker commands to the main app."""
    app.add_typer(registry_app, name="registry")
    app.add_typer(broker_app, name="broker")
