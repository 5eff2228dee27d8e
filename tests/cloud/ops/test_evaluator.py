"""The evaluator against a real influxd: each rule opens and auto-resolves an event from stored data,
dedup across passes and evaluators, incremental reads, overdue with an injected clock."""

from __future__ import annotations

import datetime as dt

import pytest

from cloud import measurements as m
from cloud.days import DAY_MS, day_start_ms, number_of
from cloud.influx import InfluxClient
from cloud.lineproto import line
from cloud.ops import store
from cloud.ops.evaluator import Evaluator, read_watermark
from cloud.ops.rules import HOUR_MS
from cloud.registry import Area, Device, Registry, Site

DAY = number_of(dt.date(2024, 6, 12))  # a Wednesday
START = day_start_ms(DAY) + 10 * HOUR_MS  # 10:00 Shanghai: last collection 06:00, next 18:00
MIN = 60_000


def _site(sid: str, capacity: float | None = 100.0) -> Site:
    return Site(
        id=sid,
        kind="waste",
        area="A01",
        name=sid,
        lat=31.15,
        lon=121.4,
        devices=[Device(id=f"{sid}-S1", category="dry", capacity_kg=capacity)],
    )


REGISTRY = Registry(
    areas=[Area(id="A01", name="area 1")],
    sites=[_site("WS-0101"), _site("WS-0102"), _site("WS-0103", None)],
)


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def _write(influx: InfluxClient, *lines: str) -> None:
    influx.write_lines(("\n".join(lines) + "\n").encode())


_seq = iter(range(1, 10**9))


def _reading(site: str, ts: int, gross: float, marker_at: int | None = None) -> list[str]:
    """A deposit as the ingestion worker stores it, with its dirty marker (written at marker_at)."""
    seq = next(_seq)
    tags = {"site": site, "area": "A01", "device": f"{site}-S1", "category": "dry"}
    out = [
        line(
            m.WASTE_READING.name,
            tags,
            {"net_kg": 1.0, "gross_kg": gross, "seq": seq},
            ts * 10**6 + seq % 10**6,
        )
    ]
    if marker_at is not None:
        out.append(
            line(
                m.DIRTY_SITE_DAY.name,
                {"site": site},
                {"day": "2024-06-12", "points": 1},
                marker_at * 10**6 + seq % 10**6,
            )
        )
    return out


def _open(influx: InfluxClient) -> dict[tuple[str, str], str]:
    return {
        k: ev.state for k, ev in store.current(store.read_episodes(influx)).items() if ev.active
    }


@pytest.fixture(scope="module")
def history(private_influx: InfluxClient) -> None:
    """Four weeks of one deposit an hour at WS-0102 (so its profile expects 1 an hour), ending 6 h
    before START; WS-0101 has no history (its silence is never judged)."""
    lines = []
    first = START - 28 * DAY_MS
    for h in range(28 * 24 - 6):
        lines += _reading("WS-0102", first + h * HOUR_MS + 5 * MIN, 10.0)
    lines += _reading("WS-0102", START - 6 * HOUR_MS + 5 * MIN, 10.0, marker_at=START - 6 * HOUR_MS)
    _write(private_influx, *lines)


