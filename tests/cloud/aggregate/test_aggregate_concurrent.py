"""Late data for two stations of the same day, written concurrently with a full backfill of that day
and two incremental aggregators: once the writes are done and one more incremental run has read
the markers again (within the overlap), every stored row equals a whole-day recompute and the
ground truth, to the gram, with distinct residents exact. Also: the markers name (site, day), and
an incremental run reads only the marked areas."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from cloud import measurements as m
from cloud.aggregate.encode import district_lines, district_residents_lines
from cloud.aggregate.reader import ReadingsReader
from cloud.aggregate.runner import Aggregator
from cloud.aggregate.schedule import DirtyWork
from cloud.aggregate.tonnage import Readings
from cloud.days import DAY_MS, day_start_ms, number_of
from cloud.ingest.handler import BatchPlanner, Message, day_marker_lines
from cloud.lineproto import join_lines, line
from contract.topics import waste_readings
from tests.support.common import rows_of

DAY = number_of(dt.date(2024, 11, 20))
WINDOW = f"time >= {day_start_ms(DAY)}ms AND time < {day_start_ms(DAY) + DAY_MS}ms"
SITES = ["WS-0101", "WS-0102", "WS-0201", "WS-0202", "WS-0301"]  # areas A01, A02, A03
LATE_SITES = ["WS-0101", "WS-0202"]  # two areas, the same day
CATS = ["dry", "wet", "recyclable", "hazardous"]
RESIDENTS = ["r-" + f"{i:032x}" for i in range(1, 9)]


def reading(site: str, scale: int, seq: int, minute: int, grams: int) -> dict[str, Any]:
    return {
        "device": f"{site}-S{scale}",
        "seq": seq,
        "ts": day_start_ms(DAY) + minute * 60_000,
        "category": CATS[scale - 1],
        "net_kg": grams / 1000,
        "resident": RESIDENTS[(seq + scale) % len(RESIDENTS)],
    }


def write(influx, registry, site: str, docs: list[dict[str, Any]]) -> None:
    """Plan a message as the worker does and write its points and markers in one request."""
    payload = json.dumps({"schema": "gumei.waste.readings.v1", "site": site, "readings": docs})
    plan = BatchPlanner(registry).plan_batch(
        [Message(waste_readings(site), payload.encode())], now_ms=day_start_ms(DAY) + DAY_MS
    )
    assert plan.readings == len(docs) and not plan.quarantine
    influx.write_lines(join_lines(plan.lines + day_marker_lines(plan.days, time.time_ns())))


FIRST = {
    s: [reading(s, k % 4 + 1, 100 + k, 60 + 7 * k, 250 + 13 * k) for k in range(40)] for s in SITES
}
LATE = {
    s: [reading(s, k % 4 + 1, 200 + k, 1439 - k % 1440, 1001 + k) for k in range(30)]
    + FIRST[s][:3]  # replays of counted readings
    for s in LATE_SITES
}


def stored(influx) -> dict[str, list[dict[str, Any]]]:
    return {
        name: sorted(
            rows_of(influx, f"SELECT * FROM {name} WHERE {WINDOW} GROUP BY *"),
            key=lambda r: json.dumps(r, sort_keys=True),
        )
        for name in (
            m.WASTE_DAILY.name,
            m.WASTE_AREA_DAILY.name,
            m.WASTE_RECONCILIATION.name,
            m.WASTE_SORTING_COMPARISON.name,
        )
    }


# Stored weighbridge rows of the day (as the aggregator writes them from tickets): the
# reconciliation of an incremental run takes the other areas' share of the district from them.
WEIGHBRIDGE = {("A01", "dry"): 5_000_123, ("A03", "wet"): 3_000_007, ("A02", "recyclable"): 917}


def weighbridge_rows() -> bytes:
    lines = [
        line(
            m.WEIGHBRIDGE_DAILY.name,
            {"area": area, "category": cat, "subcategory": "all"},
            {"net_g": g, "tonnes": g / 1e6, "loads": 1, "tickets": 1},
            day_start_ms(DAY) * 1_000_000,
        )
        for (area, cat), g in WEIGHBRIDGE.items()
    ]
    for cat in CATS:
        g = sum(v for (_, c), v in WEIGHBRIDGE.items() if c == cat)
        lines.append(
            line(
                m.WEIGHBRIDGE_DAILY.name,
                {"area": "all", "category": cat, "subcategory": "all"},
                {"net_g": g, "tonnes": g / 1e6, "loads": 1, "tickets": 1},
                day_start_ms(DAY) * 1_000_000,
            )
        )
    return join_lines(lines)


@pytest.fixture(scope="module")
def settled(influx, registry):
    influx.write_lines(weighbridge_rows())
    for site, docs in FIRST.items():
        write(influx, registry, site, docs)
    Aggregator(influx, registry).recompute([DAY])
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def backfill() -> None:
        barrier.wait()
        for _ in range(3):
            Aggregator(influx, registry).recompute([DAY])

    def late(site: str) -> None:
        barrier.wait()
        for k in range(0, len(LATE[site]), 11):  # in three batches, each followed by a run
            write(influx, registry, site, LATE[site][k : k + 11])
            Aggregator(influx, registry).run_incremental()

    def guard(fn, *args) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=guard, args=(backfill,))] + [
        threading.Thread(target=guard, args=(late, s)) for s in LATE_SITES
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    healed = Aggregator(influx, registry)
    healed.run_incremental()  # the next run reads the markers again (overlap) and heals any race
    after_incremental = stored(influx)
    Aggregator(influx, registry).recompute([DAY])
    return after_incremental, stored(influx)


def truth() -> tuple[dict[tuple[str, str], tuple[int, int]], dict[str, tuple[int, int, int]]]:
    """Ground truth: (site, category) -> (grams, deposits); area (and "all") -> (grams, deposits,
    distinct residents) over every category, each (device, seq) once."""
    seen: dict[tuple[str, int], dict[str, Any]] = {}
    for docs in [*FIRST.values(), *LATE.values()]:
        for d in docs:
            seen.setdefault((d["device"], d["seq"]), d)
    sites: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    areas: dict[str, list[Any]] = defaultdict(lambda: [0, 0, set()])
    for d in seen.values():
        site = d["device"][:7]
        grams = round(d["net_kg"] * 1000)
        sites[site, d["category"]][0] += grams
        sites[site, d["category"]][1] += 1
        for area in ("A0" + site[4], "all"):
            areas[area][0] += grams
            areas[area][1] += 1
            areas[area][2].add(d["resident"])
    return (
        {k: (v[0], v[1]) for k, v in sites.items()},
        {k: (v[0], v[1], len(v[2])) for k, v in areas.items()},
    )


def test_incremental_under_concurrency_equals_a_whole_day_recompute(settled) -> None:
    """Site, area and district rows, and the reconciliation and sorting comparison the
    incremental runs wrote for the marked areas only, equal a whole-day recompute."""
    after_incremental, recomputed = settled
    assert after_incremental == recomputed
    assert len(recomputed[m.WASTE_RECONCILIATION.name]) >= 4 * 5  # A01..A03 and the district
    assert len(recomputed[m.WASTE_SORTING_COMPARISON.name]) >= 3


def test_reconciliation_is_scales_against_weighbridge_to_the_gram(settled) -> None:
    rows, _ = settled
    _, areas = truth()
    got = {(r["area"], r["category"]): r for r in rows[m.WASTE_RECONCILIATION.name]}
    for area in ("A01", "A02", "A03", "all"):
        wb = sum(g for (a, _), g in WEIGHBRIDGE.items() if area in (a, "all"))
        row = got[area, "all"]
        assert (row["scale_g"], row["weighbridge_g"]) == (areas[area][0], wb)
        assert row["diff_g"] == wb - areas[area][0]


def test_rows_are_the_ground_truth(settled) -> None:
    rows, _ = settled
    sites, areas = truth()
    got_sites = {
        (r["site"], r["category"]): (r["net_g"], r["deposits"]) for r in rows[m.WASTE_DAILY.name]
    }
    assert got_sites == sites
    got_areas = {
        r["area"]: (r["net_g"], r["deposits"], r["residents"])
        for r in rows[m.WASTE_AREA_DAILY.name]
        if r["category"] == "all"
    }
    assert got_areas == areas


def test_markers_name_site_and_day(settled, influx) -> None:
    rows = rows_of(
        influx,
        f'SELECT "day", points FROM {m.DIRTY_SITE_DAY.name} WHERE "day" = \'2024-11-20\' GROUP BY site',
    )
    assert {(r["site"], r["day"]) for r in rows} >= {(s, "2024-11-20") for s in SITES}


def test_a_late_reading_reads_only_its_area(settled, influx, registry) -> None:
    """A marked site's day reads its area's readings only (A03: WS-0301's), not the district's."""
    write(influx, registry, "WS-0301", [reading("WS-0301", 2, 900, 600, 4321)])
    work = DirtyWork()
    work.add_site(DAY, "WS-0301")
    agg = Aggregator(influx, registry)
    result = agg.recompute_work(work, targets=False)
    agg.recount_district_residents([DAY])  # the other lane of `gumei aggregate loop`
    incremental = stored(influx)
    Aggregator(influx, registry).recompute([DAY], targets=False)
    # A03's rows and the district's, reconciliation included (the other areas' weighbridge
    # grams taken from the stored district rows), equal a whole-day recompute's
    assert incremental == stored(influx)
    assert result.days == [dt.date(2024, 11, 20)]
    assert result.readings == len(FIRST["WS-0301"]) + 1
    rows = rows_of(
        influx,
        f"SELECT net_g, deposits FROM {m.WASTE_DAILY.name} WHERE {WINDOW} AND site = 'WS-0301' "
        "AND category = 'wet'",
    )
    assert (
        rows[0]["deposits"] == 11
        and rows[0]["net_g"]
        == sum(round(d["net_kg"] * 1000) for d in FIRST["WS-0301"] if d["category"] == "wet") + 4321
    )


def test_reader_site_groups_equal_the_whole_day(settled, influx, registry) -> None:
    """read() of given sites (a few sites a query) and of a whole day (one query, no site list)
    give the same readings; groups of 2 sites, chunks of 7 rows and column batches of 5 rows
    (against the default size) exercise the group, chunk and batch edges."""
    agg = Aggregator(influx, registry, chunk_size=7)
    reader = ReadingsReader(
        influx, agg.reader.site_idx, agg.reader.cat_idx, 7, sites_per_query=2, batch_rows=5
    )
    a, names_a = reader.read(DAY, list(agg.reader.site_idx))
    b, names_b = agg.reader.read(DAY)  # a whole day, column batches of the default size

    def rows(r: Readings, names: Sequence[str]) -> list[tuple[int, ...]]:
        assert r.resident is not None
        res = [names[i] if i >= 0 else "" for i in r.resident.tolist()]
        cols = (r.ts_ms, r.site, r.category, r.seq, r.net_mg)
        return sorted((*x, hash(n)) for *x, n in zip(*(c.tolist() for c in cols), res, strict=True))

    assert len(a) == len(b) > 5 * 40 and rows(a, names_a) == rows(b, names_b)
    # a whole day as three time slices read at once, chunks of 7 rows, batches of 5: the same
    # readings, and still in series order (each device one run, in time order within it)
    sliced = ReadingsReader(
        influx, agg.reader.site_idx, agg.reader.cat_idx, 7, batch_rows=5, time_parts=3
    )
    c, names_c = sliced.read(DAY)
    assert rows(c, names_c) == rows(b, names_b)
    assert agg.reader.time_parts == 2 and series_order(b) and series_order(c)


def series_order(r: Readings) -> bool:
    """Each device's readings are one contiguous run, in time order (one series per device here)."""
    dev, ts = r.device, r.ts_ms
    cut = np.flatnonzero(dev[1:] != dev[:-1]) + 1
    heads = dev[np.concatenate(([0], cut))]
    same = dev[1:] == dev[:-1]
    return len(set(heads.tolist())) == len(heads) and bool((ts[1:][same] >= ts[:-1][same]).all())


def test_markers_of_distinct_site_days_never_share_a_point() -> None:
    """Series = site, time = the write's ms + the day number in ns: two markers are one point only
    when they name the same site and day in the same millisecond (the same news)."""
    days: Counter[tuple[int, str]] = Counter(
        {(DAY, "WS-0101"): 3, (DAY + 1, "WS-0101"): 1, (DAY, "WS-0102"): 2}
    )
    t = 1_764_201_600_123_456_789
    keys = [ln.split(" ")[0] + " " + ln.split(" ")[-1] for ln in day_marker_lines(days, t)]
    assert len(set(keys)) == 3
    again = day_marker_lines(Counter({(DAY, "WS-0101"): 9}), t + 5)  # same ms, other worker
    assert again[0].split(" ")[-1] == day_marker_lines(days, t)[0].split(" ")[-1]
    assert all(int(k.split(" ")[-1]) // 1_000_000 == t // 1_000_000 for k in keys)


def test_district_lines_leave_residents_alone() -> None:
    """The rows lane writes the district's tonnage without a residents field (fields merge in
    InfluxDB, so the residents lane's count stays); the residents lane writes only that field."""
    net = np.array([1_500, 0, 2_000_000, 0], dtype=np.int64)
    dep = np.array([1, 0, 3, 0], dtype=np.int64)
    tonnage = district_lines(DAY, net, dep)
    assert len(tonnage) == 3 and not any(
        "residents" in ln for ln in tonnage
    )  # dry, recyclable, all
    assert "net_mg=2001500i" in tonnage[-1] and "category=all" in tonnage[-1]
    res = district_residents_lines(DAY, dep, np.array([1, 0, 2, 0], dtype=np.int64), 2)
    assert [ln.split(" ")[1] for ln in res] == ["residents=1i", "residents=2i", "residents=2i"]


def test_rows_of_some_areas_are_those_of_all_areas_picked_out(
    settled, influx, registry, monkeypatch
) -> None:
    """area_rows / area_standard of some areas: the same numbers as the whole read has for them,
    and zero elsewhere, whether the areas are named in the query or (more than AREAS_PER_QUERY)
    read whole and picked out."""
    import cloud.aggregate.reader as reader

    agg = Aggregator(influx, registry)
    idx = agg._area_idx
    some = ["A01", "A03"]
    keep = np.zeros(len(idx), dtype=bool)
    keep[[idx[a] for a in some]] = True
    whole_net, whole_dep = agg.reader.area_rows(DAY, idx)
    whole_has, whole_meets = agg.reader.area_standard(DAY, idx)
    assert whole_net[keep].any() and whole_net[~keep].any()
    for per_query in (reader.AREAS_PER_QUERY, 1):
        monkeypatch.setattr(reader, "AREAS_PER_QUERY", per_query)
        net, dep = agg.reader.area_rows(DAY, idx, some)
        has, meets = agg.reader.area_standard(DAY, idx, some)
        assert (net[keep] == whole_net[keep]).all() and not net[~keep].any()
        assert (dep[keep] == whole_dep[keep]).all() and not dep[~keep].any()
        assert (has == (whole_has & keep)).all() and (meets == (whole_meets & keep)).all()
