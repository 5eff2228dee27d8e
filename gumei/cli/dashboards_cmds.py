"""Dashboard commands: generate the JSON and provisioning files, push them to a Grafana, render PNGs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from cloud import registry
from cloud.days import SHANGHAI

dashboards_app = typer.Typer(
    no_args_is_help=True, help="Grafana dashboards as code: generate, push, render."
)
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="cloud TOML config (its [influx] section; GUMEI_* env overrides)"
    ),
]


def _json_dir() -> Path:
    from dashboards.generate import JSON_DIR

    return JSON_DIR


@dashboards_app.command("generate")
def generate(
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="where the dashboard JSON goes (default dashboards/json)"),
    ] = None,
    provisioning_dir: Annotated[
        Path | None,
        typer.Option(
            "--provisioning",
            help="where the provisioning YAML goes (default dashboards/provisioning)",
        ),
    ] = None,
    gazetteer: Annotated[
        Path | None,
        typer.Option(
            help="where the sites gazetteer goes (default dashboards/gazetteer/gumei-sites.json)"
        ),
    ] = None,
    registry_path: Annotated[
        Path, typer.Option("--registry", "-r", help="site registry YAML (station coordinates)")
    ] = registry.DEFAULT_PATH,
) -> None:
    """Write every dashboard's JSON, the Grafana provisioning files and the map gazetteer."""
    from dashboards import generate as gen

    written = gen.generate(
        out_dir=out_dir or gen.JSON_DIR,
        provisioning_dir=provisioning_dir or gen.PROVISIONING_DIR,
        gazetteer_path=gazetteer or gen.GAZETTEER_PATH,
        registry_path=registry_path,
    )
    for path in written:
        typer.echo(str(path))


def _positive(value: float) -> float:
    if value <= 0:
        raise typer.BadParameter("must be greater than 0")
    return value


@dashboards_app.command("push")
def push(
    url: Annotated[
        str,
        typer.Option(
            "--url", envvar="GUMEI_GRAFANA_URL", help="Grafana base URL, e.g. http://grafana:3000"
        ),
    ],
    token: Annotated[
        str,
        typer.Option(
            "--token",
            envvar="GUMEI_GRAFANA_TOKEN",
            help="Grafana service-account token (Editor or Admin)",
            show_default=False,
        ),
    ],
    config: ConfigOpt = None,
    influx_url: Annotated[
        str | None,
        typer.Option(help="InfluxDB URL as Grafana reaches it (default: the config's influx.url)"),
    ] = None,
    json_dir: Annotated[
        Path | None,
        typer.Option("--json-dir", help="dashboard JSON to push (default dashboards/json)"),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="replace dashboards even if they changed in Grafana since read"
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="seconds per HTTP request", callback=_positive)
    ] = 10.0,
) -> None:
    """Create or update the InfluxDB data source, the Gumei folder and every dashboard, by uid."""
    from cloud.settings import load_settings
    from dashboards.push import push as do_push

    if not url.startswith(("http://", "https://")):
        raise typer.BadParameter(f"{url!r} is not an http:// or https:// URL", param_hint="--url")
    if not token.strip():
        raise typer.BadParameter("empty token", param_hint="--token")
    s = load_settings(config).influx
    grafana = s.credential("grafana")  # read-only, main database only (cloud/influx_grants.py)
    if not s.grafana.is_set and s.auth != "none":
        typer.echo(
            "warning: no [influx.grafana] credential: the data source gets the top-level InfluxDB identity; "
            "create the read-only user with `gumei influx grants`",
            err=True,
        )
    result = do_push(
        url,
        token,
        influx_url or s.url,
        influx_database=s.database,
        influx_auth=s.auth,
        influx_user=grafana.username,
        influx_password=grafana.password,
        influx_token=grafana.token,
        json_dir=json_dir or _json_dir(),
        overwrite=overwrite,
        timeout=timeout,
    )
    typer.echo(f"Grafana {result.grafana_version} at {url.rstrip('/')}")
    typer.echo(f"data source: {result.datasource}")
    typer.echo(f"folder: {result.folder}")
    for uid, what in result.dashboards.items():
        typer.echo(f"dashboard {uid}: {what}")


def _variables(items: list[str]) -> dict[str, str | list[str]]:
    out: dict[str, str | list[str]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value:
            raise typer.BadParameter(f"{item!r} is not NAME=VALUE[,VALUE…]", param_hint="--var")
        values = [v for v in value.split(",") if v]
        out[name.strip()] = values if len(values) > 1 else values[0]
    return out


def _epoch_ms(when: dt.datetime | None) -> int | None:
    if when is None:
        return None
    return int((when if when.tzinfo else when.replace(tzinfo=SHANGHAI)).timestamp() * 1000)


TIME_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"]


@dashboards_app.command("render")
def render(
    config: ConfigOpt = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="where the PNGs go (default docs/img)")
    ] = None,
    var: Annotated[
        list[str] | None,
        typer.Option(
            "--var", help="template variable NAME=VALUE[,VALUE…] (repeatable); unset ones are All"
        ),
    ] = None,
    start: Annotated[
        dt.datetime | None,
        typer.Option(
            "--from",
            formats=TIME_FORMATS,
            help="range start, Asia/Shanghai (default: each dashboard's own range)",
        ),
    ] = None,
    end: Annotated[
        dt.datetime | None,
        typer.Option("--to", formats=TIME_FORMATS, help="range end, Asia/Shanghai (default: now)"),
    ] = None,
) -> None:
    """Draw each dashboard as a PNG from the same expanded queries Grafana runs, over the configured InfluxDB."""
    from cloud.influx import InfluxClient
    from cloud.settings import load_settings
    from dashboards import render as rnd

    variables = _variables(var or [])
    time_from, time_to = _epoch_ms(start), _epoch_ms(end)
    if time_from is not None and time_to is not None and time_to <= time_from:
        raise typer.BadParameter("--to is not after --from")
    s = load_settings(config)
    if rnd.cjk_font() is None:
        typer.echo(
            "note: no CJK font found (Debian: apt-get install fonts-wqy-microhei); labels keep only their English half",
            err=True,
        )
    with InfluxClient(s.influx_config("grafana")) as client:  # what Grafana's data source may read
        written = rnd.render(client, out_dir or rnd.DOCS_IMG, variables, time_from, time_to)
    for path in written:
        typer.echo(str(path))


def register(app: typer.Typer) -> None:
    """Add `gumei dashboards …` to the main app."""
    app.add_typer(dashboards_app, name="dashboards")
