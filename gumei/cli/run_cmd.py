"""`gumei run`: the whole pipeline with simulated devices, on local defaults, until Ctrl-C."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer

from broker.dynsec import worker_name
from cloud import registry as registry_mod
from cloud.days import today
from devstack.services import free_port
from devstack.stack import LocalStack
from runtime.system import ServiceError

PROJECT = Path(__file__).resolve().parents[2]
ONE_SHOT: set[str] = set()  # children allowed to finish and exit 0 (none: the hut stays online)
DEMO_OFFLINE_MINUTES = 1  # the demo's gateway_offline delay (production: 10, [ops] offline_minutes)
DEMO_KILL_AFTER_S = 90  # the demo's killed gateway is cut off this long after the fleet starts
DEMO_FILL_S = 60  # the demo's filling bin takes this long once the fleet's clock caught up


def run(
    run_dir: Annotated[
        Path, typer.Option(help="where the broker, database, logs and secrets live")
    ] = PROJECT / "run",
    registry: Annotated[Path, typer.Option(help="site registry YAML")] = registry_mod.DEFAULT_PATH,
    api_port: Annotated[
        int | None,
        typer.Option(
            help="API port (default 8000, or a free one when 8000 is taken; 0 = a free one)"
        ),
    ] = None,
    warp: Annotated[
        float,
        typer.Option(min=1, help="simulated seconds per wall second until the fleet catches up"),
    ] = 240.0,
    aggregate_every: Annotated[
        float, typer.Option(min=1, help="seconds between aggregation runs")
    ] = 10.0,
    fresh: Annotated[bool, typer.Option(help="delete the previous run's data first")] = False,
    seconds: Annotated[
        float, typer.Option(help="stop by itself after this many seconds (0 = until Ctrl-C)")
    ] = 0,
    transfer: Annotated[
        bool,
        typer.Option(
            help="a simulated transfer station with a weighbridge (WB-01, added to the demo's own "
            "copy of the registry when it has none) whose trucks collect the stations' bins"
        ),
    ] = True,
    demo_events: Annotated[
        bool,
        typer.Option(
            help="raise real operations events: one bin fills past 90 % and one gateway is cut "
            f"off (its Last Will; gateway_offline after {DEMO_OFFLINE_MINUTES} min here, 10 in "
            "production)"
        ),
    ] = True,
    inspections: Annotated[
        bool,
        typer.Option(
            help="seed demo inspections (`gumei inspections seed`) into the records database, so "
            "sorting effectiveness comes from inspections"
        ),
    ] = True,
) -> None:
    """Start broker, InfluxDB, ingestion, aggregator, API and the simulated fleet; stop them on Ctrl-C."""
    reg = registry_mod.load(registry)
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    wb = None
    if transfer:
        reg, registry, wb = _with_weighbridge(reg, registry, run_dir)
    stack = LocalStack(run_dir, reg)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        typer.echo("starting Mosquitto and influxd ...")
        stack.start()
        port = _api_port(api_port)
        config = stack.write_cloud_config(
            registry.resolve(), extra=f"api_port = {port}\naggregate_interval_s = {aggregate_every}"
        )
        demo = _demo_subjects(reg) if demo_events else None
        if demo:
            with config.open("a", encoding="utf-8") as f:
                f.write(f"\n[ops]\noffline_minutes = {DEMO_OFFLINE_MINUTES}\n")
        token = stack.tokens().create("demo operator", "operator")
        seeded = _seed_inspections(stack, reg, config) if inspections else 0
        assert stack.mosquitto is not None and stack.influxd is not None
        stack.spawn("ingest", "ingest", "--config", str(config), "--name", worker_name(1))
        stack.spawn("aggregate", "aggregate", "loop", "--config", str(config))
        stack.spawn("api", "api", "--config", str(config))
        stack.spawn("ops", "ops", "loop", "--config", str(config), "--interval", "15")
        stack.spawn(
            "fleet",
            "sim",
            "fleet",
            "--port",
            str(stack.endpoint(worker_name(1)).port),
            "--secrets",
            str(run_dir / "secrets" / "mqtt.json"),
            *(["--ca-file", str(stack.ca_file)] if stack.ca_file else []),
            "--registry",
            str(registry.resolve()),
            "--warp",
            str(warp),
            *(["--transfer", wb] if wb else []),
            *(
                [
                    "--fill-bin",
                    demo[0],
                    "--fill-seconds",
                    str(DEMO_FILL_S),
                    "--kill-gateway",
                    demo[1],
                    "--kill-after",
                    str(DEMO_KILL_AFTER_S),
                ]
                if demo
                else []
            ),
        )
        hut = next((s.id for s in reg.sites if s.kind == "health" and not s.retired), None)
        if hut:
            stack.spawn(
                "health-hut",
                "sim",
                "health",
                "--port",
                str(stack.endpoint(hut).port),
                "--secrets",
                str(run_dir / "secrets" / "mqtt.json"),
                "--site",
                hut,
                "--district-key-file",
                str(_district_key(run_dir)),
                "--queue",
                str(run_dir / "hut-queue.sqlite"),
                "--stay",
                *(["--ca-file", str(stack.ca_file)] if stack.ca_file else []),
            )
        health_token = stack.tokens().create("demo health staff", "health")
        _wait_for_api(port, stack, stop)
        waste = sum(1 for s in reg.sites if s.kind == "waste")
        day = today().isoformat()
        typer.echo(
            f"""
