"""The site registry: areas, sites (waste stations, health huts) and their devices, kept as YAML."""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from contract.errors import first_error
from contract.models import ID_PATTERN, Category, MeasurementType, device_belongs

_log = logging.getLogger(__name__)
T = TypeVar("T")
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
    interface: Literal["serial", "modbus", "ble", "sim", "manual"] = "sim"  # manual: staff entry
    category: Category | None = None  # waste scales: the category it weighs
    also_categories: list[Category] = []  # a scale shared by several bins: the others it weighs
    type: MeasurementType | None = None  # health instruments
    capacity_kg: float | None = None
    # what the instrument is (health instruments: the FHIR Device of every export)
    model: Annotated[str, Field(max_length=64)] | None = None
    manufacturer: Annotated[str, Field(max_length=64)] | None = None
    serial: Annotated[str, Field(max_length=64)] | None = None
    retired: bool = False

    def allowed_categories(self) -> tuple[str, ...]:
        """The categories a reading of this scale may carry (anything else is a forgery or a bug)."""
        return tuple(
            c.value for c in ([self.category] if self.category else []) + self.also_categories
        )


class AreaSpan(_Model):
    """An area a site belonged to before a move: every day before `until` (a Shanghai date)."""

    area: Identifier
    until: dt.date


SiteKind = Literal["waste", "health", "weighbridge"]


class Site(_Model):
    """A waste station (WS-…), a smart health hut (HH-…) or a weighbridge (WB-…: a truck scale at a
    transfer station, sorting yard or disposal site), with one gateway.

    `area` is its area now; `area_history` the areas it had before, oldest first, each with the
    first day it no longer applied (`gumei registry move-site`), so past days keep their area in
    every roll-up and target.
    """

    id: Identifier
    kind: SiteKind
    area: Identifier
    name: str
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    devices: list[Device] = []
    retired: bool = False
    area_history: list[AreaSpan] = []

    def area_on(self, day: dt.date) -> str:
        """The site's area on a Shanghai day."""
        for span in self.area_history:
            if day < span.until:
                return span.area
        return self.area

    @model_validator(mode="after")
    def _history_in_order(self) -> Site:
        untils = [h.until for h in self.area_history]
        if any(b <= a for a, b in zip(untils, untils[1:], strict=False)):
            raise ValueError(f"site {self.id}: area_history must be oldest first, one move a day")
        return self

    @model_validator(mode="after")
    def _devices_belong(self) -> Site:
        for d in self.devices:
            if not device_belongs(d.id, self.id):
                raise ValueError(f"device {d.id} does not start with its site id {self.id}-")
            if self.kind == "waste" and d.category is None:
                raise ValueError(f"scale {d.id} needs a category")
            if self.kind == "health" and d.type is None:
                raise ValueError(f"instrument {d.id} needs a type")
            if self.kind == "health" and d.also_categories:
                raise ValueError(f"instrument {d.id} weighs no waste (also_categories)")
            if self.kind == "weighbridge" and (d.category or d.also_categories or d.type):
                raise ValueError(
                    f"weighbridge {d.id} weighs trucks of any category: no category or type"
                )
        return self

    @property
    def topic_kind(self) -> Literal["waste", "health"]:
        """The {kind} of this site's topics: a weighbridge publishes under waste (…/tickets)."""
        return "health" if self.kind == "health" else "waste"


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
            for area in (s.area, *(h.area for h in s.area_history)):
                if area not in area_ids:
                    raise ValueError(f"site {s.id} names unknown area {area}")
        for s in self.sites:
            if (s.kind == "health") != s.id.startswith("HH-"):
                raise ValueError(f"site {s.id}: health huts are HH-…, waste stations anything else")
            if (s.kind == "weighbridge") != s.id.startswith("WB-"):
                raise ValueError(f"site {s.id}: weighbridges are WB-…, and WB-… are weighbridges")
            parts = s.id.split("-")
            for i in range(1, len(parts)):
                if "-".join(parts[:i]) in seen:
                    raise ValueError(
                        f"site {s.id} starts with site id {'-'.join(parts[:i])}- (device ids would be ambiguous)"
                    )
        devices = [d.id for s in self.sites for d in s.devices]
        if len(set(devices)) != len(devices):
            dup = next(d for d in devices if devices.count(d) > 1)
            raise ValueError(f"duplicate device id {dup}")
        return self

    def site(self, site_id: str) -> Site | None:
        """The site with this id, or None."""
        return self.site_index().get(site_id)

    def site_index(self) -> dict[str, Site]:
        """Sites by id (built on each call; callers keep it)."""
        return {s.id: s for s in self.sites}

    def area_of(self, day: dt.date | None = None) -> dict[str, str]:
        """Site id -> area id, for every site: now, or on a Shanghai day (moves: area_history)."""
        if day is None:
            return {s.id: s.area for s in self.sites}
        return {s.id: s.area_on(day) for s in self.sites}

    def has_moves(self) -> bool:
        """Whether any site ever changed area (else one layout serves every day)."""
        return any(s.area_history for s in self.sites)