def test_rules_open_dedup_and_auto_resolve(private_influx: InfluxClient, history: None) -> None:
    influx = private_influx
    clock = Clock(START)
    ev = Evaluator(influx, REGISTRY, clock=clock)
    # a bin at 95 % (capacity 100), read after the 06:00 collection; one at 50 % of the 240 kg default
    _write(
        influx,
        *_reading("WS-0101", START - 2 * MIN, 95.0, marker_at=START - MIN),
        *_reading("WS-0103", START - 2 * MIN, 120.0, marker_at=START - MIN),
        line(
            m.GATEWAY_STATUS.name,
            {"site": "WS-0101", "kind": "waste"},
            {"online": True},
            (START - HOUR_MS) * 10**6,
        ),
        line(
            m.GATEWAY_STATUS.name,
            {"site": "WS-0103", "kind": "waste"},
            {"online": False},
            (START - 11 * MIN) * 10**6,
        ),
        line(
            m.INGEST_STATS.name,
            {"worker": "ingest-9"},
            {"written_per_s": 0.0, "queue_depth": 7},
            (START - 90_000) * 10**6,
        ),
        line(
            m.INGEST_STATS.name,
            {"worker": "ingest-9"},
            {"written_per_s": 0.0, "queue_depth": 9},
            (START - 30_000) * 10**6,
        ),
        line(
            m.QUARANTINE.name,
            {"site": "WS-0103", "kind": "waste", "code": "bad_schema", "worker": "ingest-9"},
            {"reason": "x", "topic": "t", "payload": "{}", "entries": 25},
            (START - MIN) * 10**6,
        ),
        line(
            m.WASTE_TARGETS.name,
            {},
            {
                "recyclable_met": False,
                "recyclable_tonnes": 61.5,
                "dry_met": True,
                "sorting_met": True,
            },
            day_start_ms(DAY - 1) * 10**6,
        ),
    )
    first = ev.run_once()
    assert {(c.rule, c.subject) for c in first.opened} == {
        ("bin_full", "WS-0101-S1"),
        ("gateway_offline", "WS-0103"),
        ("station_silent", "WS-0102"),  # 6 deposits due since its last one, at 1 an hour
        ("ingest_stalled", "ingest-9"),
        ("quarantine_spike", "WS-0103"),
        ("target_missed", "recyclable"),
    }
    assert first.observed == 3 and not first.resolved
    assert read_watermark(influx) == START
    # the same pass again, and a second evaluator: nothing new (one open event per rule and subject)
    clock.now += MIN
    assert Evaluator(influx, REGISTRY, clock=clock).run_once().changes == []
    assert ev.run_once().changes == []
    clock.now = START + 10 * MIN
    assert ev.run_once().changes == []  # markers within the overlap (5 min) are read again
    assert ev.run_once().observed == 0  # incremental: no new markers, no readings re-read
    # conditions clear: the bin emptied (a low reading), the gateway back, a deposit at WS-0102,
    # the worker writing again, the quarantine quiet (time moves past the window), the target met
    clock.now = START + 20 * MIN
    _write(
        influx,
        *_reading("WS-0101", clock.now - MIN, 20.0, marker_at=clock.now - MIN),
        *_reading("WS-0102", clock.now - MIN, 12.0, marker_at=clock.now - MIN),
        line(
            m.GATEWAY_STATUS.name,
            {"site": "WS-0103", "kind": "waste"},
            {"online": True},
            (clock.now - MIN) * 10**6,
        ),
        line(
            m.INGEST_STATS.name,
            {"worker": "ingest-9"},
            {"written_per_s": 40.0, "queue_depth": 0},
            (clock.now - 10_000) * 10**6,
        ),
    )
    later = ev.run_once()
    assert {(c.rule, c.subject) for c in later.resolved} == {
        ("bin_full", "WS-0101-S1"),
        ("gateway_offline", "WS-0103"),
        ("station_silent", "WS-0102"),
        ("ingest_stalled", "ingest-9"),
        ("quarantine_spike", "WS-0103"),
    }
    assert all(c.by == "auto" for c in later.resolved)
    assert _open(influx) == {("target_missed", "recyclable"): "open"}
    eps = store.read_episodes(influx)[("bin_full", "WS-0101-S1")]
    assert len(eps) == 1 and eps[0].state == "resolved" and eps[0].opened_ms == START
    # the next day's targets are met: resolved
    clock.now = START + DAY_MS
    _write(
        influx,
        line(
            m.WASTE_TARGETS.name,
            {},
            {"recyclable_met": True, "dry_met": True, "sorting_met": True},
            day_start_ms(DAY) * 10**6,
        ),
    )
    assert [(c.rule, c.action) for c in ev.run_once().changes if c.rule == "target_missed"] == [
        ("target_missed", "resolve")
    ]


def test_late_data_and_overdue(private_influx: InfluxClient, history: None) -> None:
    """A reading with an old timestamp written now is seen (by its marker); the event goes overdue."""
    influx = private_influx
    clock = Clock(START + 2 * DAY_MS + 8 * HOUR_MS)  # Friday 18:00 ... collection now; use 19:00
    clock.now += HOUR_MS
    ev = Evaluator(influx, REGISTRY, clock=clock)
    ev.run_once()
    _write(influx, *_reading("WS-0103", clock.now - 30 * MIN, 230.0, marker_at=clock.now))
    opened = ev.run_once().opened
    assert ("bin_full", "WS-0103-S1") in {(c.rule, c.subject) for c in opened}
    (event,) = store.read_episodes(influx, "bin_full", "WS-0103-S1")[("bin_full", "WS-0103-S1")]
    assert event.severity == "major" and event.audience == "collection"
    assert event.deadline_ms == clock.now + 4 * HOUR_MS
    assert not event.overdue(clock.now + 4 * HOUR_MS) and event.overdue(clock.now + 4 * HOUR_MS + 1)
    # the next collection (06:00) passes with no new reading: presumed emptied, resolved
    clock.now = day_start_ms(DAY + 3) + 6 * HOUR_MS + MIN
    assert ("bin_full", "WS-0103-S1") in {(c.rule, c.subject) for c in ev.run_once().resolved}


