"""Stable-weight detection and ticket formation, driven by XK3190 frames through the framer."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contract import Category, Subcategory
from edge.weighbridge.stable import Arrived, Left, Stable, StableDetector, StableParams
from edge.weighbridge.tickets import (
    Aborted,
    GrossRecorded,
    OperatorEntry,
    TicketBook,
    TicketDraft,
    WeighStation,
)
from edge.weighbridge.xk3190 import Xk3190Framer, frames_of

STEP = 200  # ms between frames (the indicator sends about 5 frames a second here)
PAPER = OperatorEntry(
    plate="沪A12345",
    category=Category.RECYCLABLE,
    subcategory=Subcategory.PAPER,
    source_area="A07",
    destination="古美转运站",
)


class Bridge:
    """Feeds a WeighStation the weights of XK3190 frames (whole kg), one frame every STEP ms."""

    def __init__(self, station: WeighStation | None = None, seed: int = 1) -> None:
        self.station = station or WeighStation()
        self.framer = Xk3190Framer()
        self.ts = 0
        self.out: list[object] = []
        self.rng = random.Random(seed)

    def weights(self, grams: list[int]) -> Bridge:
        for w in self.framer.feed(frames_of(grams)):
            self.ts += STEP
            self.out += self.station.feed(self.ts, w)
        return self

    def empty(self, n: int = 10) -> Bridge:
        return self.weights([0] * n)

    def drive_on(self, load: int, n: int = 10) -> Bridge:
        """Axles come onto the bridge, the truck bounces: noisy, rising."""
        return self.weights(
            [
                load * (i + 1) // n // 1000 * 1000 + self.rng.randint(-150, 150) * 1000
                for i in range(n)
            ]
        )

    def stand(self, load: int, seconds: float = 5) -> Bridge:
        return self.weights([load] * int(seconds * 1000 / STEP))

    def drive_off(self, load: int, n: int = 10) -> Bridge:
        return self.weights(
            [
                load * (n - i - 1) // n // 1000 * 1000 + self.rng.randint(-150, 150) * 1000
                for i in range(n)
            ]
        ).empty(3)

    def truck(self, load: int, entry: OperatorEntry | None = None) -> Bridge:
        self.empty().drive_on(load)
        if entry is not None:
            self.station.enter(self.ts, entry)
        return self.stand(load).drive_off(load)

    def tickets(self) -> list[TicketDraft]:
        return [o for o in self.out if isinstance(o, TicketDraft)]

    def aborted(self) -> list[str]:
        return [o.reason for o in self.out if isinstance(o, Aborted)]


def test_detector_sees_arrival_one_plateau_and_departure() -> None:
    d = StableDetector(StableParams())
    events = []
    ts = 0
    for w in [0] * 5 + [4_000_000, 9_000_000, 12_100_000] + [12_340_000] * 30 + [6_000_000, 0]:
        ts += STEP
        events += d.feed(ts, w)
    kinds = [type(e) for e in events]
    assert kinds == [Arrived, Stable, Left]
    assert events[1] == Stable(1800 + 3000, 12_340_000)  # 3 s after the first 12 340 kg frame
    left = events[2]
    assert isinstance(left, Left) and left.grams == 12_340_000 and left.stable_ms == events[1].ts_ms


def test_noise_wider_than_the_band_is_never_stable() -> None:
    d = StableDetector(StableParams(band_g=20_000))
    events = []
    for i in range(200):
        events += d.feed(i * STEP, 10_000_000 + (30_000 if i % 2 else 0))
    assert [type(e) for e in events] == [Arrived]


def test_a_gap_in_the_frames_restarts_the_stable_window() -> None:
    d = StableDetector(StableParams(stable_ms=3000, max_gap_ms=1000))
    assert [type(e) for e in d.feed(0, 10_000_000)] == [Arrived]
    assert d.feed(2500, 10_000_000) == []  # 2.5 s gap: the window starts again
    for ts in (3300, 4100, 4900):
        assert d.feed(ts, 10_000_000) == []
    assert [type(e) for e in d.feed(5500, 10_000_000)] == [Stable]  # 3 s after 2500


def test_gross_then_tare_makes_one_exact_ticket() -> None:
    b = Bridge().truck(15_230_000, PAPER).truck(9_870_000, PAPER).empty()
    [t] = b.tickets()
    assert (t.gross.grams, t.tare_g, t.net_g, t.tare_source) == (
        15_230_000,
        9_870_000,
        5_360_000,
        "weighed",
    )
    ticket = t.ticket("WB-01-B1", 42)
    assert ticket.net_g == 5_360_000 and ticket.plate == "沪A12345"
    assert ticket.gross_ts < ticket.ts and ticket.subcategory is Subcategory.PAPER
    assert b.aborted() == []
    assert b.station.book.stored_tares == {"沪A12345": 9_870_000}


def test_stored_tare_closes_the_ticket_at_the_gross() -> None:
    book = TicketBook(stored_tares={"沪B54321": 8_000_000})
    entry = PAPER.model_copy(update={"plate": "沪B54321", "tare": "stored"})
    b = Bridge(WeighStation(book=book)).truck(11_500_000, entry)
    [t] = b.tickets()
    assert (t.net_g, t.tare_source, t.ts_ms) == (3_500_000, "stored", t.gross.ts_ms)
    assert book.open == {}


def test_stored_tare_missing_or_heavier_is_aborted() -> None:
    entry = PAPER.model_copy(update={"plate": "沪C00001", "tare": "stored"})
    b = Bridge().truck(11_500_000, entry)
    assert b.tickets() == [] and b.aborted() == ["no_stored_tare"]
    book = TicketBook(stored_tares={"沪C00001": 12_000_000})
    b = Bridge(WeighStation(book=book)).truck(11_500_000, entry)
    assert b.tickets() == [] and b.aborted() == ["not_heavier_than_tare"]


def test_truck_leaving_before_stable_gives_no_ticket() -> None:
    b = Bridge()
    b.empty().drive_on(14_000_000)
    b.station.enter(b.ts, PAPER)
    b.weights([14_000_000, 14_000_000]).drive_off(14_000_000)  # 0.4 s standing: not stable
    assert b.tickets() == [] and b.aborted() == ["left_before_stable"]
    # the entry is kept: the same truck comes back and is weighed properly
    b.truck(14_000_000).truck(9_000_000, PAPER)
    [t] = b.tickets()
    assert t.net_g == 5_000_000


def test_tare_needs_only_the_plate_but_a_gross_needs_category_and_area() -> None:
    plate_only = OperatorEntry(plate="沪A12345")
    b = Bridge().truck(15_000_000, PAPER).truck(9_000_000, plate_only)
    [t] = b.tickets()
    assert t.net_g == 6_000_000 and t.ticket("WB-01-B1", 1).category is Category.RECYCLABLE
    b = Bridge().truck(15_000_000, plate_only)
    assert b.tickets() == [] and b.aborted() == ["entry_incomplete"]


def test_no_plate_entered_gives_no_ticket() -> None:
    b = Bridge().truck(14_000_000)
    assert b.tickets() == [] and b.aborted() == ["no_plate"]


def test_tare_that_never_comes_expires() -> None:
    station = WeighStation(book=TicketBook(tare_timeout_ms=3600_000))
    b = Bridge(station).truck(15_000_000, PAPER)
    assert any(isinstance(o, GrossRecorded) for o in b.out)
    assert station.tick(b.ts + 1000) == []
    [late] = station.tick(b.ts + 3600_000 + 1)
    assert isinstance(late, Aborted) and late.reason == "tare_timeout" and late.grams == 15_000_000
    assert station.book.open == {}


def test_second_weighing_not_lighter_replaces_the_gross() -> None:
    b = Bridge().truck(15_000_000, PAPER).truck(15_000_000, PAPER).truck(6_000_000, PAPER)
    assert b.aborted() == ["tare_not_lighter"]
    [t] = b.tickets()
    assert t.net_g == 9_000_000


def test_interleaved_trucks_pair_by_plate() -> None:
    other = OperatorEntry(plate="沪D88888", category=Category.DRY, source_area="A03")
    b = Bridge()
    b.truck(15_000_000, PAPER).truck(20_000_000, other).truck(9_000_000, PAPER)
    b.truck(11_000_000, other)
    nets = sorted((t.gross.entry.plate, t.net_g) for t in b.tickets())
    assert nets == [("沪A12345", 6_000_000), ("沪D88888", 9_000_000)]
    dry = next(t for t in b.tickets() if t.gross.entry.category is Category.DRY)
    assert dry.ticket("WB-01-B1", 1).subcategory is None


def test_unused_entry_expires_and_link_loss_aborts_a_truck_on_the_bridge() -> None:
    station = WeighStation(entry_timeout_ms=60_000)
    station.enter(0, PAPER)
    [o] = station.tick(60_001)
    assert isinstance(o, Aborted) and o.reason == "entry_unused"
    b = Bridge(station).empty().drive_on(12_000_000)
    assert [a.reason for a in station.interrupted(b.ts) if isinstance(a, Aborted)] == ["link_lost"]
    assert station.interrupted(b.ts) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"plate": "AB12345"},  # no province character
        {"plate": "沪a12345"},
        {"category": "recyclable", "subcategory": None},
        {"category": "dry", "subcategory": "paper"},
        {"subcategory": "wood"},
        {"source_area": "A07 ; DROP"},
        {"destination": "x\n"},
        {"tare": "guess"},
    ],
)
def test_operator_entry_is_checked(bad: dict[str, object]) -> None:
    base = PAPER.model_dump()
    with pytest.raises(ValidationError):
        OperatorEntry.model_validate({**base, **bad})


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(12_000, 40_000), st.integers(6_000, 11_000)), min_size=1, max_size=5
    ),
    st.integers(0, 10_000),
)
def test_every_completed_weighing_pair_is_one_exact_ticket(
    pairs: list[tuple[int, int]], seed: int
) -> None:
    """Trucks in kg (as an indicator with 1 kg division shows them), noise while moving."""
    b = Bridge(seed=seed)
    for gross_kg, tare_kg in pairs:
        b.truck(gross_kg * 1000, PAPER).truck(tare_kg * 1000, PAPER)
    nets = [t.net_g for t in b.tickets()]
    assert nets == [(g - t) * 1000 for g, t in pairs]
    assert b.aborted() == []
