"""The demo's transfer station: trucks empty the bins, tickets agree with the stations within the
losses, to the gram; the tickets are valid contract messages the aggregator counts once."""

from __future__ import annotations

import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud import registry as registry_mod
from cloud.aggregate.official import Tickets, counted_mask
from contract import WasteReading
from contract.days import day_number, day_start_ms
from contract.models import PLATE_PATTERN
from firmware_sim.transfer import LOSS_PPM, ROUND_MS, area_of_devices, collect, round_tickets

REG = registry_mod.load()
AREA_OF = area_of_devices(REG)
DEVICES = sorted(AREA_OF)
DAY = 20_500


@st.composite
def readings(draw: st.DrawFn) -> list[WasteReading]:
    n = draw(st.integers(0, 60))
    out = []
    for i in range(n):
        dev = draw(st.sampled_from(DEVICES))
        site = next(s for s in REG.sites if s.id == dev.rsplit("-", 1)[0])
        cat = next(d.category for d in site.devices if d.id == dev)
        assert cat is not None
        out.append(
            WasteReading(
                device=dev,
                seq=i + 1,
                ts=day_start_ms(DAY) + draw(st.integers(0, 3 * ROUND_MS)),
                category=cat.value,
                net_kg=draw(st.integers(1, 50_000)) / 100,
            )
        )
    return out


@settings(max_examples=200, deadline=None)
@given(readings())
def test_tickets_are_the_bins_less_the_losses_to_the_gram(rs: list[WasteReading]) -> None:
    end = day_start_ms(DAY) + ROUND_MS
    bins, left = collect(rs, end, AREA_OF)
    assert sorted(r.seq for r in left) == sorted(r.seq for r in rs if r.ts >= end)
    expected: dict[tuple[str, str], int] = {}
    for r in rs:
        if r.ts < end:
            key = (AREA_OF[r.device], r.category.value)
            expected[key] = expected.get(key, 0) + round(r.net_kg * 1000)
    assert bins == expected
    tickets = round_tickets(bins, end, "WB-01-B1", 1000)
    got: dict[tuple[str, str], int] = {}
    for t in tickets:
        key = (t.source_area, t.category.value)
        got[key] = got.get(key, 0) + t.net_g
        assert t.net_g == t.gross_g - t.tare_g > 0
        assert t.gross_ts < t.ts == end - 1 and day_number(t.ts) == day_number(end - 1)
        assert (t.subcategory is not None) == (t.category.value == "recyclable")
        assert re.match(PLATE_PATTERN, t.plate)
    for key, grams in bins.items():
        lost = grams * LOSS_PPM[key[1]] // 1_000_000
        assert got.get(key, 0) == grams - lost
    assert [t.ticket for t in tickets] == list(range(1000, 1000 + len(tickets)))


def test_the_aggregator_counts_every_transfer_ticket_once() -> None:
    """No transfer ticket names a weighbridge as destination: each is a load's first sighting."""
    end = day_start_ms(DAY) + ROUND_MS
    bins = {("A01", "recyclable"): 123_457, ("A01", "wet"): 2_000_000, ("A02", "dry"): 999}
    tickets = round_tickets(bins, end, "WB-01-B1", 1)
    n = len(tickets)
    cols = Tickets(
        device=np.zeros(n, dtype=np.int64),
        ticket=np.array([t.ticket for t in tickets], dtype=np.int64),
        ts_ms=np.full(n, end - 1, dtype=np.int64),
        gross_ts_ms=np.array([t.gross_ts for t in tickets], dtype=np.int64),
        site=np.zeros(n, dtype=np.int64),
        dest=np.full(n, -1, dtype=np.int64),
        plate=np.arange(n, dtype=np.int64),
        area=np.zeros(n, dtype=np.int64),
        category=np.zeros(n, dtype=np.int64),
        sub=np.full(n, -1, dtype=np.int64),
        net_g=np.array([t.net_g for t in tickets], dtype=np.int64),
    )
    assert counted_mask(cols, 12 * 3_600_000).all()
    assert sum(t.net_g for t in tickets if t.category.value == "recyclable") == 123_457 - 123
    assert {t.subcategory.value for t in tickets if t.subcategory} == {
        "paper",
        "plastic",
        "glass",
        "metal",
        "textile",
        "other",
    }
