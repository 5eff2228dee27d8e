"""Height/weight station (身高体重秤): the serial ASCII frame, strictly parsed, and its encoder.

Ultrasonic height-and-weight stations print one frame per completed measurement on RS-232
(9600 8N1); vendors differ in layout, so the gateway speaks ONE documented layout (docs/health.md,
"Height/weight stations") and refuses anything else by reason:

    $HW,ST,H170.5,W065.50,B22.6*68 CR LF

`ST` = stable (the measurement is complete; `US` = the person was still moving), height in cm
with one decimal, weight in kg with two, the station's BMI with one, and an NMEA-0183-style check:
two hex digits of the XOR of the bytes between `$` and `*`. The line arrives as a notification of
the project-private characteristic `FRAME_UUID` (edge/hut_gateway.SerialCardSource), so the hut
agent treats the station like any instrument.
"""

from __future__ import annotations

import re

from edge.ble.errors import BleDecodeError
from edge.ble.reading import BleReading

FRAME_UUID = "6a0e0002-7c2b-4e8f-9d3a-67756d656931"  # project-private: one station frame (ASCII)
TYPE = "height_weight"
BMI_TOLERANCE = 0.11  # the station rounds BMI to 0.1 from the unrounded height and weight
_FRAME = re.compile(
    rb"\$(?P<body>HW,(?P<status>ST|US),H(?P<h>\d{3}\.\d),W(?P<w>\d{3}\.\d{2}),B(?P<b>\d{2}\.\d))"
    rb"\*(?P<check>[0-9A-F]{2})"
)


def checksum(body: bytes) -> str:
    """Two upper-case hex digits of the XOR of `body` (the bytes between `$` and `*`)."""
    x = 0
    for b in body:
        x ^= b
    return f"{x:02X}"


def decode_height_weight(data: bytes) -> BleReading:
    """Decode one frame (with or without CR LF) into a contract `height_weight` reading."""
    line = data.rstrip(b"\r\n")
    if len(line) < 8:
        raise BleDecodeError("too_short", f"{len(line)} bytes")
    m = _FRAME.fullmatch(line)
    if m is None:
        raise BleDecodeError("bad_frame", "not a $HW,ST|US,Hddd.d,Wddd.dd,Bdd.d*XX frame")
    if checksum(m["body"]) != m["check"].decode():
        raise BleDecodeError("bad_checksum", f"check {m['check'].decode()}")
    if m["status"] == b"US":
        raise BleDecodeError("unstable", "the person moved during the measurement")
    height, weight, bmi = float(m["h"]), float(m["w"]), float(m["b"])
    if height == 0 or weight == 0:
        raise BleDecodeError("no_subject", "nobody on the station")
    computed = weight / (height / 100) ** 2
    if abs(computed - bmi) > BMI_TOLERANCE:
        raise BleDecodeError("bmi_mismatch", f"BMI {bmi} but weight/height² = {computed:.2f}")
    return BleReading(TYPE, {"height_cm": height, "weight_kg": weight, "bmi": bmi})


def encode_height_weight(
    height_cm: float, weight_kg: float, bmi: float | None = None, stable: bool = True
) -> bytes:
    """One frame as a station prints it (BMI computed and rounded to 0.1 when not given)."""
    if bmi is None:
        bmi = round(weight_kg / (height_cm / 100) ** 2, 1)
    body = (
        f"HW,{'ST' if stable else 'US'},H{height_cm:05.1f},W{weight_kg:06.2f},B{bmi:04.1f}"
    ).encode()
    return b"$" + body + b"*" + checksum(body).encode() + b"\r\n"
