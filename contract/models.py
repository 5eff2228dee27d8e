"""Typed models of the v1 device-to-cloud wire contract (docs/contract.md)."""

from __future__ import annotations

import math
import time
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
RESIDENT_PATTERN = r"^r-[0-9a-f]{32}$"
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_BATCH = 1000
MAX_NET_KG = 500.0
FUTURE_TOLERANCE_MS = 5 * 60 * 1000

WASTE_SCHEMA: Final = "gumei.waste.readings.v1"
HEALTH_SCHEMA: Final = "gumei.health.measurements.v1"
STATUS_SCHEMA: Final = "gumei.status.v1"
TICKETS_SCHEMA: Final = "gumei.weighbridge.tickets.v1"
# A Chinese plate: province character, letter, 5 (6 for new-energy) letters/digits, the last may be
# a character such as 挂 or 学. Letters are upper case (the gateway normalises operator input).
PLATE_PATTERN = "^[\u4e00-\u9fa5][A-Z][A-Z0-9]{4,5}[A-Z0-9\u4e00-\u9fa5]$"
PLACE_PATTERN = "^[0-9A-Za-z\u4e00-\u9fa5][0-9A-Za-z\u4e00-\u9fa5 _().-]{0,63}$"
MAX_TRUCK_G = 200_000_000  # 200 t: above any road weighbridge's capacity

Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Resident = Annotated[str, StringConstraints(pattern=RESIDENT_PATTERN)]
EpochMs = Annotated[int, Field(ge=0, lt=10**14, strict=True)]
Seq = Annotated[int, Field(ge=0, lt=2**63, strict=True)]
Kg = Annotated[float, Field(strict=True, allow_inf_nan=False)]  # a JSON number, never a string


class Category(StrEnum):
    """Shanghai's four waste categories."""

    DRY = "dry"
    WET = "wet"
    RECYCLABLE = "recyclable"
    HAZARDOUS = "hazardous"


CATEGORIES: tuple[str, ...] = tuple(c.value for c in Category)


class Subcategory(StrEnum):
    """Recyclables (可回收物) as weighbridges ticket them: 废纸, 塑料, 金属, 玻璃, 织物, 其他."""

    PAPER = "paper"
    PLASTIC = "plastic"
    METAL = "metal"
    GLASS = "glass"
    TEXTILE = "textile"
    OTHER = "other"


Plate = Annotated[str, StringConstraints(pattern=PLATE_PATTERN)]
Place = Annotated[str, StringConstraints(pattern=PLACE_PATTERN)]
Grams = Annotated[int, Field(ge=0, le=MAX_TRUCK_G, strict=True)]


class MeasurementType(StrEnum):
    """Health measurement types of the contract."""

    BLOOD_PRESSURE = "blood_pressure"
    BLOOD_GLUCOSE = "blood_glucose"
    BODY_COMPOSITION = "body_composition"
    BODY_TEMPERATURE = "body_temperature"
    PULSE_OXIMETRY = "pulse_oximetry"
    # added without a v2 (issue 14): a v1 reader that does not know them quarantines that entry
    HEIGHT_WEIGHT = "height_weight"  # 身高体重秤: height/weight station
    BODY_CIRCUMFERENCE = "body_circumference"  # waist/hip, measured and entered by health staff


# Required and optional value keys per type; STRING_VALUES are strings, every other key a number.
VALUE_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "blood_pressure": (
        frozenset({"systolic_mmhg", "diastolic_mmhg"}),
        frozenset({"mean_arterial_mmhg", "pulse_bpm"}),
    ),
    "blood_glucose": (frozenset({"glucose_mmol_l"}), frozenset({"meal"})),
    "body_composition": (
        frozenset({"weight_kg"}),
        frozenset({"height_cm", "bmi", "body_fat_pct"}),
    ),
    "body_temperature": (frozenset({"temperature_c"}), frozenset()),
    "pulse_oximetry": (frozenset({"spo2_pct"}), frozenset({"pulse_bpm"})),
    "height_weight": (frozenset({"height_cm", "weight_kg"}), frozenset({"bmi"})),
    # sex is entered with the waist: the cut-off differs (WS/T 428) and the cloud knows no one's sex
    "body_circumference": (frozenset({"waist_cm", "sex"}), frozenset({"hip_cm"})),
}
MEALS = frozenset({"fasting", "postprandial", "random"})
SEXES = frozenset({"M", "F"})
STRING_VALUES: dict[str, frozenset[str]] = {"meal": MEALS, "sex": SEXES}


def now_ms() -> int:
    """Current wall-clock time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def device_belongs(device: str, site: str) -> bool:
    """True when a device id starts with its site id and a dash."""
    return device.startswith(site + "-") and len(device) > len(site) + 1


def _finite(key: str, value: object) -> float:
    """A JSON number as a float (as pydantic's strict float would give), or ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"value {key} must be a number")  # noqa: TRY004 - pydantic reports ValueError
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"value {key} is out of range") from None
    if not math.isfinite(number):
        raise ValueError(f"value {key} must be finite")
    return number


class _Frozen(BaseModel):
    # A v1 reader is tolerant: fields this version does not define are kept aside in `model_extra`
    # (counted by the cloud, never stored) so a gateway may be upgraded before the cloud.
    model_config = ConfigDict(frozen=True, extra="allow")


def ignored_fields(model: BaseModel) -> list[str]:
    """Names of the fields a v1 reader did not know in this model (and its ignored values)."""
    return list(model.model_extra or ())


