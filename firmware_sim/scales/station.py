"""A simulated waste station for driving a real edge agent process: scales on ptys and Modbus.

Each scale plays a simple, fast, deterministic deposit staircase (a few unstable frames, then
stable frames at the new level; emptied when full) with optional line faults, so tests and
`gumei bench edge` can run the agent at any frame rate. The gateway config is written for it.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from firmware_sim.scales.ascii_indicator import encode_frame, glitch_frame
from firmware_sim.scales.modbus_sim import ModbusTransmitter
from firmware_sim.scales.physics import Glitch, Reading
from firmware_sim.scales.serial_sim import PtyIndicator

CATEGORIES = ("dry", "wet", "recyclable", "hazardous")
TARE_KG, FULL_KG = 20.0, 150.0
FAULTS = ("truncated", "bad_checksum", "bad_unit", "random_bytes")


def staircase(seed: int, start_ms: int, fps: float, settle: int = 4) -> Iterator[Reading]:
    """Endless readings: deposits of 0.05-5 kg on a 20 kg bin, emptied at 150 kg."""
    rng = random.Random(seed)
    step = 1000 / fps
    n = itertools.count()
    level = TARE_KG

    def at() -> int:
        return start_ms + int(next(n) * step)

    for _ in range(settle):
        yield Reading(at(), level, True)
    while True:
        if level > FULL_KG:
            for _ in range(2):
                yield Reading(at(), round(level / 2, 2), False)
            level = TARE_KG
        else:
            net = round(rng.uniform(0.05, 5.0), 2)
            yield Reading(at(), round(level + net * 1.3, 2), False)  # the bag lands and bounces
            yield Reading(at(), round(level + net * 0.9, 2), False)
            level = round(level + net, 2)
        for _ in range(settle):
            yield Reading(at(), level, True)


def with_faults(items: Iterator[Reading], seed: int, every: int) -> Iterator[Reading | Glitch]:
    """Insert a line fault (cycling through FAULTS) after every `every` readings (0: none)."""
    kinds = itertools.cycle(FAULTS)
    for i, r in enumerate(items, 1):
        yield r
        if every and i % every == 0:
            yield Glitch(r.ts_ms, next(kinds))


def frames(
    items: Iterator[Reading | Glitch], seed: int, checksum: bool
) -> Iterator[tuple[int, bytes]]:
    """The bytes an indicator sends for the readings (glitches become mangled frames)."""
    rng = random.Random(seed)
    for it in items:
        if isinstance(it, Reading):
            yield it.ts_ms, encode_frame(it.weight_kg, it.stable, checksum=checksum)
        else:
            yield it.ts_ms, glitch_frame(it, rng, checksum)


@dataclass
class SimStation:
    """Scales of one site: `serial` on ptys, `modbus` on loopback Modbus TCP servers.

    Lifecycle: construct -> start(start_ms) -> write_config(...) for the agent -> stop().
    """

    site: str
    serial: int = 3
    modbus: int = 1
    fps: float = 1.0
    fault_every: int = 0  # serial scales only: a mangled frame after every N frames
    checksum: bool = False
    seed: int = 1
    ptys: list[PtyIndicator] = field(default_factory=list)
    transmitters: list[ModbusTransmitter] = field(default_factory=list)

    def devices(self) -> list[str]:
        return [f"{self.site}-S{i + 1}" for i in range(self.serial + self.modbus)]

    def start(self, start_ms: int) -> None:
        for i in range(self.serial):
            pty = PtyIndicator()
            items = with_faults(
                staircase(self.seed * 10 + i, start_ms, self.fps), self.seed, self.fault_every
            )
            pty.play(frames(items, self.seed + i, self.checksum))
            self.ptys.append(pty)
        for j in range(self.modbus):
            tx = ModbusTransmitter()
            tx.start()
            tx.play(staircase(self.seed * 10 + self.serial + j, start_ms, self.fps))
            self.transmitters.append(tx)

    def stop(self) -> None:
        for pty in self.ptys:
            pty.close()
        for tx in self.transmitters:
            tx.stop()

    def config_text(
        self,
        *,
        broker_url: str,
        ca_file: Path | None,
        credentials_file: Path,
        queue_path: Path,
        keep_acked_s: float = 120.0,
        backoff_max_s: float = 30.0,
        status_interval_s: float = 60.0,
        log_stats_s: float = 300.0,
        replay_delay_s: float = 10.0,
    ) -> str:
        """A gateway TOML config for this station."""
        lines = [
            f'site = "{self.site}"',
            f"log_stats_s = {log_stats_s}",
            "",
            "[broker]",
            f'url = "{broker_url}"',
            *([f'ca_file = "{ca_file}"'] if ca_file else []),
            f'credentials_file = "{credentials_file}"',
            "",
            "[queue]",
            f'path = "{queue_path}"',
            f"keep_acked_s = {keep_acked_s}",
            "",
            "[publish]",
            f"backoff_max_s = {backoff_max_s}",
            f"status_interval_s = {status_interval_s}",
            f"replay_delay_s = {replay_delay_s}",
        ]
        devs = self.devices()
        for i, pty in enumerate(self.ptys):
            lines += [
                "",
                "[[devices]]",
                f'id = "{devs[i]}"',
                f'category = "{CATEGORIES[i % 4]}"',
                'interface = "serial"',
                f'port = "{pty.port}"',
                f"checksum = {str(self.checksum).lower()}",
                "capacity_kg = 240",
            ]
        for j, tx in enumerate(self.transmitters):
            i = self.serial + j
            poll = min(0.2, 0.25 / self.fps)
            lines += [
                "",
                "[[devices]]",
                f'id = "{devs[i]}"',
                f'category = "{CATEGORIES[i % 4]}"',
                'interface = "modbus"',
                'host = "127.0.0.1"',
                f"port = {tx.port}",
                f"poll_s = {poll:.4f}",
            ]
        return "\n".join(lines) + "\n"
