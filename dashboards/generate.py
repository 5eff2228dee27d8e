"""Build every dashboard with grafana-foundation-sdk and write the JSON, gazetteer and provisioning files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from cloud import registry
from dashboards import influxql, ops, waste
from dashboards.alerting import write_alerting
from dashboards.provisioning import write_provisioning

PACKAGE_DIR = Path(__file__).resolve().parent
JSON_DIR = PACKAGE_DIR / "json"
PROVISIONING_DIR = PACKAGE_DIR / "provisioning"
GAZETTEER_PATH = PACKAGE_DIR / "gazetteer" / "gumei-sites.json"

BUILDERS: dict[str, Callable[[], dm.Dashboard]] = {
    "waste-overview": waste.overview,
    "station": waste.station,
    "health-hut": ops.health,
    "fleet": ops.fleet,
}


def to_json(d: dm.Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (plain dicts, lists and scalars)."""
    doc: dict[str, Any] = json.loads(json.dumps(d, cls=JSONEncoder))
    return doc


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard's JSON model, by file stem."""
    influxql.register()
    return {name: to_json(build()) for name, build in BUILDERS.items()}


def dump(doc: dict[str, Any]) -> str:
    """Stable JSON text: sorted keys, Chinese kept readable, trailing newline."""
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def gazetteer(reg: registry.Registry) -> list[dict[str, Any]]:
    """Grafana gazetteer entries (key, latitude, longitude, name) for every active site."""
    return [
        {"key": s.id, "latitude": s.lat, "longitude": s.lon, "name": f"{s.name} ({s.area})"}
        for s in reg.sites
        if not s.retired
    ]


def generate(
    out_dir: Path = JSON_DIR,
    provisioning_dir: Path | None = PROVISIONING_DIR,
    gazetteer_path: Path | None = GAZETTEER_PATH,
    registry_path: Path = registry.DEFAULT_PATH,
) -> list[Path]:
    """Write <out_dir>/<name>.json per dashboard, plus provisioning files and the sites gazetteer."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, doc in dashboards().items():
        path = out_dir / f"{name}.json"
        path.write_text(dump(doc), encoding="utf-8")
        written.append(path)
    if provisioning_dir is not None:
        written += write_provisioning(provisioning_dir)
        written += write_alerting(provisioning_dir)
    if gazetteer_path is not None:
        gazetteer_path.parent.mkdir(parents=True, exist_ok=True)
        entries = gazetteer(registry.load(registry_path))
        gazetteer_path.write_text(
            json.dumps(entries, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
        written.append(gazetteer_path)
    return written


def load(json_dir: Path = JSON_DIR) -> dict[str, dict[str, Any]]:
    """The committed dashboard JSON files, by file stem."""
    return {
        p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(json_dir.glob("*.json"))
    }
