"""Deposit detection over a scale's gross-weight stream: pure, streaming, exact in grams."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from edge.scales.sample import WeightSample


class EventKind(StrEnum):
    """What a settled change of level means."""

    DEPOSIT = "deposit"  # stable step up: waste put in
    EMPTYING = "emptying"  # large step down: bin emptied, swapped or re-zeroed
    REMOVAL = "removal"  # small step down: something taken out (never negative waste)
    BIN_PLACED = "bin_placed"  # step up from a bare platform: an (empty) bin put on
    ANOMALY = "anomaly"  # step up too large to be one deposit (person, vehicle, fault)


@dataclass(frozen=True, slots=True)
class DetectorParams:
    """Tuning of the detector; weights in kg, rounded to grams internally."""

    settle_samples: int = 3  # consecutive stable samples that make a level
    tolerance_kg: float = 0.02  # max distance of a sample from the level (about 2 divisions)
    min_deposit_kg: float = 0.04  # smallest step up that is a deposit
    empty_min_kg: float = 2.0  # a step down at least this large is an emptying
    platform_empty_kg: float = 1.0  # a level below this means no bin on the platform
    max_deposit_kg: float = 60.0  # a larger step up is an anomaly, not one deposit

    def __post_init__(self) -> None:
        if self.settle_samples < 1:
            raise ValueError("settle_samples must be at least 1")
        if not 0 <= self.tolerance_kg < self.min_deposit_kg <= self.max_deposit_kg:
            raise ValueError("need 0 <= tolerance_kg < min_deposit_kg <= max_deposit_kg")


@dataclass(frozen=True, slots=True)
class ScaleEvent:
    """A settled change of level; for a deposit delta_kg is its net weight (> 0)."""

    kind: EventKind
    ts_ms: int
    delta_kg: float
    gross_kg: float
    device: str = ""


def _grams(kg: float) -> int:
    return round(kg * 1000)


@dataclass(slots=True)
class DepositDetector:
    """Streaming detector: feed samples in time order, get at most one event per sample."""

    params: DetectorParams = field(default_factory=DetectorParams)
    level_g: int | None = None  # the settled reference level
    _run: deque[int] = field(default_factory=deque)
    _run_ts: int = 0
    _settled: bool = False
    ignored: int = 0  # unstable or overload samples seen

    def reset(self) -> None:
        """Forget the current run (after a disconnect); the reference level is kept."""
        self._run.clear()
        self._settled = False

    def feed(self, s: WeightSample) -> ScaleEvent | None:
        """Take one sample; return the event it completes, if any."""
        p = self.params
        if not s.stable or s.overload:
            self.ignored += 1
            self.reset()
            return None
        g = _grams(s.gross_kg)
        if self._run and abs(g - _median(self._run)) > _grams(p.tolerance_kg):
            self.reset()  # the level moved while the indicator said stable
        if not self._run:
            self._run_ts = s.ts_ms
        self._run.append(g)
        if len(self._run) > p.settle_samples:
            self._run.popleft()
        if len(self._run) < p.settle_samples:
            return None
        level = _median(self._run)
        if self._settled:
            self.level_g = level  # follow slow drift inside one stable run
            return None
        self._settled = True
        return self._new_level(level, s.device)

    def _new_level(self, level: int, device: str) -> ScaleEvent | None:
        p = self.params
        before, self.level_g = self.level_g, level
        if before is None:
            return None
        delta = level - before
        kind: EventKind | None = None
        if delta >= _grams(p.min_deposit_kg):
            if before < _grams(p.platform_empty_kg):
                kind = EventKind.BIN_PLACED
            elif delta > _grams(p.max_deposit_kg):
                kind = EventKind.ANOMALY
            else:
                kind = EventKind.DEPOSIT
        elif delta <= -_grams(p.empty_min_kg):
            kind = EventKind.EMPTYING
        elif delta <= -_grams(p.min_deposit_kg):
            kind = EventKind.REMOVAL
        if kind is None:
            return None  # noise or drift: absorbed into the level
        return ScaleEvent(kind, self._run_ts, delta / 1000, level / 1000, device)


def _median(values: Iterable[int]) -> int:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def detect(
    samples: Iterable[WeightSample], params: DetectorParams | None = None
) -> Iterator[ScaleEvent]:
    """All events of a sample stream (pure: a fresh detector per call)."""
    det = DepositDetector(params or DetectorParams())
    for s in samples:
        ev = det.feed(s)
        if ev is not None:
            yield ev


def deposits(
    samples: Iterable[WeightSample], params: DetectorParams | None = None
) -> list[ScaleEvent]:
    """Only the deposit events of a sample stream."""
    return [e for e in detect(samples, params) if e.kind is EventKind.DEPOSIT]
