"""Waist and hip circumference entered by health staff at the hut (tape measure), as a notification.

The staff's entry terminal at the hut (a tablet app, or the simulator) serves the gateway like any
simulated instrument over the framed-socket transport (`transport = "socket"`), sending one
notification of the project-private characteristic `ENTRY_UUID` per entry, in ASCII:

    WAIST=86.0;HIP=99.5;SEX=F

`WAIST` (cm, one decimal) and `SEX` (`M` or `F`: the waist cut-off differs by sex, and the cloud
holds no one's sex) are required, `HIP` is optional. The gateway attributes the entry to the card
session open at the hut, exactly like a measurement of an instrument, so the resident is known by
pseudonym only and the entry travels the same pipeline (contract type `body_circumference`).
"""

from __future__ import annotations

import re

from edge.ble.errors import BleDecodeError
from edge.ble.reading import BleReading

ENTRY_UUID = "6a0e0003-7c2b-4e8f-9d3a-67756d656931"  # project-private: one staff entry (ASCII)
TYPE = "body_circumference"
_ENTRY = re.compile(
    rb"WAIST=(?P<waist>\d{2,3}\.\d)(?:;HIP=(?P<hip>\d{2,3}\.\d))?;SEX=(?P<sex>[MF])"
)


def decode_staff_entry(data: bytes) -> BleReading:
    """Decode one staff entry into a contract `body_circumference` reading."""
    line = data.strip()
    if not line:
        raise BleDecodeError("too_short", "empty entry")
    m = _ENTRY.fullmatch(line)
    if m is None:
        raise BleDecodeError("bad_entry", "not WAIST=ddd.d[;HIP=ddd.d];SEX=M|F")
    values: dict[str, float | str] = {"waist_cm": float(m["waist"]), "sex": m["sex"].decode()}
    if m["hip"] is not None:
        values["hip_cm"] = float(m["hip"])
    return BleReading(TYPE, values)


def encode_staff_entry(waist_cm: float, sex: str, hip_cm: float | None = None) -> bytes:
    """One entry as the terminal sends it."""
    hip = f";HIP={hip_cm:.1f}" if hip_cm is not None else ""
    return f"WAIST={waist_cm:.1f}{hip};SEX={sex}".encode()