def test_two_long_running_evaluators_each_see_every_marker(
    private_influx: InfluxClient, history: None
) -> None:
    """Each evaluator reads the markers since its own last pass, not the shared watermark another
    evaluator moved: its cache of scale states never misses a reading."""
    influx = private_influx
    clock = Clock(START + 5 * DAY_MS)
    a, b = Evaluator(influx, REGISTRY, clock=clock), Evaluator(influx, REGISTRY, clock=clock)
    a.run_once()
    b.run_once()
    _write(influx, *_reading("WS-0101", clock.now + MIN, 99.0, marker_at=clock.now + MIN))
    clock.now += 2 * MIN
    assert b.run_once().observed == 1  # b sees it and moves the shared watermark
    clock.now += 30 * MIN  # far past the overlap behind b's watermark
    seen = a.run_once()
    assert seen.observed == 1
    assert a.cache.scales is not None and a.cache.scales["WS-0101-S1"].gross_kg == 99.0


def test_odd_tags_from_dead_letters_and_stats_never_break_a_pass(
    private_influx: InfluxClient,
) -> None:
    """A dead letter's site tag comes from whatever topic a gateway sent (sanitized, but spaces,
    commas and = remain); a stats point may lack its worker tag. The pass opens an event for the
    first and skips the second."""
    influx = private_influx
    now = START + 20 * DAY_MS
    odd = "WS 01,99=x"
    _write(
        influx,
        line(
            m.QUARANTINE.name,
            {"site": odd, "kind": "waste", "code": "bad_topic", "worker": "w"},
            {"reason": "x", "topic": "t", "payload": "{}", "entries": 40},
            (now - MIN) * 10**6,
        ),
        line(
            m.INGEST_STATS.name,
            {},
            {"written_per_s": 0.0, "queue_depth": 3},
            (now - 90_000) * 10**6,
        ),
        line(
            m.INGEST_STATS.name,
            {},
            {"written_per_s": 0.0, "queue_depth": 3},
            (now - 30_000) * 10**6,
        ),
    )
    result = Evaluator(influx, REGISTRY, clock=Clock(now)).run_once()
    assert ("quarantine_spike", odd) in {(c.rule, c.subject) for c in result.opened}
    assert all(c.subject for c in result.changes)
    assert store.read_episodes(influx, "quarantine_spike", odd)[("quarantine_spike", odd)][0].active


def test_followups_overdue_from_the_aggregators_counts(private_influx: InfluxClient) -> None:
    """Counts only, from health_followup_counts: opens on a shown count >= 1, ignores a suppressed
    cell, resolves on 0."""
    influx = private_influx
    day = DAY + 40
    now = day_start_ms(day) + 9 * HOUR_MS
    ev = Evaluator(influx, REGISTRY, clock=Clock(now))

    def count(followups: int | None, at_day: int, suppressed: bool = False) -> None:
        fields: dict = (
            {"suppressed": True, "hidden": 1}
            if suppressed
            else {"followups": followups, "suppressed": False, "hidden": 0}
        )
        _write(
            influx,
            line(
                m.HEALTH_FOLLOWUP_COUNTS.name,
                {"state": "overdue", "reason": "all"},
                fields,
                day_start_ms(at_day) * 10**6,
            ),
        )

    count(3, day - 1)
    assert ("followups_overdue", "all") in {(c.rule, c.subject) for c in ev.run_once().opened}
    count(None, day, suppressed=True)  # today's cell hidden: neither
    assert [c for c in ev.run_once().changes if c.rule == "followups_overdue"] == []
    count(0, day)  # rewritten when the aggregator runs again: 0 overdue
    resolved = [c for c in ev.run_once().changes if c.rule == "followups_overdue"]
    assert [(c.action, c.audience) for c in resolved] == [("resolve", "health")]
