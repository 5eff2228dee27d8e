"""The site registry: areas, sites (waste stations, health huts) and their devices, kept as YAML."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from contract.models import ID_PATTERN, Category, MeasurementType, device_belongs

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "config" / "sites.yaml"
Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


class RegistryError(ValueError):
    """The registry file is missing, malformed, or inconsistent (one line says what)."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Area(_Model):
    """A residential area (居民区)."""

    id: Identifier
    name: str


class Device(_Model):
    """One scale or health instrument attached to a gateway."""

    id: Identifier
    interface: Literal["serial", "modbus", "ble", "sim"] = "sim"
    category: Category | None = None  # waste scales
    type: MeasurementType | None = None  # health instruments
    capacity_kg: float | None = None
    retired: bool = False


class Site(_Model):
    """A waste station (WS-…) or a smart health hut (HH-…), with one gateway."""

    id: Identifier
    kind: Literal["waste", "health"]
    area: Identifier
    name: str
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    devices: list[Device] = []
    retired: bool = False

    @model_validator(mode="after")
    def _devices_belong(self) -> Site:
        for d in self.devices:
            if not device_belongs(d.id, self.id):
                raise ValueError(f"device {d.id} does not start with its site id {self.id}-")
            if self.kind == "waste" and d.category is None:
                raise ValueError(f"scale {d.id} needs a category")
            if self.kind == "health" and d.type is None:
                raise ValueError(f"instrument {d.id} needs a type")
        return self


class Registry(_Model):
    """All areas and sites; validated for unique ids and known areas."""

    areas: list[Area]
    sites: list[Site]

    @model_validator(mode="after")
    def _consistent(self) -> Registry:
        area_ids = [a.id for a in self.areas]
        if len(set(area_ids)) != len(area_ids):
            raise ValueError("duplicate area id")
        seen: set[str] = set()
        for s in self.sites:
            if s.id in seen:
                raise ValueError(f"duplicate site id {s.id}")
            seen.add(s.id)
            if s.area not in area_ids:
                raise ValueError(f"site {s.id} names unknown area {s.area}")
        devices = [d.id for s in self.sites for d in s.devices]
        if len(set(devices)) != len(devices):
            raise ValueError("duplicate device id")
        return self

    def site(self, site_id: str) -> Site | None:
        """The site with this id, or None."""
        return self.site_index().get(site_id)

    def site_index(self) -> dict[str, Site]:
        """Sites by id (built on each call; callers keep it)."""
        return {s.id: s for s in self.sites}

    def area_of(self) -> dict[str, str]:
        """Site id -> area id, for every site."""
        return {s.id: s.area for s in self.sites}


def load(path: Path = DEFAULT_PATH) -> Registry:
    """Load and validate a registry file, raising RegistryError with one clear line."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RegistryError(f"cannot read registry {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise RegistryError(f"registry {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    try:
        return Registry.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise RegistryError(f"registry {path}: {loc + ': ' if loc else ''}{err['msg']}") from None


def save(registry: Registry, path: Path) -> None:
    """Write a registry as YAML (ids sorted as given)."""
    doc = registry.model_dump(mode="json", exclude_defaults=True)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


# Gumei Road sub-district sits around 31.150 N, 121.400 E (Minhang, Shanghai).
_CENTER = (31.1505, 121.4020)
_HEALTH_TYPES = ("blood_pressure", "blood_glucose", "body_composition", "body_temperature", "pulse_oximetry")
_HEALTH_SUFFIX = {"blood_pressure": "BP", "blood_glucose": "GLU", "body_composition": "BC",
                  "body_temperature": "TEMP", "pulse_oximetry": "SPO2"}


def default_registry(areas: int = 40, seed: int = 20261127) -> Registry:
    """The realistic Gumei default: 40 areas, about 8 stations each (4 scales), one health hut."""
    rng = random.Random(seed)
    area_list = [Area(id=f"A{i:02d}", name=f"古美第{i}居民区 Gumei area {i}") for i in range(1, areas + 1)]
    sites: list[Site] = []
    for i, area in enumerate(area_list, start=1):
        alat = _CENTER[0] + rng.uniform(-0.012, 0.012)
        alon = _CENTER[1] + rng.uniform(-0.014, 0.014)
        for j in range(1, rng.choice((6, 7, 8, 8, 9, 10)) + 1):
            sid = f"WS-{i:02d}{j:02d}"
            devices = [
                Device(id=f"{sid}-S{k}", interface="serial" if k % 2 else "modbus", category=cat, capacity_kg=240.0)
                for k, cat in enumerate(Category, start=1)
            ]
            sites.append(
                Site(id=sid, kind="waste", area=area.id, name=f"{area.name.split()[0]} 投放点 {j}",
                     lat=round(alat + rng.uniform(-0.002, 0.002), 6),
                     lon=round(alon + rng.uniform(-0.002, 0.002), 6), devices=devices)
            )
    hut = Site(
        id="HH-01", kind="health", area="A01", name="古美社区智慧健康小屋 Smart health hut",
        lat=_CENTER[0], lon=_CENTER[1],
        devices=[Device(id=f"HH-01-{_HEALTH_SUFFIX[t]}", interface="ble", type=t) for t in _HEALTH_TYPES],
    )
    return Registry(areas=area_list, sites=[*sites, hut])
