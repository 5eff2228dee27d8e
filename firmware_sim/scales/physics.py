"""A waste-bin scale's physics over simulated time, recording the ground truth it produced."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from contract.days import local_hour

__all__ = ["local_hour"]  # re-exported: the Shanghai hour is defined once, in contract.days


@dataclass(frozen=True, slots=True)
class CategoryProfile:
    """Deposit sizes (log-normal), peak arrival rate and bin of one waste category."""

    median_kg: float
    sigma: float
    peak_per_hour: float
    bin_tare_kg: float
    capacity_kg: float


# Wet (kitchen) bags are the heaviest, recyclables light and varied, hazardous rare and small.
PROFILES: dict[str, CategoryProfile] = {
    "wet": CategoryProfile(1.3, 0.55, 50.0, 14.0, 150.0),
    "dry": CategoryProfile(0.9, 0.70, 40.0, 12.0, 90.0),
    "recyclable": CategoryProfile(0.6, 0.90, 15.0, 12.0, 60.0),
    "hazardous": CategoryProfile(0.15, 0.80, 0.6, 4.0, 20.0),
}
MIN_DEPOSIT_KG = 0.05
MAX_DEPOSIT_KG = 25.0
COLLECTION_HOURS = (9.5, 20.5)  # bins emptied after the morning and evening drop windows


def activity(hour: float) -> float:
    """Relative deposit rate: Shanghai's fixed drop windows 07-09 and 18-20 are the peaks."""
    if 7 <= hour < 9 or 18 <= hour < 20:
        return 1.0
    if 6 <= hour < 7 or 9 <= hour < 10 or 17 <= hour < 18 or 20 <= hour < 21:
        return 0.25
    if 10 <= hour < 17:
        return 0.05
    return 0.01


@dataclass(frozen=True, slots=True)
class Reading:
    """What the indicator shows at one instant (weight already quantized to the division)."""

    ts_ms: int
    weight_kg: float
    stable: bool
    overload: bool = False


@dataclass(frozen=True, slots=True)
class Glitch:
    """A frame the line mangled; `kind` names the fault."""

    ts_ms: int
    kind: str


@dataclass(frozen=True, slots=True)
class TrueDeposit:
    """Ground truth: a deposit really made, its start time and exact mass."""

    ts_ms: int
    net_kg: float


@dataclass(frozen=True, slots=True)
class TrueEmptying:
    """Ground truth: the bin emptied (swapped or tipped) at ts_ms, removing removed_kg."""

    ts_ms: int
    removed_kg: float
    swapped: bool


@dataclass(slots=True)
class PhysicsParams:
    """Knobs of the scale model; defaults resemble a 300 kg platform with a 10 g division."""

    frame_ms: int = 500
    division_g: int = 10
    noise_g: float = 3.0
    drift_g_per_sqrt_h: float = 6.0
    thermal_drift_g: float = 10.0
    max_kg: float = 300.0
    glitch_rate: float = 0.002  # per frame
    false_stable_rate: float = 0.05  # per frame during motion
    disconnects_per_hour: float = 0.3
    rate_scale: float = 1.0  # multiplies every category's arrival rate


