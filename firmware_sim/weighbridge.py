"""A simulated weighbridge: an XK3190 indicator's continuous output, byte for byte, and its operator.

Trucks arrive on an empty bridge, drive on (the weight rises with noise as axles come on and the
truck bounces), stand still (the indicator shows one value), drive off; the operator types the
truck's entry while it is on the bridge. Each truck is weighed loaded (gross) and later empty
(tare), or only loaded when its tare is stored. Optional glitches garble a frame's byte or cut a
frame short. The frame encoders here are written from the manual (docs/weighbridge.md) on their
own, not with the gateway's decoder module, so that a misreading shared by both would show in
the tests that compare them with the manual's examples.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from firmware_sim.scales.serial_sim import PtyIndicator

Mode = Literal["tf0", "eq"]
SUBCATEGORIES = ("paper", "plastic", "metal", "glass", "textile", "other")


def _nibble(n: int) -> int:
    """The manual's check digit: 0-9 + 30h, 10-15 + 37h."""
    return n + 0x30 if n <= 9 else n + 0x37


def tf0_frame(counts: int, decimals: int = 0) -> bytes:
    """STX, sign, 6 digits of the displayed value (high first), decimals, XOR hi/lo, ETX."""
    body = bytes([ord("-") if counts < 0 else ord("+")])
    body += str(abs(counts)).zfill(6).encode("ascii") + bytes([ord("0") + decimals])
    x = 0
    for b in body:
        x ^= b
    return bytes([0x02]) + body + bytes([_nibble(x >> 4), _nibble(x & 0x0F)]) + bytes([0x03])


def eq_frame(counts: int, decimals: int = 0) -> bytes:
    """`=`, the displayed value with its point in 7 characters, lowest digit first, then 0 or -."""
    digits = str(abs(counts)).zfill(decimals + 1)
    shown = f"{digits[:-decimals]}.{digits[-decimals:]}" if decimals else digits
    return b"=" + shown.zfill(7)[::-1].encode("ascii") + (b"-" if counts < 0 else b"0")


@dataclass(frozen=True)
class Truck:
    """One truck's load: its plate, what the operator types for it, its weights in grams."""

    plate: str
    entry: dict[str, str]
    gross_g: int
    tare_g: int
    stored_tare: bool = False

    @property
    def net_g(self) -> int:
        return self.gross_g - self.tare_g


@dataclass
class Timeline:
    """What the simulated bridge sends: frames and operator lines with their times, and the truth."""

    frames: list[tuple[int, bytes]] = field(default_factory=list)
    entries: list[tuple[int, str]] = field(default_factory=list)
    expected: list[Truck] = field(default_factory=list)
    glitches: int = 0

    @property
    def duration_ms(self) -> int:
        return self.frames[-1][0] - self.frames[0][0] if self.frames else 0