def kind_of_id(site_id: str) -> SiteKind:
    """A site's kind from its id: HH-… health hut, WB-… weighbridge, anything else waste station."""
    if site_id.startswith("HH-"):
        return "health"
    return "weighbridge" if site_id.startswith("WB-") else "waste"


def load(path: Path = DEFAULT_PATH) -> Registry:
    """Load and validate a registry file, raising RegistryError with one clear line."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RegistryError(f"cannot read registry {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise RegistryError(
            f"registry {path} is not valid YAML: {str(exc).splitlines()[0]}"
        ) from None
    try:
        return Registry.model_validate(doc)
    except ValidationError as exc:
        raise RegistryError(f"registry {path}: {first_error(exc)}") from None


def save(registry: Registry, path: Path) -> None:
    """Write a registry as YAML (ids sorted as given), atomically: a reader sees the old file or the new.

    A running worker, aggregator or API reloads the file when it changes (`LiveRegistry`); a
    half-written file would be refused by them, but is never seen: temp file, fsync, rename.
    """
    doc = registry.model_dump(mode="json", exclude_defaults=True)
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def log_change(path: Path, what: str, who: str, now: dt.datetime | None = None) -> None:
    """One line in <registry>.changes.log beside the registry: UTC time, who, what (appended, fsynced)."""
    when = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"{when}\t{who}\t{what}\n"
    log = path.with_name(path.name + ".changes.log")
    with open(log, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


class LiveRegistry:
    """The registry a long-running process uses, reloaded when its file changes; never a broken one.

    `current()` looks at the file's (mtime, size, inode) at most every `check_every_s` seconds;
    when they change it loads and validates the file. A file that does not load is refused with
    one line to `on_error` (once per version of the file) and the registry in use stays. `version`
    counts the registries taken (the first is 1), so a user can rebuild what it derives from it.
    Thread-safe.
    """

    def __init__(
        self,
        path: Path,
        check_every_s: float = 1.0,
        on_error: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._every = check_every_s
        self._on_error = on_error or (lambda msg: _log.error("%s", msg))
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._registry = load(path)  # the first must load: a process does not start on a bad file
        self._refused: tuple[int, int, int] | None = None
        self._checked = clock()
        self.version = 1

    @classmethod
    def fixed(cls, registry: Registry) -> LiveRegistry:
        """A registry that never changes (tests, benchmarks, tools)."""
        live = cls.__new__(cls)
        live.path = Path("-")
        live._every = float("inf")
        live._on_error = lambda _msg: None
        live._clock = time.monotonic
        live._lock = threading.Lock()
        live._stamp = (0, 0, 0)
        live._registry = registry
        live._refused = None
        live._checked = 0.0
        live.version = 1
        return live

    def _stat(self) -> tuple[int, int, int]:
        try:
            st = self.path.stat()
        except OSError:
            return (0, 0, 0)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def current(self) -> Registry:
        """The registry in use, after a reload if the file changed and is valid."""
        return self.snapshot()[1]

    def derive(self, make: Callable[[Registry], T]) -> Callable[[], T]:
        """A getter of make(registry), made anew only when the registry was reloaded; thread-safe."""
        lock = threading.Lock()
        made: list[tuple[int, T]] = []

        def get() -> T:
            version, registry = self.snapshot()
            with lock:
                if not made or made[0][0] != version:
                    made[:] = [(version, make(registry))]
                return made[0][1]

        return get

    def snapshot(self) -> tuple[int, Registry]:
        """(version, registry) taken together, after a reload if the file changed and is valid."""
        with self._lock:
            now = self._clock()
            if now - self._checked < self._every:
                return self.version, self._registry
            self._checked = now
            stamp = self._stat()
            if stamp in (self._stamp, self._refused):
                return self.version, self._registry
            try:
                registry = load(self.path)
            except RegistryError as exc:
                self._refused = stamp
                self._on_error(
                    f"registry change refused, still using version {self.version}: {exc}"
                )
                return self.version, self._registry
            self._stamp, self._registry, self._refused = stamp, registry, None
            self.version += 1
            _log.info("registry %s reloaded (version %d)", self.path, self.version)
            return self.version, registry


_ID_RE = re.compile(ID_PATTERN)


def _check_id(what: str, value: str) -> None:
    if not _ID_RE.match(value):
        raise RegistryError(
            f"bad {what} id {value!r}: ids are 1-64 of A-Z a-z 0-9 _ - and start with a letter or digit"
        )


def _rebuild(
    registry: Registry, areas: list[Area] | None = None, sites: list[Site] | None = None
) -> Registry:
    try:
        return Registry(
            areas=registry.areas if areas is None else areas,
            sites=registry.sites if sites is None else sites,
        )
    except ValidationError as exc:
        raise RegistryError(
            exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
        ) from None


def add_area(registry: Registry, area_id: str, name: str) -> Registry:
    """A registry with one more area; duplicate or bad ids are one-line RegistryErrors."""
    _check_id("area", area_id)
    if any(a.id == area_id for a in registry.areas):
        raise RegistryError(f"area {area_id} already exists")
    return _rebuild(registry, areas=[*registry.areas, Area(id=area_id, name=name)])


def add_site(
    registry: Registry, site_id: str, area: str, name: str, lat: float, lon: float
) -> Registry:
    """A registry with one more site (kind from the id: HH-… health hut, WB-… weighbridge, else
    waste station)."""
    _check_id("site", site_id)
    if (existing := registry.site(site_id)) is not None:
        raise RegistryError(
            f"site {site_id} already exists"
            + (" (retired; ids are never reused)" if existing.retired else "")
        )
    if all(a.id != area for a in registry.areas):
        raise RegistryError(f"unknown area {area!r}: add it first (gumei registry add-area)")
    kind = kind_of_id(site_id)
    try:
        site = Site(id=site_id, kind=kind, area=area, name=name, lat=lat, lon=lon)
    except ValidationError as exc:
        raise RegistryError(f"site {site_id}: {first_error(exc)}") from None
    return _rebuild(registry, sites=[*registry.sites, site])


def add_device(
    registry: Registry,
    device_id: str,
    interface: str = "sim",
    category: str | None = None,
    type_: str | None = None,
    capacity_kg: float | None = None,
) -> Registry:
    """A registry with one more device at the site its id starts with."""
    _check_id("device", device_id)
    owner = next((s for s in registry.sites if device_belongs(device_id, s.id)), None)
    if owner is None:
        raise RegistryError(
            f"device {device_id} does not start with a known site id and a dash (e.g. WS-0101-S5)"
        )
    if owner.retired:
        raise RegistryError(f"site {owner.id} is retired")
    if any(d.id == device_id for s in registry.sites for d in s.devices):
        raise RegistryError(f"device {device_id} already exists")
    if owner.kind == "weighbridge" and (category is not None or type_ is not None):
        raise RegistryError(
            f"{device_id} is the indicator of weighbridge {owner.id}: give neither --category nor --type"
        )
    if owner.kind == "waste" and (category is None or type_ is not None):
        raise RegistryError(
            f"{device_id} is a scale at waste station {owner.id}: give --category, not --type"
        )
    if owner.kind == "health" and (type_ is None or category is not None):
        raise RegistryError(
            f"{device_id} is an instrument at health hut {owner.id}: give --type, not --category"
        )
    try:
        device = Device(
            id=device_id,
            interface=interface,
            category=category,
            type=type_,
            capacity_kg=capacity_kg,
        )
    except ValidationError as exc:
        raise RegistryError(f"device {device_id}: {first_error(exc)}") from None
    sites = [
        s.model_copy(update={"devices": [*s.devices, device]}) if s.id == owner.id else s
        for s in registry.sites
    ]
    return _rebuild(registry, sites=sites)


def retire_site(registry: Registry, site_id: str) -> Registry:
    """The site marked retired (kept, so its history keeps its area; its gateway loses broker access)."""
    site = registry.site(site_id)
    if site is None:
        raise RegistryError(f"no site {site_id}")
    if site.retired:
        raise RegistryError(f"site {site_id} is already retired")
    return _rebuild(
        registry,
        sites=[
            s.model_copy(update={"retired": True}) if s.id == site_id else s for s in registry.sites
        ],
    )


def move_site(registry: Registry, site_id: str, area: str, since: dt.date) -> Registry:
    """The site in another area from the Shanghai day `since` on; days before keep the old one."""
    site = registry.site(site_id)
    if site is None:
        raise RegistryError(f"no site {site_id}")
    if site.retired:
        raise RegistryError(f"site {site_id} is retired")
    if all(a.id != area for a in registry.areas):
        raise RegistryError(f"unknown area {area!r}: add it first (gumei registry add-area)")
    if area == site.area:
        raise RegistryError(f"site {site_id} is in area {area} already")
    if site.area_history and since <= site.area_history[-1].until:
        last = site.area_history[-1].until
        raise RegistryError(f"site {site_id} moved on {last}; a later move must start after it")
    history = [*site.area_history, AreaSpan(area=site.area, until=since)]
    moved = site.model_copy(update={"area": area, "area_history": history})
    return _rebuild(registry, sites=[moved if s.id == site_id else s for s in registry.sites])


def retire_device(registry: Registry, device_id: str) -> Registry:
    """The device marked retired: its readings are quarantined from now on."""
    for s in registry.sites:
        for d in s.devices:
            if d.id == device_id:
                if d.retired:
                    raise RegistryError(f"device {device_id} is already retired")
                devices = [
                    x.model_copy(update={"retired": True}) if x.id == device_id else x
                    for x in s.devices
                ]
                return _rebuild(
                    registry,
                    sites=[
                        x.model_copy(update={"devices": devices}) if x.id == s.id else x
                        for x in registry.sites
                    ],
                )
    raise RegistryError(f"no device {device_id}")


# Gumei Road sub-district sits around 31.150 N, 121.400 E (Minhang, Shanghai).
_CENTER = (31.1505, 121.4020)
_HEALTH_TYPES = (
    "blood_pressure",
    "blood_glucose",
    "body_composition",
    "body_temperature",
    "pulse_oximetry",
)
_HEALTH_SUFFIX = {
    "blood_pressure": "BP",
    "blood_glucose": "GLU",
    "body_composition": "BC",
    "body_temperature": "TEMP",
    "pulse_oximetry": "SPO2",
}


def default_registry(areas: int = 40, seed: int = 20261127) -> Registry:
    """The realistic Gumei default: 40 areas, about 8 stations each (4 scales), one health hut."""
    rng = random.Random(seed)
    area_list = [
        Area(id=f"A{i:02d}", name=f"古美第{i}居民区 Gumei area {i}") for i in range(1, areas + 1)
    ]
    sites: list[Site] = []
    for i, area in enumerate(area_list, start=1):
        alat = _CENTER[0] + rng.uniform(-0.012, 0.012)
        alon = _CENTER[1] + rng.uniform(-0.014, 0.014)
        for j in range(1, rng.choice((6, 7, 8, 8, 9, 10)) + 1):
            sid = f"WS-{i:02d}{j:02d}"
            devices = [
                Device(
                    id=f"{sid}-S{k}",
                    interface="serial" if k % 2 else "modbus",
                    category=cat,
                    capacity_kg=240.0,
                )
                for k, cat in enumerate(Category, start=1)
            ]
            sites.append(
                Site(
                    id=sid,
                    kind="waste",
                    area=area.id,
                    name=f"{area.name.split()[0]} 投放点 {j}",
                    lat=round(alat + rng.uniform(-0.002, 0.002), 6),
                    lon=round(alon + rng.uniform(-0.002, 0.002), 6),
                    devices=devices,
                )
            )
    hut = Site(
        id="HH-01",
        kind="health",
        area="A01",
        name="古美社区智慧健康小屋 Smart health hut",
        lat=_CENTER[0],
        lon=_CENTER[1],
        devices=[
            Device(
                id=f"HH-01-{_HEALTH_SUFFIX[t]}",
                interface="ble",
                type=t,
                model=f"gumei-sim {_HEALTH_SUFFIX[t]}",  # firmware_sim/health: simulated instruments
                manufacturer="Gumei project (simulated)",
                serial=f"SIM-HH01-{_HEALTH_SUFFIX[t]}-0001",
            )
            for t in _HEALTH_TYPES
        ]
        + [
            Device(  # 身高体重秤 on RS-232 (edge/height_weight.py; firmware_sim/health/height_weight.py)
                id="HH-01-HW",
                interface="serial",
                type="height_weight",
                model="gumei-sim HW",
                manufacturer="Gumei project (simulated)",
                serial="SIM-HH01-HW-0001",
            ),
            Device(  # waist/hip by tape measure, entered by health staff
                id="HH-01-TAPE", interface="manual", type="body_circumference"
            ),
        ],
    )
    return Registry(areas=area_list, sites=[*sites, hut])