Gumei pipeline running: {waste} waste stations in {len(reg.areas)} areas (simulated), logs in {run_dir / "logs"}
  API        http://127.0.0.1:{port}/api/v1/waste/daily?start={day}&end={day}
  token      {token}
  try        curl -H 'Authorization: Bearer {token}' 'http://127.0.0.1:{port}/api/v1/waste/daily?start={day}&end={day}'
  health     token {health_token} (per-resident routes: /api/v1/health/…; hut {hut or "none"}: simulated visits once, then it stays online)
  events     curl -H 'Authorization: Bearer {token}' 'http://127.0.0.1:{port}/api/v1/ops/events?state=active' (printed below as they open and resolve)
  API docs   http://127.0.0.1:{port}/docs
  InfluxDB   {stack.influxd.url}  databases {stack.influxd.database} (Grafana's: user gumei_grafana, read only) and {stack.influx_config().health_database} (per-resident)
             service users' passwords in {run_dir / "secrets" / "influx.json"} (the admin's is not in any config)
  MQTT       TLS 127.0.0.1:{stack.mosquitto.tls_port} (CA {stack.ca_file}; per-identity passwords, bound client ids, ACLs)
  Grafana    provisioning files in {PROJECT / "dashboards"} (see README)
Press Ctrl-C to stop."""
        )
        if wb:
            typer.echo(
                f"  transfer station: weighbridge {wb} weighs the trucks collecting the bins"
            )
        if demo:
            typer.echo(
                f"  demo events: bin {demo[0]} fills past 90 % within {DEMO_FILL_S} s once the "
                f"simulated clock has caught up (bin_full); gateway {demo[1]} is cut off after "
                f"{DEMO_KILL_AFTER_S} s, its Last Will marks it offline (gateway_offline after "
                f"{DEMO_OFFLINE_MINUTES} min, the demo's delay; 10 min in production)"
            )
        if seeded:
            typer.echo(
                f"  inspections: {seeded} seeded checks over the last 28 days (records database)"
            )
        _report(port, token, stack, stop, seconds)
    finally:
        typer.echo("stopping ...")
        stack.stop()
        typer.echo("stopped.")


def _with_weighbridge(
    reg: registry_mod.Registry, path: Path, run_dir: Path
) -> tuple[registry_mod.Registry, Path, str]:
    """The registry with a weighbridge: the given one if it has one, else a copy with WB-01 (the
    demo's transfer station, in the first area) written to run_dir (config/sites.yaml stays as
    it is)."""
    found = next((s.id for s in reg.sites if s.kind == "weighbridge" and s.devices), None)
    if found:
        return reg, path, found
    site = "WB-01"
    reg = registry_mod.add_site(
        reg, site, reg.areas[0].id, "古美转运站地磅 Gumei transfer station", 31.1472, 121.3958
    )
    reg = registry_mod.add_device(reg, f"{site}-B1", "serial")
    run_dir.mkdir(parents=True, exist_ok=True)
    copy = run_dir / "sites-with-transfer.yaml"
    registry_mod.save(reg, copy)
    return reg, copy.resolve(), site


def _demo_subjects(reg: registry_mod.Registry) -> tuple[str, str] | None:
    """The demo's filling bin (the first waste station's first scale) and killed gateway (the
    last waste station, another one); None without two waste stations with scales."""
    stations = [
        s
        for s in reg.sites
        if s.kind == "waste"
        and not s.retired
        and any(d.category and not d.retired for d in s.devices)
    ]
    if len(stations) < 2:
        return None
    scale = next(d.id for d in stations[0].devices if d.category and not d.retired)
    return scale, stations[-1].id


def _seed_inspections(stack: LocalStack, reg: registry_mod.Registry, config: Path) -> int:
    """The seeded demo inspections (cloud/inspections/demo.py, as `gumei inspections seed`),
    written as the API's identity (the one that writes inspections); return how many."""
    import datetime as dt

    from cloud.influx import InfluxClient
    from cloud.inspections.demo import demo_records
    from cloud.inspections.demo import seed as write
    from cloud.inspections.places import load_places
    from cloud.settings import load_settings

    s = load_settings(config)
    records = demo_records(
        reg,
        load_places(s.inspections.places),
        dt.datetime.now(dt.UTC),
        pass_score=s.inspections.pass_score,
    )
    with InfluxClient(stack.influx_config("api")) as influx:
        return write(influx, records)


