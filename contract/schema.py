"""Export the JSON Schema of every contract v1 message."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from contract.models import HealthBatch, Status, WasteBatch, WeighbridgeTickets

MESSAGES: dict[str, type[BaseModel]] = {
    "gumei.waste.readings.v1": WasteBatch,
    "gumei.health.measurements.v1": HealthBatch,
    "gumei.status.v1": Status,
    "gumei.weighbridge.tickets.v1": WeighbridgeTickets,
}


def schemas() -> dict[str, dict[str, object]]:
    """JSON Schema (draft 2020-12) of each message, keyed by its schema name."""
    out: dict[str, dict[str, object]] = {}
    for name, model in MESSAGES.items():
        schema = model.model_json_schema(by_alias=True)
        schema["$id"] = f"https://gumei.example/schema/{name}.json"
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        out[name] = schema
    return out


def export(directory: Path) -> list[Path]:
    """Write one <schema>.json per message into directory; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, schema in schemas().items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
        paths.append(path)
    return paths
