"""A truck on the weighbridge: arrival, stable weight (plateaus), departure; pure, integer grams.

An XK3190 in continuous mode sends no stability flag, so the gateway decides: the bridge is
*stable* when every weight of the last `stable_ms` lies within `band_g` (one or two divisions) and
the window really spans `stable_ms` (no gap in the frames longer than `max_gap_ms`). A truck
*arrives* when the weight reaches `min_truck_g` and *leaves* when it falls below `empty_g`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StableParams:
    """Thresholds of the detector (grams, milliseconds)."""

    min_truck_g: int = 1_000_000  # 1 t: a truck (a person or a cart is not)
    empty_g: int = 200_000  # below this the bridge is empty again
    band_g: int = 20_000  # max - min within the window: one division of a 60 t bridge
    stable_ms: int = 3000
    max_gap_ms: int = 1500  # frames further apart than this break a stable window

    def __post_init__(self) -> None:
        if not 0 <= self.empty_g < self.min_truck_g:
            raise ValueError("empty_g must be >= 0 and below min_truck_g")
        if self.band_g < 0 or self.stable_ms <= 0 or self.max_gap_ms <= 0:
            raise ValueError("band_g >= 0, stable_ms > 0 and max_gap_ms > 0 required")


@dataclass(frozen=True, slots=True)
class Arrived:
    """A truck came onto the bridge."""

    ts_ms: int


@dataclass(frozen=True, slots=True)
class Stable:
    """The bridge held one weight for stable_ms (a new plateau)."""

    ts_ms: int
    grams: int


@dataclass(frozen=True, slots=True)
class Left:
    """The truck left; `grams` is the last stable weight seen while it stood there (first reached
    at `stable_ms`), if any."""

    ts_ms: int
    grams: int | None
    arrived_ms: int
    stable_ms: int | None = None


BridgeEvent = Arrived | Stable | Left


class StableDetector:
    """Feeds (ts, grams) weights; returns arrival, plateau and departure events. Pure, small."""

    def __init__(self, params: StableParams | None = None) -> None:
        self.p = params or StableParams()
        self._window: deque[tuple[int, int]] = deque()
        self._occupied_since: int | None = None
        self._plateau: int | None = None
        self._plateau_ms: int | None = None

    @property
    def occupied(self) -> bool:
        """Whether a truck is on the bridge."""
        return self._occupied_since is not None

    def reset(self) -> None:
        """Forget everything (after a lost serial link: a truck may have come and gone)."""
        self._window.clear()
        self._occupied_since = None
        self._plateau = None

    def feed(self, ts_ms: int, grams: int) -> list[BridgeEvent]:
        """Events caused by this weight (usually none)."""
        p = self.p
        out: list[BridgeEvent] = []
        if self._window and ts_ms - self._window[-1][0] > p.max_gap_ms:
            self._window.clear()
        self._window.append((ts_ms, grams))
        while len(self._window) > 1 and self._window[1][0] <= ts_ms - p.stable_ms:
            self._window.popleft()
        if self._occupied_since is None:
            if grams >= p.min_truck_g:
                self._occupied_since = ts_ms
                self._plateau = None
                out.append(Arrived(ts_ms))
            else:
                return out
        elif grams < p.empty_g:
            out.append(Left(ts_ms, self._plateau, self._occupied_since, self._plateau_ms))
            self._occupied_since = None
            self._plateau = None
            return out
        if self._window[0][0] > ts_ms - p.stable_ms or grams < p.min_truck_g:
            return out
        weights = [g for _, g in self._window]
        if max(weights) - min(weights) > p.band_g:
            return out
        if self._plateau is None or abs(grams - self._plateau) > p.band_g:
            self._plateau, self._plateau_ms = grams, ts_ms
            out.append(Stable(ts_ms, grams))
        return out
