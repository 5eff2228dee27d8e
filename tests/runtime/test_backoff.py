"""runtime.backoff.Backoff reproduces the three back-off loops it replaced, delay for delay."""

import random

from runtime.backoff import Backoff


def test_doubles_to_the_max_with_jitter_of_the_step() -> None:
    rng, ref = random.Random(3), random.Random(3)
    b = Backoff(0.25, 10.0, rng=rng)
    delay = 0.25  # the ingestion worker's and the InfluxDB client's old loop
    for _ in range(12):
        assert b.next_delay() == delay * (0.5 + ref.random())
        delay = min(delay * 2, 10.0)


def test_publisher_rhythm_with_reset_and_cap() -> None:
    rng, ref = random.Random(7), random.Random(7)
    lo, hi = 0.5, 30.0
    b = Backoff(lo, hi, start_s=min(lo * 2, hi), cap=True, rng=rng)
    old = lo  # the edge publisher's old loop
    for held in [False] * 8 + [True, False, False, True, True, False]:
        if held:
            b.reset()
        old = lo if held else min(old * 2, hi)
        assert b.next_delay() == min(old * (0.5 + ref.random()), hi)


def test_reset_returns_to_the_first_step() -> None:
    b = Backoff(1.0, 4.0, rng=random.Random(1))
    for _ in range(5):
        b.next_delay()
    assert b.step == 4.0
    b.reset()
    assert b.step == 1.0
