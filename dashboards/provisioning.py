"""Grafana provisioning: the InfluxDB (InfluxQL) data source for 1.x or 2.x/3.x, and the dashboard provider."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml

from dashboards.influxql import DATASOURCE_NAME, DATASOURCE_TYPE, DATASOURCE_UID

FOLDER_UID = "gumei"
FOLDER_TITLE = "古美社区 Gumei"
MIN_INTERVAL = "10s"  # gateways report status and workers write stats about every 10 s

Auth = Literal["basic", "token", "none"]


def datasource_model(
    url: str,
    database: str = "gumei",
    auth: Auth = "basic",
    user: str = "",
    password: str = "",
    token: str = "",
) -> dict[str, Any]:
    """The data source as Grafana's HTTP API and provisioning files take it (InfluxQL mode).

    basic: InfluxDB 1.x user/password. token: InfluxDB 2.x/3.x v1-compat API via `Authorization: Token …`.
    jsonData.dbName is set because Grafana's InfluxDB frontend reads it before `database`.
    """
    model: dict[str, Any] = {
        "uid": DATASOURCE_UID,
        "name": DATASOURCE_NAME,
        "type": DATASOURCE_TYPE,
        "access": "proxy",
        "url": url,
        "database": database,
        "isDefault": False,
        "jsonData": {
            "dbName": database,
            "httpMode": "POST",
            "timeInterval": MIN_INTERVAL,
            "version": "InfluxQL",
        },
        "secureJsonData": {},
    }
    if auth == "basic":
        model["user"] = user
        model["secureJsonData"]["password"] = password
    elif auth == "token":
        model["jsonData"]["httpHeaderName1"] = "Authorization"
        model["secureJsonData"]["httpHeaderValue1"] = f"Token {token}"
    return model


def _datasource_file(auth: Auth, comment: str) -> str:
    env = {
        "basic": {"user": "$INFLUXDB_USER", "password": "$INFLUXDB_PASSWORD"},
        "token": {"token": "$INFLUXDB_TOKEN"},
    }
    model = datasource_model("$INFLUXDB_URL", "$INFLUXDB_DB", auth, **env.get(auth, {}))
    model["editable"] = False
    doc = {"apiVersion": 1, "datasources": [model]}
    return comment + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def provider_file(dashboards_path: str = "/var/lib/grafana/dashboards/gumei") -> str:
    """The file provider that loads the generated JSON into the Gumei folder."""
    doc = {
        "apiVersion": 1,
        "providers": [
            {
                "name": "gumei",
                "orgId": 1,
                "folder": FOLDER_TITLE,
                "folderUid": FOLDER_UID,
                "type": "file",
                "disableDeletion": False,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 60,
                "options": {"path": dashboards_path, "foldersFromFilesStructure": False},
            }
        ],
    }
    head = (
        "# Copy to <grafana>/provisioning/dashboards/ and dashboards/json/*.json to options.path.\n"
    )
    return head + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def write_provisioning(out: Path) -> list[Path]:
    """Write datasources/ (1.x), datasources-token/ (2.x/3.x) and dashboards/ provisioning files."""
    files = {
        out / "datasources" / "gumei-influxdb.yaml": _datasource_file(
            "basic",
            "# InfluxDB 1.x (user/password). Copy to <grafana>/provisioning/datasources/.\n"
            "# Grafana expands $INFLUXDB_URL, $INFLUXDB_DB, $INFLUXDB_USER, $INFLUXDB_PASSWORD from its environment.\n"
            "# $INFLUXDB_USER is the read-only Grafana user ([influx.grafana], default gumei_grafana: READ on the\n"
            "# main database only, created by `gumei influx grants`), never a service's or the admin's; $INFLUXDB_DB is\n"
            "# the main database (gumei), never the health database.\n",
        ),
        out / "datasources-token" / "gumei-influxdb.yaml": _datasource_file(
            "token",
            "# InfluxDB 2.x/3.x through the v1-compatible InfluxQL API (bucket = database, DBRP mapped).\n"
            "# Use INSTEAD of datasources/gumei-influxdb.yaml (same uid): copy to <grafana>/provisioning/datasources/.\n"
            "# Grafana expands $INFLUXDB_URL, $INFLUXDB_DB, $INFLUXDB_TOKEN from its environment.\n"
            "# $INFLUXDB_TOKEN: a read-only token scoped to the main bucket only (docs/deploy.md), never the health bucket.\n",
        ),
        out / "dashboards" / "gumei.yaml": provider_file(),
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)
