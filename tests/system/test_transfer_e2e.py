"""The demo's transfer station on the real pipeline: eight stations of area A01 and the weighbridge
WB-01 simulated over a whole Shanghai day (and today so far), through Mosquitto, a worker and
influxd, aggregated: the weighbridge rows equal the tickets the trucks made, to the gram; the
reconciliation shows the stations and the weighbridge agreeing within the trucks' losses; the
targets name the weighbridge as their source."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from cloud import measurements as m
from cloud import registry as registry_mod
from cloud.aggregate.runner import Aggregator
from cloud.days import day_number, day_start_ms, number_of, today
from cloud.influx import InfluxClient
from devstack.stack import LocalStack
from firmware_sim.fleet import Fleet
from firmware_sim.transfer import LOSS_PPM, ROUND_MS, SimTransferStation
from tests.support.common import rows_of, wait_until

WB = "WB-01"


@pytest.fixture(scope="module")
def transfer_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[InfluxClient, SimTransferStation, registry_mod.Registry, int]]:
    root = tmp_path_factory.mktemp("transfer")
    reg = registry_mod.load()
    reg = registry_mod.add_site(reg, WB, "A01", "转运站地磅", 31.15, 121.40)
    reg = registry_mod.add_device(reg, f"{WB}-B1", "serial")
    path = root / "sites.yaml"
    registry_mod.save(reg, path)
    stack = LocalStack(root / "stack", reg)
    stack.start()
    try:
        config = stack.write_cloud_config(path)
        stack.wait_ready(
            "ingest-1",
            stack.spawn("ingest", "ingest", "--config", str(config), "--name", "ingest-1"),
        )
        yesterday = number_of(today()) - 1
        # 8 stations (A01), 150 s of simulated time per 0.05 s tick: within the trucks' 5-min lag
        fleet = Fleet(
            reg, stack.endpoint, warp=3000, start_ms=day_start_ms(yesterday), tick_s=0.05, limit=8
        )
        station = fleet.add_transfer(reg, WB, stack.endpoint(WB))
        assert isinstance(station, SimTransferStation)

        async def run() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(fleet.run(stop))
            while fleet.clock.now_ms() < int(time.time() * 1000) - 1000:
                await asyncio.sleep(0.2)
            stop.set()
            await task

        asyncio.run(run())
        influx = InfluxClient(stack.influx_config())
        n = len(station.tickets)
        wait_until(
            lambda: len(rows_of(influx, f"SELECT net_g FROM {m.WEIGHBRIDGE_TICKET.name}")) >= n,
            60,
            what="every ticket stored",
        )
        Aggregator(influx, reg).recompute([yesterday, yesterday + 1])
        yield influx, station, reg, yesterday
        influx.close()
    finally:
        stack.stop()


def test_weighbridge_rows_equal_the_tickets_to_the_gram(transfer_run) -> None:
    influx, station, _, yesterday = transfer_run
    made: dict[tuple[str, str], int] = {}
    for t in station.tickets:
        if day_number(t.ts) == yesterday:
            key = (t.category.value, t.subcategory.value if t.subcategory else "all")
            made[key] = made.get(key, 0) + t.net_g
    rows = rows_of(
        influx,
        f"SELECT net_g FROM {m.WEIGHBRIDGE_DAILY.name} WHERE area = 'A01' AND category != 'all' "
        f"AND time = {day_start_ms(yesterday)}ms GROUP BY category, subcategory",
    )
    stored = {(r["category"], r["subcategory"]): r["net_g"] for r in rows}
    rec = sum(g for (c, s), g in made.items() if c == "recyclable")
    assert stored.pop(("recyclable", "all")) == rec
    assert {k: v for k, v in stored.items() if v} == made
    assert len(station.tickets) >= 12 * 4  # a round every 2 h, a truck per category at least


def test_stations_and_weighbridge_agree_within_the_losses(transfer_run) -> None:
    influx, _, _, yesterday = transfer_run
    rows = rows_of(
        influx,
        f"SELECT * FROM {m.WASTE_RECONCILIATION.name} WHERE area = 'A01' "
        f"AND time = {day_start_ms(yesterday)}ms GROUP BY category",
    )
    by_cat = {r["category"]: r for r in rows}
    rounds = 24 * 3_600_000 // ROUND_MS
    for cat, ppm in LOSS_PPM.items():
        r = by_cat[cat]
        assert r["scale_g"] > 0, cat
        expected_loss = r["scale_g"] * ppm / 1e6
        # each round's loss is floored to the gram; grams of each reading rounded from kg
        assert abs(-r["diff_g"] - expected_loss) <= rounds + 1, (cat, r)
    assert by_cat["wet"]["diff_pct"] == pytest.approx(-2.0, abs=0.01)


def test_targets_use_the_weighbridge(transfer_run) -> None:
    influx, _, _, yesterday = transfer_run
    [t] = rows_of(
        influx, f"SELECT * FROM {m.WASTE_TARGETS.name} WHERE time = {day_start_ms(yesterday)}ms"
    )
    assert t["recyclable_source"] == "weighbridge" and t["dry_source"] == "weighbridge"
    assert t["sorting_source"] == "station_scales"
    assert t["recyclable_g"] < t["recyclable_scale_tonnes"] * 1e6  # less the trucks' losses
