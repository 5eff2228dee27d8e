"""Strict parser of the A&D-style continuous ASCII weighing frame `ST,GS,+0012.34kg` CR LF."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from edge.errors import FrameError
from edge.scales.sample import WeighMode, WeightSample

Status = Literal["ST", "US", "OL"]

BODY_LEN = 16  # "ST,GS,+0012.34kg"
# A&D AD-440x manuals print "LO"
STATUS: dict[str, Status] = {"ST": "ST", "US": "US", "OL": "OL", "LO": "OL"}
MODES = {m.value: m for m in WeighMode}
UNITS: dict[bytes, Decimal] = {b"kg": Decimal(1), b" g": Decimal("0.001"), b" t": Decimal(1000)}
_DIGITS = frozenset(b"0123456789")


@dataclass(frozen=True, slots=True)
class IndicatorFrame:
    """One decoded indicator frame; weight_kg is None for an out-of-range (OL) frame."""

    status: Status
    mode: WeighMode
    weight_kg: float | None
    unit: str

    @property
    def stable(self) -> bool:
        """True for header ST."""
        return self.status == "ST"

    def to_sample(self, ts_ms: int, device: str = "") -> WeightSample:
        """The WeightSample of this frame, stamped with the gateway's receive time."""
        return WeightSample(
            ts_ms=ts_ms,
            gross_kg=self.weight_kg if self.weight_kg is not None else 0.0,
            stable=self.stable,
            overload=self.status == "OL",
            mode=self.mode,
            device=device,
        )


def bcc(body: bytes) -> bytes:
    """Two upper-case hex digits of the XOR of all bytes (the optional block check)."""
    x = 0
    for b in body:
        x ^= b
    return f"{x:02X}".encode()


def _strip_terminator(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line[:-2]
    if line.endswith(b"\r"):
        return line[:-1]
    raise FrameError("no_terminator", f"frame does not end with CR or CR LF: {line[-20:]!r}")


def _check_length(body: bytes, checksum: bool) -> bytes:
    want = BODY_LEN + (2 if checksum else 0)
    if len(body) != want and STATUS.get(body[:2].decode()) is None:
        raise FrameError("garbage", f"{len(body)} characters without a frame header: {body[:24]!r}")
    if checksum and len(body) == BODY_LEN:
        raise FrameError("missing_checksum", "frame has no block check characters")
    if len(body) < want:
        raise FrameError("truncated", f"{len(body)} of {want} characters")
    if len(body) > want:
        raise FrameError("too_long", f"{len(body)} characters, expected {want}")
    if checksum:
        data, check = body[:BODY_LEN], body[BODY_LEN:]
        if bcc(data) != check:
            raise FrameError("bad_checksum", f"got {check!r}, computed {bcc(data)!r}")
        return data
    return body


def _number(sign: int, digits: bytes, overload: bool) -> Decimal | None:
    if overload and all(c in b" ." for c in digits):
        return None
    if digits.count(b".") > 1 or digits[:1] == b"." or digits[-1:] == b".":
        raise FrameError("bad_number", f"bad decimal point in {digits!r}")
    if not all(c in _DIGITS or c == ord(".") for c in digits):
        raise FrameError("bad_number", f"non-digit in weight {digits!r}")
    try:
        value = Decimal(digits.decode("ascii"))
    except InvalidOperation:  # pragma: no cover - excluded by the checks above
        raise FrameError("bad_number", repr(digits)) from None
    if sign == ord("-"):
        return -value
    if sign == ord("+"):
        return value
    raise FrameError("bad_sign", f"sign must be + or -, got {bytes([sign])!r}")


def parse_frame(line: bytes, *, checksum: bool = False) -> IndicatorFrame:
    """Decode one frame including its terminator; raise FrameError with a reason code."""
    if not line:
        raise FrameError("empty", "no bytes")
    try:
        line.decode("ascii")
    except UnicodeDecodeError:
        raise FrameError("not_ascii", f"non-ASCII bytes in {line[:24]!r}") from None
    body = _check_length(_strip_terminator(line), checksum)
    if body[2:3] != b"," or body[5:6] != b",":
        raise FrameError("bad_separator", f"commas expected at columns 3 and 6: {body!r}")
    status = STATUS.get(body[0:2].decode())
    if status is None:
        raise FrameError("bad_header1", f"header 1 must be ST, US or OL: {body[0:2]!r}")
    mode = MODES.get(body[3:5].decode())
    if mode is None:
        raise FrameError("bad_header2", f"header 2 must be GS, NT or TR: {body[3:5]!r}")
    factor = UNITS.get(body[14:16])
    if factor is None:
        raise FrameError("bad_unit", f"unit must be kg, ' g' or ' t': {body[14:16]!r}")
    value = _number(body[6], body[7:14], overload=status == "OL")
    if value is None and status != "OL":  # pragma: no cover - _number only returns None for OL
        raise FrameError("bad_number", "blank weight")
    weight = None if value is None else float(value * factor)
    return IndicatorFrame(
        status=status, mode=mode, weight_kg=weight, unit=body[14:16].decode().strip()
    )