def _targets_line(http: httpx.Client, day: str) -> str:
    """Today's three targets with the source of each figure, in one line."""
    try:
        r = http.get("/api/v1/waste/targets", params={"date": day})
        if r.status_code == 404:
            return "  targets: not computed yet"
        t = r.json()
        rec, dry, srt = t["recyclables"], t["dry_waste"], t["sorting"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return f"  (targets not answering: {exc})"
    change = dry.get("change_pct")
    dry_text = (
        f"dry {dry['tonnes_per_day']:.3f} t/day, no reference yet"
        if change is None
        else f"dry {change:+.1f}% vs {dry['reference']}"
    )
    gap = rec.get("gap_tonnes")
    return (
        f"  targets: recyclables {rec['tonnes']:.3f} t [{rec.get('source')}]"
        + (
            f" (scales {rec.get('station_scales_tonnes'):.3f} t, gap {gap:+.3f} t)"
            if gap is not None
            else ""
        )
        + f"; {dry_text} [{dry.get('source')}]"
        + f"; sorting {srt['pct']:.1f}%"
        + f" ({srt['areas_meeting']}/{srt['areas']}"
        + f" {'places' if srt.get('source') == 'inspections' else 'areas'})"
        + f" [{srt.get('source')}]"
    )


def _sorting_line(http: httpx.Client, day: str) -> str:
    """Today's areas: the scales' sorting standard against the latest inspection."""
    try:
        r = http.get("/api/v1/waste/sorting-comparison", params={"start": day, "end": day})
        rows = r.json()["rows"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return f"  (sorting comparison not answering: {exc})"
    inspected = [x for x in rows if x["inspected"]]
    disagree = [x["area"] for x in inspected if x["disagree"]]
    return (
        f"  sorting by area: scales meet the standard in {sum(x['scale_meets'] for x in rows)}"
        f" of {len(rows)} areas; inspections pass {sum(bool(x['inspection_passed']) for x in inspected)}"
        f" of {len(inspected)} inspected; they disagree in {len(disagree)}"
        + (f" ({', '.join(disagree[:8])}{' …' if len(disagree) > 8 else ''})" if disagree else "")
    )


def _api_port(requested: int | None) -> int:
    """The requested port; by default 8000 unless something listens there, then a free one."""
    if requested is not None:
        return requested or free_port()
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 8000))
        except OSError:
            return free_port()
    return 8000


def _district_key(run_dir: Path) -> Path:
    """The demo's district key for resident pseudonyms (hex, 0600), made once."""
    path = run_dir / "secrets" / "district.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32) + "\n")
        os.chmod(path, 0o600)
    return path


def _check_children(stack: LocalStack) -> None:
    """Fail with the child's log when a long-running child exited."""
    for name, proc in stack.processes:
        code = proc.poll()
        if code is not None and not (name in ONE_SHOT and code == 0):
            raise ServiceError(f"{name} exited with {code}:\n{stack.log_of(name)}")


def _wait_for_api(port: int, stack: LocalStack, stop: threading.Event) -> None:
    deadline = time.monotonic() + 60
    while not stop.is_set() and time.monotonic() < deadline:
        _check_children(stack)
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except httpx.TransportError:
            stop.wait(0.2)
    if not stop.is_set():
        raise ServiceError(f"API did not start:\n{stack.log_of('api')}")


def _report(
    port: int, token: str, stack: LocalStack, stop: threading.Event, seconds: float
) -> None:
    """Print a one-line summary of today's rows every 10 s; watch the child processes."""
    started = time.monotonic()
    seen: dict[str, str] = {}
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ) as http:
        while not stop.wait(10):
            _check_children(stack)
            day = today().isoformat()
            try:
                rows = http.get("/api/v1/waste/daily", params={"start": day, "end": day}).json()[
                    "rows"
                ]
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                typer.echo(f"  (API not answering: {exc})")
                continue
            by_cat: dict[str, float] = {}
            for r in rows:
                by_cat[r["category"]] = by_cat.get(r["category"], 0) + r["tonnes"]
            summary = (
                ", ".join(f"{c} {t:.3f} t" for c, t in sorted(by_cat.items())) or "no rows yet"
            )
            typer.echo(f"  {day}: {len(rows)} rows; {summary}")
            _print_events(http, seen)
            typer.echo(_targets_line(http, day))
            typer.echo(_sorting_line(http, day))
            if seconds and time.monotonic() - started >= seconds:
                return


def _print_events(http: httpx.Client, seen: dict[str, str]) -> None:
    """Print operations events that opened, were acknowledged or resolved since the last call."""
    try:
        events = http.get("/api/v1/ops/events", params={"limit": 1000}).json()["events"]
    except (httpx.HTTPError, ValueError, KeyError):
        return
    for ev in reversed(events):  # oldest first
        if seen.get(ev["id"]) == ev["state"]:
            continue
        seen[ev["id"]] = ev["state"]
        typer.echo(
            f"  event {ev['state'].upper():<12} {ev['title']} {ev['subject']} "
            f"({ev['severity']}, for {ev['audience']}; value {ev['value']:.4g})"
        )
