"""The simulated weighbridge speaks the manual's bytes, and the gateway's pure pipeline turns its
timeline (with glitches) into exactly the tickets it planned, to the gram."""

from __future__ import annotations

import heapq

import pytest

from edge.weighbridge.tickets import OperatorEntry, TicketBook, TicketDraft, WeighStation
from edge.weighbridge.xk3190 import Xk3190Framer, encode_eq, encode_tf0
from firmware_sim.weighbridge import Timeline, eq_frame, make_trucks, tf0_frame, timeline


def test_sim_frames_are_the_manuals_examples() -> None:
    assert tf0_frame(3260) == b"\x02+00326001C\x03"  # a captured A9 frame
    assert eq_frame(3000, 3) == b"=000.3000"  # A26 manual: 3.000
    assert eq_frame(-100, 2) == b"=00.1000-"  # A26 manual: -1.00
    for kg in (0, 7, 12_340, 99_999, -20):
        assert tf0_frame(kg) == encode_tf0(kg * 1000)
        assert eq_frame(kg) == encode_eq(kg * 1000)


def replay(t: Timeline, mode: str = "tf0") -> tuple[list[TicketDraft], Xk3190Framer]:
    """Frames through the framer, entries at their times, in time order, into a WeighStation."""
    stored = {x.plate: x.tare_g for x in t.expected if x.stored_tare}
    station = WeighStation(book=TicketBook(stored_tares=stored))
    framer = Xk3190Framer(mode=mode)  # type: ignore[arg-type]
    events = list(
        heapq.merge(((ts, 1, f) for ts, f in t.frames), ((ts, 0, e) for ts, e in t.entries))
    )
    out = []
    for ts, kind, item in events:
        if kind == 0:
            assert isinstance(item, str)
            station.enter(ts, OperatorEntry.model_validate_json(item))
        else:
            assert isinstance(item, bytes)
            for grams in framer.feed(item):
                out += station.feed(ts, grams)
    return [o for o in out if isinstance(o, TicketDraft)], framer


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_planned_trucks_become_exactly_their_tickets_despite_glitches(seed: int) -> None:
    trucks = make_trucks(8, seed, ["A01", "A07"], stored_every=4)
    t = timeline(trucks, seed=seed, glitch_rate=0.03)
    tickets, framer = replay(t)
    assert t.glitches > 0
    assert framer.stats.malformed_total + framer.stats.resyncs == t.glitches
    got = sorted((d.gross.entry.plate, d.gross.grams, d.tare_g, d.net_g) for d in tickets)
    want = sorted((x.plate, x.gross_g, x.tare_g, x.net_g) for x in trucks)
    assert got == want
    assert sum(d.net_g for d in tickets) == sum(x.net_g for x in trucks)
    assert {d.tare_source for d in tickets if d.gross.entry.tare == "stored"} == {"stored"}


def test_eq_mode_timeline() -> None:
    trucks = make_trucks(4, 9, ["A03"])
    tickets, framer = replay(timeline(trucks, seed=9, mode="eq"), "eq")
    assert sorted(d.net_g for d in tickets) == sorted(x.net_g for x in trucks)
    assert framer.stats.malformed_total == 0