class WasteReading(_Frozen):
    """One deposit weighed by one scale."""

    device: Identifier
    seq: Seq
    ts: EpochMs
    category: Category
    net_kg: Annotated[Kg, Field(gt=0, le=MAX_NET_KG)]
    gross_kg: Annotated[Kg, Field(ge=0, le=10_000)] | None = None
    resident: Resident | None = None


class HealthMeasurement(_Frozen):
    """One measurement from one health-hut instrument."""

    device: Identifier
    seq: Seq
    ts: EpochMs
    resident: Resident | None = None
    type: MeasurementType
    values: dict[str, Any]  # checked per type below: known keys strictly, unknown keys ignored

    @model_validator(mode="after")
    def _values_match_type(self) -> HealthMeasurement:
        required, optional = VALUE_KEYS[self.type.value]
        keys = set(self.values)
        missing = required - keys
        if missing:
            raise ValueError(f"{self.type.value} needs values {sorted(missing)}")
        unknown = keys - required - optional
        if unknown:  # a value key added after v1: ignored (counted as `values.<key>`), never stored
            extra = self.__pydantic_extra__
            assert extra is not None  # extra="allow"
            for key in sorted(unknown):
                extra[f"values.{key}"] = self.values[key]
            self.__dict__["values"] = {k: v for k, v in self.values.items() if k not in unknown}
        checked: dict[str, float | str] = {}
        for key, value in self.values.items():
            if key in STRING_VALUES:
                if value not in STRING_VALUES[key]:
                    raise ValueError(f"{key} must be one of {sorted(STRING_VALUES[key])}")
                checked[key] = value
            else:
                checked[key] = _finite(key, value)
        self.__dict__["values"] = checked
        return self


class WasteBatch(_Frozen):
    """A batch of waste readings from one site (topic .../readings)."""

    schema_: Literal["gumei.waste.readings.v1"] = Field(WASTE_SCHEMA, alias="schema")
    site: Identifier
    readings: Annotated[list[WasteReading], Field(min_length=1, max_length=MAX_BATCH)]
    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)


class HealthBatch(_Frozen):
    """A batch of health measurements from one hut (topic .../measurements)."""

    schema_: Literal["gumei.health.measurements.v1"] = Field(HEALTH_SCHEMA, alias="schema")
    site: Identifier
    measurements: Annotated[list[HealthMeasurement], Field(min_length=1, max_length=MAX_BATCH)]
    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)


class WeighbridgeTicket(_Frozen):
    """One weighbridge ticket: a truck weighed gross then tare (or against its stored tare).

    Identity (device, ticket); `ticket` is strictly increasing per device (the gateway's durable
    queue assigns it, like a reading's seq). Weights are integer grams, so net = gross - tare is
    exact; `ts` is when the ticket was closed (the tare weighing, or the gross one with a stored
    tare), `gross_ts` when the loaded truck was weighed.
    """

    device: Identifier
    ticket: Seq
    ts: EpochMs
    gross_ts: EpochMs
    plate: Plate
    plate_source: Literal["operator", "card"] = "operator"
    category: Category
    subcategory: Subcategory | None = None
    source_area: Identifier
    destination: Place | None = None
    gross_g: Annotated[Grams, Field(gt=0)]
    tare_g: Grams
    net_g: Annotated[Grams, Field(gt=0)]
    tare_source: Literal["weighed", "stored"]

    @model_validator(mode="after")
    def _consistent(self) -> WeighbridgeTicket:
        if self.net_g != self.gross_g - self.tare_g:
            raise ValueError(
                f"net_g {self.net_g} is not gross_g {self.gross_g} - tare_g {self.tare_g}"
            )
        if (self.category == Category.RECYCLABLE) != (self.subcategory is not None):
            raise ValueError("subcategory is required for recyclable and only for recyclable")
        if self.gross_ts > self.ts:
            raise ValueError("gross_ts is after ts (the ticket closes at or after the gross)")
        return self

    @property
    def seq(self) -> int:
        """The ticket number under the name the durable queue uses for an entry's identity."""
        return self.ticket


class WeighbridgeTickets(_Frozen):
    """A batch of tickets from one weighbridge site (topic .../tickets)."""

    schema_: Literal["gumei.weighbridge.tickets.v1"] = Field(TICKETS_SCHEMA, alias="schema")
    site: Identifier
    tickets: Annotated[list[WeighbridgeTicket], Field(min_length=1, max_length=MAX_BATCH)]
    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)


class DeviceStatus(_Frozen):
    """Health of one device as the gateway sees it."""

    device: Identifier
    ok: bool
    fill_pct: Annotated[float, Field(ge=0, le=200)] | None = None
    model_config = ConfigDict(frozen=True, extra="allow")


class Status(_Frozen):
    """Retained gateway status; with state offline it is also the Last Will."""

    schema_: Literal["gumei.status.v1"] = Field(STATUS_SCHEMA, alias="schema")
    site: Identifier
    state: Literal["online", "offline"]
    ts: EpochMs | None = None
    agent_version: str | None = None
    buffered: Annotated[int, Field(ge=0, lt=2**63)] | None = None  # an InfluxDB integer
    devices: list[DeviceStatus] = []
    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)


def encode(batch: WasteBatch | HealthBatch | WeighbridgeTickets | Status) -> bytes:
    """Serialize a contract message to its UTF-8 JSON payload."""
    return batch.model_dump_json(by_alias=True, exclude_none=True).encode()
