"""The typed weight sample every scale driver yields, and per-source counters."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum


class WeighMode(StrEnum):
    """What the weight value means (A&D header 2)."""

    GROSS = "GS"
    NET = "NT"
    TARE = "TR"


@dataclass(frozen=True, slots=True)
class WeightSample:
    """One reading of a scale: gateway time, weight in kg, stability and overload flags."""

    ts_ms: int
    gross_kg: float
    stable: bool
    overload: bool = False
    mode: WeighMode = WeighMode.GROSS
    device: str = ""


@dataclass(slots=True)
class SourceStats:
    """Counters of one source: good frames, malformed ones by reason, resyncs, reconnects."""

    frames: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    resyncs: int = 0
    reconnects: int = 0
    last_frame_ms: int | None = None

    @property
    def malformed_total(self) -> int:
        """All malformed frames of every reason."""
        return sum(self.malformed.values())