@dataclass
class ScaleModel:
    """One scale with one bin of one category; iterate run() for readings and glitches."""

    category: str
    seed: int
    start_ms: int
    params: PhysicsParams = field(default_factory=PhysicsParams)
    deposits: list[TrueDeposit] = field(default_factory=list)
    emptyings: list[TrueEmptying] = field(default_factory=list)
    disconnects: list[tuple[int, int]] = field(default_factory=list)
    glitches: int = 0

    def __post_init__(self) -> None:
        self.profile = PROFILES[self.category]
        self.rng = random.Random(self.seed)
        self.load_g = 0.0
        self.tare_g = self.profile.bin_tare_kg * 1000 * self.rng.uniform(0.95, 1.05)
        self.bin_on = True
        self.zero_g = 0.0  # zero offset: drift, removed by re-zeroing on a bare platform
        self.walk_g = 0.0

    def _deposit_mass_g(self) -> float:
        p = self.profile
        kg = self.rng.lognormvariate(math.log(p.median_kg), p.sigma)
        return min(max(kg, MIN_DEPOSIT_KG), MAX_DEPOSIT_KG) * 1000

    def _platform_g(self) -> float:
        return (self.tare_g + self.load_g) if self.bin_on else 0.0

    def _motion(
        self, t: int, until: int, start_g: float, end_g: float
    ) -> Iterator[tuple[int, float, bool]]:
        """Frames of a settling transient from start_g to end_g: overshoot, damped wobble."""
        amp = (end_g - start_g) * self.rng.uniform(0.3, 1.5)
        freq = self.rng.uniform(1.5, 4.0)
        t0 = t
        while t < until:
            x = (t - t0) / 1000
            value = end_g + amp * math.exp(-x / 0.8) * math.sin(2 * math.pi * freq * x + 0.3)
            value += self.rng.gauss(0, 25)
            yield t, value, self.rng.random() < self.params.false_stable_rate
            t += self.params.frame_ms

    def _collection_due(self, t: int, last_t: int) -> bool:
        h0, h1 = local_hour(last_t), local_hour(t)
        return any((h0 < c <= h1) or (h1 < h0 and (c > h0 or c <= h1)) for c in COLLECTION_HOURS)

    def _emptying(self, t: int) -> Iterator[tuple[int, float, bool]]:
        """A collection: the full bin swapped for an empty one, or tipped in place."""
        rng, fm = self.rng, self.params.frame_ms
        removed = self.load_g
        swapped = rng.random() < 0.6
        self.emptyings.append(TrueEmptying(t, removed / 1000, swapped))
        full = self._platform_g()
        if swapped:
            end = t + int(rng.uniform(3, 6) * 1000)
            yield from self._motion(t, end, full, 0.0)
            self.bin_on, self.load_g = False, 0.0
            bare_end = end + int(rng.uniform(30, 180) * 1000)
            for tt in range(end, bare_end, fm):
                yield tt, 0.0, True  # bare platform; the indicator re-zeroes (see run)
            self.tare_g = self.profile.bin_tare_kg * 1000 * rng.uniform(0.95, 1.05)
            self.bin_on = True
            yield from self._motion(
                bare_end, bare_end + int(rng.uniform(2, 4) * 1000), 0.0, self.tare_g
            )
        else:
            self.load_g = 0.0
            end = t + int(rng.uniform(10, 20) * 1000)
            yield from self._motion(t, end, full, self.tare_g)

    def _physical(self, start_ms: int, end_ms: int) -> Iterator[tuple[int, float, bool]]:
        """(ts, true platform grams without zero offset, stable) at every frame."""
        rng, fm, p = self.rng, self.params.frame_ms, self.profile
        t, last_t, free_at, pending = start_ms, start_ms, start_ms, False
        while t < end_ms:
            pending = (
                pending or self._collection_due(t, last_t) or self.load_g > p.capacity_kg * 900
            )
            last_t = t
            if pending and t >= free_at:  # staff wait until the resident has stepped away
                for item in self._emptying(t):
                    yield item
                    t = item[0] + fm
                free_at, pending = t, False
                continue
            rate = p.peak_per_hour * self.params.rate_scale * activity(local_hour(t))
            if not pending and t >= free_at and rng.random() < rate * fm / 3_600_000:
                before = self._platform_g()
                mass = self._deposit_mass_g()
                self.deposits.append(TrueDeposit(t, mass / 1000))
                self.load_g += mass
                settle = t + int(rng.uniform(1.2, 3.5) * 1000)
                for item in self._motion(t, settle, before, self._platform_g()):
                    yield item
                t = settle
                free_at = t + int(rng.uniform(2, 6) * 1000)  # the next resident steps up
                continue
            yield t, self._platform_g(), True
            t += fm

    def run(self, hours: float) -> Iterator[Reading | Glitch]:
        """Indicator output for `hours` of simulated time; ground truth fills as it runs."""
        pp, rng = self.params, self.rng
        end_ms = self.start_ms + int(hours * 3_600_000)
        offline_until = -1
        step_sd = pp.drift_g_per_sqrt_h * math.sqrt(pp.frame_ms / 3_600_000)
        for t, grams, stable in self._physical(self.start_ms, end_ms):
            self.walk_g += rng.gauss(0, step_sd)
            thermal = pp.thermal_drift_g * math.sin(2 * math.pi * (local_hour(t) - 9) / 24)
            if self.bin_on:
                shown = grams + self.zero_g + self.walk_g + thermal + rng.gauss(0, pp.noise_g)
            else:
                # auto-zero tracking keeps a bare platform at zero, drift included
                self.zero_g = -(self.walk_g + thermal)
                shown = rng.gauss(0, pp.noise_g / 3)
            if t < offline_until:
                continue
            if rng.random() < pp.disconnects_per_hour * pp.frame_ms / 3_600_000:
                offline_until = t + int(rng.uniform(5, 90) * 1000)
                self.disconnects.append((t, offline_until))
                continue
            if rng.random() < pp.glitch_rate:
                self.glitches += 1
                yield Glitch(t, rng.choice(GLITCH_KINDS))
                continue
            div = pp.division_g
            q = round(shown / div) * div
            yield Reading(t, q / 1000, stable, overload=q > pp.max_kg * 1000)


GLITCH_KINDS = ("truncated", "bad_unit", "random_bytes", "bad_header", "bad_number", "merged")
