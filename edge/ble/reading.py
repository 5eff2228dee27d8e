"""What every decoder returns: a contract-ready measurement type and values, plus device details."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from contract.days import SHANGHAI
from contract.models import VALUE_KEYS

UUID_BASE = "0000{:04x}-0000-1000-8000-00805f9b34fb"

Value = float | str


def uuid16(short: int) -> str:
    """Full 128-bit UUID string of a 16-bit Bluetooth SIG UUID."""
    return UUID_BASE.format(short)


@dataclass(frozen=True, slots=True)
class BleReading:
    """One decoded measurement: contract v1 `type` and `values`, with what the device also said."""

    type: str
    values: Mapping[str, Value]
    measured_at: dt.datetime | None = None  # device wall time (naive, the device's local zone)
    user_id: int | None = None
    status: int | None = None  # the characteristic's status bits, as sent
    details: Mapping[str, int | float | str | bool] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True when every value contract v1 requires for this type is present."""
        required, _ = VALUE_KEYS[self.type]
        return required <= set(self.values)

    def contract(self) -> tuple[str, dict[str, Value]]:
        """The (type, values) pair of a contract v1 HealthMeasurement."""
        return self.type, dict(self.values)


def measured_ms(reading: BleReading, received_ms: int, tz: dt.tzinfo = SHANGHAI) -> int:
    """Epoch ms of a reading: the device timestamp read in the hut's zone, else the arrival time."""
    if reading.measured_at is None or reading.details.get("clock_not_set"):
        return received_ms
    return int(reading.measured_at.replace(tzinfo=tz).timestamp() * 1000)


def merge(first: BleReading, second: BleReading) -> BleReading:
    """Merge two readings of one type (e.g. Weight + Body Composition); the second wins on conflicts."""
    if first.type != second.type:
        raise ValueError(f"cannot merge {first.type} with {second.type}")
    return BleReading(
        type=first.type,
        values={**first.values, **second.values},
        measured_at=second.measured_at or first.measured_at,
        user_id=second.user_id if second.user_id is not None else first.user_id,
        status=second.status if second.status is not None else first.status,
        details={**first.details, **second.details},
    )
