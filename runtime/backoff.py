"""Exponential back-off with jitter: the one retry rhythm of the InfluxDB client, the ingestion
worker and the edge publisher."""

from __future__ import annotations

import random


class Backoff:
    """Delays that double from `first_s` up to `max_s`, each jittered to 50-150 % of its step.

    `next_delay()` gives the delay of the current step and moves to the next; `reset()` goes back
    to `first_s`. `start_s` is the step of the very first delay (default `first_s`). With
    `cap=True` a jittered delay never exceeds `max_s` either. `rng` defaults to the `random` module.
    """

    def __init__(
        self,
        first_s: float,
        max_s: float,
        *,
        start_s: float | None = None,
        cap: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        self.first_s, self.max_s, self.cap = first_s, max_s, cap
        self.step = first_s if start_s is None else start_s
        self._rng = rng

    def next_delay(self) -> float:
        """The jittered delay of the current step; the step then doubles (at most `max_s`)."""
        delay = self.step * (0.5 + (self._rng or random).random())
        self.step = min(self.step * 2, self.max_s)
        return min(delay, self.max_s) if self.cap else delay

    def reset(self) -> None:
        """Back to the shortest step (after something that worked)."""
        self.step = self.first_s
