"""Byte-exact A&D-style indicator frames (`ST,GS,+0012.34kg` CR LF) and line faults."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

from firmware_sim.scales.physics import Glitch, Reading

TERMINATOR = b"\r\n"


def block_check(body: bytes) -> bytes:
    """Two upper-case hex digits of the XOR of all bytes (optional BCC extension)."""
    x = 0
    for b in body:
        x ^= b
    return f"{x:02X}".encode()


def format_weight(weight: float, unit: str = "kg", decimals: int = 2) -> bytes:
    """Sign and 7 characters including the decimal point, then the 2-character unit."""
    value = {"kg": weight, "g": weight * 1000, "t": weight / 1000}[unit]
    digits = f"{abs(value):0{7}.{decimals}f}" if decimals else f"{abs(round(value)):07d}"
    if len(digits) > 7:
        raise ValueError(f"weight {weight} does not fit 7 characters")
    sign = "-" if value < 0 and digits.strip("0.") else "+"
    return f"{sign}{digits}{unit:>2}".encode("ascii")


def encode_frame(
    weight_kg: float,
    stable: bool,
    *,
    overload: bool = False,
    mode: str = "GS",
    unit: str = "kg",
    decimals: int = 2,
    checksum: bool = False,
) -> bytes:
    """One complete frame including CR LF."""
    if overload:
        body = f"OL,{mode},+{' ' * 7}{unit:>2}".encode("ascii")
    else:
        header = "ST" if stable else "US"
        body = f"{header},{mode},".encode("ascii") + format_weight(weight_kg, unit, decimals)
    if checksum:
        body += block_check(body)
    return body + TERMINATOR


def reading_frame(r: Reading, checksum: bool = False) -> bytes:
    """The frame an indicator sends for one reading of the physics model."""
    over = r.overload or abs(r.weight_kg) >= 10_000
    return encode_frame(r.weight_kg, r.stable, overload=over, checksum=checksum)


def glitch_frame(g: Glitch, rng: random.Random, checksum: bool = False) -> bytes:
    """Bytes a noisy line delivers instead of a frame, for the given fault kind."""
    good = encode_frame(rng.uniform(0, 200), rng.random() < 0.8, checksum=checksum)
    if g.kind == "truncated":
        return good[: rng.randint(1, len(good) - 3)] + TERMINATOR
    if g.kind == "bad_unit":
        return good.replace(b"kg", rng.choice([b"lb", b"oz", b"KG", b"k?"]))
    if g.kind == "random_bytes":
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 30))) + TERMINATOR
    if g.kind == "bad_header":
        return rng.choice([b"SX", b"  ", b"s\x00", b"QT"]) + good[2:]
    if g.kind == "bad_number":
        i = rng.randint(7, 13)
        return good[:i] + rng.choice([b"O", b"?", b" ", b"-"]) + good[i + 1 :]
    if g.kind == "merged":  # two frames run together, one terminator lost
        return good[:-2] + good
    if g.kind == "bad_checksum":
        return good[:-4] + b"ZZ" + TERMINATOR
    raise ValueError(f"unknown glitch kind {g.kind!r}")


def stream_bytes(
    items: Iterable[Reading | Glitch], seed: int = 0, checksum: bool = False
) -> Iterator[tuple[int, bytes]]:
    """The byte frames for a physics run (readings and glitches), in order."""
    rng = random.Random(seed)
    for item in items:
        if isinstance(item, Reading):
            yield item.ts_ms, reading_frame(item, checksum)
        else:
            yield item.ts_ms, glitch_frame(item, rng, checksum)
