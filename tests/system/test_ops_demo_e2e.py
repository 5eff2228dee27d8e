"""The demo's operations events on the real pipeline (what `gumei run` does, on three stations):
a simulated bin fills past 90 % and a simulated gateway is cut off without a DISCONNECT, through
Mosquitto (its Last Will), a worker and influxd; the evaluator opens bin_full for that scale and
gateway_offline for that station, and nothing for the others."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator

import pytest

from cloud import measurements as m
from cloud import registry as registry_mod
from cloud.influx import InfluxClient
from cloud.ops.evaluator import Evaluator
from cloud.ops.rules import Thresholds
from cloud.status import read_statuses
from devstack.stack import LocalStack
from firmware_sim.fleet import FILL_TO, Fleet
from tests.support.common import gumei, rows_of, wait_until

OFFLINE_MS = 5_000  # the test's gateway_offline delay (production: 10 min; the demo: 1 min)
CAPACITY_KG = 240.0  # the default registry's bins


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[InfluxClient, registry_mod.Registry, Fleet, str, str]]:
    root = tmp_path_factory.mktemp("ops-demo")
    reg = registry_mod.load()
    stack = LocalStack(root / "stack", reg)
    stack.start()
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    try:
        config = stack.write_cloud_config(registry_mod.DEFAULT_PATH.resolve())
        stack.wait_ready(
            "ingest-1",
            stack.spawn("ingest", "ingest", "--config", str(config), "--name", "ingest-1"),
        )
        stations = [s for s in reg.sites if s.kind == "waste" and not s.retired][:3]
        scale = next(d.id for d in stations[0].devices if d.category)
        killed = stations[2].id
        fleet = Fleet(
            reg,
            stack.endpoint,
            warp=60,
            start_ms=int(time.time() * 1000) - 30_000,  # caught up within a second
            tick_s=0.2,
            limit=3,
            fill=(scale, 15.0),
            kill=(killed, 3.0),
        )
        thread = threading.Thread(target=loop.run_until_complete, args=(fleet.run(stop),))
        thread.start()
        influx = InfluxClient(stack.influx_config())
        try:
            yield influx, reg, fleet, scale, killed
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(90)
            influx.close()
    finally:
        loop.close()
        stack.stop()


def test_the_filling_bin_and_the_killed_gateway_open_their_events(demo) -> None:
    influx, reg, fleet, scale, killed = demo
    evaluator = Evaluator(influx, reg, Thresholds(offline_ms=OFFLINE_MS))
    opened: dict[str, set[str]] = {}

    def both_opened() -> bool:
        for c in evaluator.run_once().opened:
            opened.setdefault(c.rule, set()).add(c.subject)
        return scale in opened.get("bin_full", set()) and killed in opened.get(
            "gateway_offline", set()
        )

    wait_until(both_opened, 90, interval=1.0, what=f"bin_full {scale} and gateway_offline {killed}")
    # nothing else: the other scales send no gross weight, the other gateways are online
    assert opened.get("bin_full") == {scale}
    assert opened.get("gateway_offline") == {killed}
    # the bin climbed through InfluxDB: gross_kg rising to past 90 % of capacity
    gross = [
        r["gross_kg"]
        for r in rows_of(
            influx,
            f"SELECT gross_kg FROM {m.WASTE_READING.name} WHERE device = '{scale}' "
            "AND gross_kg > 0",
        )
    ]
    assert len(gross) >= 3 and gross == sorted(gross)
    assert gross[-1] >= FILL_TO * CAPACITY_KG > 0.9 * CAPACITY_KG > gross[0]
    # the killed gateway's Last Will: offline in the latest status, its neighbours online
    states = {s.site: s.state for s in read_statuses(influx, reg) if s.site in fleet_sites(fleet)}
    assert states[killed] == "offline"
    assert {site: st for site, st in states.items() if site != killed} == {
        site: "online" for site in states if site != killed
    }
    assert any(what == f"{killed} killed" for _, what in fleet.truth.events)


def fleet_sites(fleet: Fleet) -> set[str]:
    return {g.site.id for g in fleet.gateways}


def test_bad_demo_subjects_are_refused_in_one_line(tmp_path) -> None:
    reg = registry_mod.load()
    from runtime.mqtt import MqttEndpoint

    def ep(site: str) -> MqttEndpoint:
        return MqttEndpoint(username=site, password="x")

    with pytest.raises(ValueError, match="not an active scale"):
        Fleet(reg, ep, limit=2, fill=("NO-SUCH-S1", 10.0))
    with pytest.raises(ValueError, match="fill seconds"):
        scale = next(d.id for s in reg.sites if s.kind == "waste" for d in s.devices if d.category)
        Fleet(reg, ep, limit=2, fill=(scale, 0.0))
    with pytest.raises(ValueError, match="not a waste station"):
        Fleet(reg, ep, limit=2, kill=("WS-9999' OR 1=1", 1.0))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--fill-bin", "WS-0101-S9' OR 1=1"], "not an active scale"),
        (["--kill-gateway", "WB-01"], "not a waste station"),
        (["--fill-bin", "WS-0101-S1", "--fill-seconds", "0"], "fill-seconds"),
        (["--kill-gateway", "WS-0102", "--kill-after", "-1"], "kill-after"),
    ],
)
def test_sim_fleet_refuses_bad_demo_options_in_one_line(tmp_path, args, fragment) -> None:
    reg = registry_mod.load()
    secrets = tmp_path / "mqtt.json"
    secrets.write_text(json.dumps({s.id: "pw" for s in reg.sites}))
    r = gumei("sim", "fleet", "--port", "1", "--secrets", str(secrets), *args, check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert fragment in r.stderr