def make_trucks(n: int, seed: int, areas: list[str], stored_every: int = 0) -> list[Truck]:
    """n trucks with random loads of whole 10 kg; every `stored_every`-th uses a stored tare."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        category = rng.choice(("recyclable", "recyclable", "dry", "wet"))
        entry = {"plate": f"沪A{10000 + rng.randrange(90000)}", "category": category}
        if category == "recyclable":
            entry["subcategory"] = rng.choice(SUBCATEGORIES)
        entry["source_area"] = rng.choice(areas)
        entry["destination"] = (
            "闵行区再生资源集散场" if category == "recyclable" else "老港生态环保基地"
        )
        stored = bool(stored_every) and i % stored_every == stored_every - 1
        if stored:
            entry["tare"] = "stored"
        tare = rng.randrange(600, 1200) * 10_000
        out.append(
            Truck(entry["plate"], entry, tare + rng.randrange(100, 1500) * 10_000, tare, stored)
        )
    return out


class Bridge:
    """Builds a Timeline frame by frame (the indicator sends `fps` frames a second)."""

    def __init__(
        self,
        seed: int,
        mode: Mode = "tf0",
        fps: int = 5,
        start_ms: int = 0,
        glitch_rate: float = 0.0,
    ) -> None:
        self.rng = random.Random(seed)
        self.mode, self.step = mode, 1000 // fps
        self.ts = start_ms
        self.glitch_rate = glitch_rate
        self.t = Timeline()

    def send(self, grams: int) -> None:
        kg = grams // 1000  # the indicator shows whole kg (0 decimals)
        frame = tf0_frame(kg) if self.mode == "tf0" else eq_frame(kg)
        if self.glitch_rate and self.rng.random() < self.glitch_rate:
            self.t.glitches += 1
            if self.rng.random() < 0.5:  # a flipped bit: bad checksum or a bad character
                i = self.rng.randrange(1, len(frame) - 1)
                frame = frame[:i] + bytes([frame[i] ^ 0x04]) + frame[i + 1 :]
            else:  # a frame cut short (line noise swallowed the rest)
                frame = frame[: self.rng.randrange(1, len(frame) - 1)]
        self.t.frames.append((self.ts, frame))
        self.ts += self.step

    def hold(self, grams: int, seconds: float) -> None:
        for _ in range(int(seconds * 1000 / self.step)):
            self.send(grams)

    def moving(self, start: int, end: int, seconds: float) -> None:
        n = int(seconds * 1000 / self.step)
        for i in range(n):
            level = start + (end - start) * (i + 1) // n
            self.send(max(0, level + self.rng.randint(-150, 150) * 1000))

    def visit(self, truck: Truck, grams: int, entry: dict[str, str]) -> None:
        """One truck on the bridge: on, the operator types, stand still, off."""
        self.hold(0, 2)
        self.moving(0, grams, 2)
        self.t.entries.append((self.ts, json.dumps(entry, ensure_ascii=False)))
        self.hold(grams, 5)
        self.moving(grams, 0, 2)
        self.hold(0, 1)


def timeline(
    trucks: list[Truck],
    seed: int = 1,
    mode: Mode = "tf0",
    start_ms: int = 0,
    glitch_rate: float = 0.0,
    phase: Literal["all", "gross", "tare"] = "all",
) -> Timeline:
    """Grosses two by two, then their tares (trucks interleave on the bridge, as at a yard);
    `phase` "gross" or "tare" gives only those visits (a day cut in two, e.g. by a restart)."""
    b = Bridge(seed, mode, start_ms=start_ms, glitch_rate=glitch_rate)
    for i in range(0, len(trucks), 2):
        pair = trucks[i : i + 2]
        for t in pair:
            if phase != "tare":
                b.visit(t, t.gross_g, t.entry)
        for t in pair:
            if not t.stored_tare and phase != "gross":
                b.visit(t, t.tare_g, {"plate": t.plate})  # for the tare the plate is enough
    b.hold(0, 2)
    b.t.expected = list(trucks)
    return b.t


class WeighbridgeSim:
    """Plays a Timeline: frames on a pty (the indicator's serial line) and entries appended to the
    operator's JSON-lines file, one thread, both paced on one clock (time / speed)."""

    def __init__(self, t: Timeline, operator_file: Path, speed: float = 1.0) -> None:
        self.t, self.operator_file, self.speed = t, operator_file, speed
        self.pty = PtyIndicator()
        self.port = self.pty.port
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        """Start sending frames and writing entries (returns at once)."""
        self.operator_file.touch()
        self._thread = threading.Thread(target=self._play, name="weighbridge-sim", daemon=True)
        self._thread.start()

    def _play(self) -> None:
        events = sorted(
            [(ts, 0, line.encode()) for ts, line in self.t.entries]
            + [(ts, 1, frame) for ts, frame in self.t.frames],
            key=lambda e: (e[0], e[1]),
        )
        if not events:
            return
        t0, first = time.monotonic(), events[0][0]
        for ts, kind, data in events:
            due = t0 + (ts - first) / 1000 / self.speed
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            if kind == 0:
                with self.operator_file.open("ab") as f:
                    f.write(data + b"\n")
            else:
                self.pty.write(data)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until everything was sent; True when done."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def close(self) -> None:
        """Stop and release the pty."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.pty.close()
