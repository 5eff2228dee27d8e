"""The 耀华 (Yaohua) XK3190 truck-scale indicator's continuous serial output, decoded to integer grams.

Two continuous modes (docs/weighbridge.md has the sources and where they disagree):

- `tf0` (XK3190-A9/A9+ "tF=0", A26/A23P "continuous format 0"): 12 bytes
  STX(02h), sign `+`/`-`, six weight digits (most significant first), the number of decimals
  `0`..`4`, the XOR of bytes 2..9 as two ASCII hex digits (high nibble first; 0-9 + 30h,
  10-15 + 37h, i.e. upper case), ETX(03h).
- `eq` (A26 "format 1", A23P "format 2"): 9 bytes `=`, seven characters of the displayed value
  including its decimal point, least significant first, then `0` (positive) or `-`. No check.

The frame carries no unit and no stability flag: the unit is a setting of the gateway (the
indicator's display unit, kg or t) and stability is decided from successive weights
(`edge.weighbridge.stable`). Weights are exact integer grams; a value finer than a gram cannot
be a weighbridge reading and is refused.

`Xk3190Framer` cuts a byte stream into frames and resynchronises on the next start byte after
anything malformed; it never raises for any input.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Literal

from edge.errors import FrameError
from edge.scales.sample import SourceStats

Mode = Literal["tf0", "eq"]
Unit = Literal["kg", "t"]
GRAMS: dict[str, int] = {"kg": 1000, "t": 1_000_000}

STX, ETX = 0x02, 0x03
TF0_LEN = 12
EQ_LEN = 9
EQ_START = ord("=")
_DIGITS = frozenset(b"0123456789")


def xor_check(body: bytes) -> bytes:
    """The two check bytes of a tf0 frame for its bytes 2..9 (sign, digits, decimals)."""
    x = 0
    for b in body:
        x ^= b
    return f"{x:02X}".encode("ascii")


def _grams(value: Decimal, unit_g: int) -> int:
    grams = value * unit_g
    if grams != grams.to_integral_value():
        raise FrameError("sub_gram", f"{value} at {unit_g} g per unit is not whole grams")
    return int(grams)


def parse_tf0(frame: bytes, unit_g: int = 1000) -> int:
    """Decode one 12-byte tf0 frame (STX … ETX) to integer grams; FrameError with a reason."""
    if len(frame) != TF0_LEN:
        raise FrameError("truncated" if len(frame) < TF0_LEN else "too_long", f"{len(frame)} bytes")
    if frame[0] != STX or frame[-1] != ETX:
        raise FrameError("bad_delimiter", f"STX/ETX expected: {frame[:1]!r} … {frame[-1:]!r}")
    body, check = frame[1:9], frame[9:11]
    if xor_check(body) != check:
        raise FrameError("bad_checksum", f"got {check!r}, computed {xor_check(body)!r}")
    sign, digits, decimals = body[0], body[1:7], body[7]
    if sign not in b"+-":
        raise FrameError("bad_sign", f"sign must be + or -: {bytes([sign])!r}")
    if not all(c in _DIGITS for c in digits):
        raise FrameError("bad_number", f"non-digit in weight {digits!r}")
    if decimals not in b"01234":
        raise FrameError("bad_decimals", f"decimals must be 0..4: {bytes([decimals])!r}")
    value = Decimal(int(digits)).scaleb(-(decimals - ord("0")))
    grams = _grams(value, unit_g)
    return -grams if sign == ord("-") else grams


def parse_eq(frame: bytes, unit_g: int = 1000) -> int:
    """Decode one 9-byte `=` frame (digits reversed, sign last) to integer grams."""
    if len(frame) != EQ_LEN:
        raise FrameError("truncated" if len(frame) < EQ_LEN else "too_long", f"{len(frame)} bytes")
    if frame[0] != EQ_START:
        raise FrameError("bad_delimiter", f"'=' expected: {frame[:1]!r}")
    chars, sign = frame[1:8][::-1], frame[8]
    if sign not in b"0-":
        raise FrameError("bad_sign", f"sign must be 0 or -: {bytes([sign])!r}")
    if not all(c in _DIGITS or c == ord(".") for c in chars) or chars.count(b".") > 1:
        raise FrameError("bad_number", f"bad weight {chars!r}")
    if chars[:1] == b"." or chars[-1:] == b".":
        raise FrameError("bad_number", f"bad decimal point in {chars!r}")
    try:
        value = Decimal(chars.decode("ascii"))
    except InvalidOperation:  # pragma: no cover - excluded by the checks above
        raise FrameError("bad_number", repr(chars)) from None
    grams = _grams(value, unit_g)
    return -grams if sign == ord("-") else grams


def encode_tf0(grams: int, unit_g: int = 1000, decimals: int = 0) -> bytes:
    """The tf0 frame an indicator sends for `grams` shown with `decimals` (for the simulator)."""
    if not 0 <= decimals <= 4:
        raise ValueError("decimals must be 0..4")
    scaled = Decimal(abs(grams)).scaleb(decimals) / unit_g
    if scaled != scaled.to_integral_value() or scaled >= 10**6:
        raise ValueError(f"{grams} g cannot be shown in 6 digits with {decimals} decimals")
    body = b"-" if grams < 0 else b"+"
    body += f"{int(scaled):06d}{decimals}".encode("ascii")
    return bytes([STX]) + body + xor_check(body) + bytes([ETX])


def encode_eq(grams: int, unit_g: int = 1000, decimals: int = 0) -> bytes:
    """The `=` frame for `grams` shown with `decimals` (7 characters incl. the point, reversed)."""
    if not 0 <= decimals <= 4:
        raise ValueError("decimals must be 0..4")
    value = Decimal(abs(grams)) / unit_g
    text = f"{value:.{decimals}f}"
    if Decimal(text) != value:
        raise ValueError(f"{grams} g cannot be shown with {decimals} decimals")
    width = 7
    text = text.rjust(width, "0")
    if len(text) > width:
        raise ValueError(f"{grams} g does not fit 7 characters")
    return b"=" + text[::-1].encode("ascii") + (b"-" if grams < 0 else b"0")


@dataclass(slots=True)
class Xk3190Framer:
    """Cuts a continuous XK3190 byte stream into weights (grams); pure, never raises.

    feed() returns the weights of the complete good frames in the chunk; malformed frames are
    counted in `stats.malformed` by reason (the first cut frame after start is a resync, like the
    station scales' serial driver) and skipped: a frame cut short by the next start byte is
    dropped up to that byte, so a partial frame followed by a good one loses only the partial
    one. At most one frame length is buffered.
    """

    mode: Mode = "tf0"
    unit_g: int = 1000
    stats: SourceStats = field(default_factory=SourceStats)
    _buf: bytearray = field(default_factory=bytearray)
    _synced: bool = False

    def feed(self, chunk: bytes) -> list[int]:
        """Weights of the frames completed by `chunk`, in order."""
        self._buf += chunk
        out: list[int] = []
        start, length = (STX, TF0_LEN) if self.mode == "tf0" else (EQ_START, EQ_LEN)
        buf = self._buf
        while True:
            i = buf.find(start)
            if i < 0:  # no start byte: none of these bytes can belong to a frame
                if buf:
                    self._bad("garbage")
                buf.clear()
                break
            if i > 0:
                self._bad("garbage")
                del buf[:i]
            if len(buf) < length:
                break
            frame = bytes(buf[:length])
            nxt = frame.find(start, 1)
            if nxt > 0:  # a new frame begins inside this one: it was cut short
                self._bad("truncated")
                del buf[:nxt]
                continue
            try:
                grams = (
                    parse_tf0(frame, self.unit_g)
                    if self.mode == "tf0"
                    else parse_eq(frame, self.unit_g)
                )
            except FrameError as exc:
                self._bad(exc.reason)
                del buf[:length]  # no start byte inside it (checked above): resync after it
                continue
            del buf[:length]
            self._synced = True
            self.stats.frames += 1
            out.append(grams)
        return out

    def _bad(self, reason: str) -> None:
        if not self._synced:
            self.stats.resyncs += 1
        else:
            self.stats.malformed[reason] += 1

    def reset(self) -> None:
        """Forget a partial frame (after reopening the port)."""
        self._buf.clear()
        self._synced = False


def frames_of(
    weights: Iterable[int], mode: Mode = "tf0", unit_g: int = 1000, decimals: int = 0
) -> bytes:
    """The byte stream of consecutive frames for these weights (tests, simulator)."""
    enc = encode_tf0 if mode == "tf0" else encode_eq
    return b"".join(enc(w, unit_g, decimals) for w in weights)
