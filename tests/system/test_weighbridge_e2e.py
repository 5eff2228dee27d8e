"""A simulated weighbridge (XK3190 bytes on a pty, an operator typing) -> the weighbridge gateway ->
real Mosquitto -> a real ingestion worker -> influxd: tickets exact to the gram, counted once under
redelivery; and what a hostile weighbridge gateway (or a station posing as one) can and cannot do."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud import measurements as m
from cloud import registry as registry_mod
from cloud.influx import InfluxClient
from contract.models import MAX_PAYLOAD_BYTES, TICKETS_SCHEMA, now_ms
from contract.topics import health_measurements, waste_readings, weighbridge_tickets
from devstack.services import stop_process
from devstack.stack import LocalStack
from edge.config import WeighbridgeConfig
from edge.queue import DurableQueue
from edge.weighbridge.gateway import WeighbridgeGateway
from firmware_sim.weighbridge import Timeline, WeighbridgeSim, make_trucks, timeline
from tests.support.common import count, rows_of, wait_until
from tests.support.security import probe

WB, OTHER, STATION = "WB-01", "WB-02", "WS-0101"
DEV = f"{WB}-B1"
T = m.WEIGHBRIDGE_TICKET.name


@pytest.fixture(scope="module")
def wb_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A private broker, influxd and worker whose registry has two weighbridges."""
    root = tmp_path_factory.mktemp("weighbridge")
    reg = registry_mod.load()
    for site, area in ((WB, "A07"), (OTHER, "A08")):
        reg = registry_mod.add_site(reg, site, area, f"转运站地磅 {site}", 31.15, 121.40)
        reg = registry_mod.add_device(reg, f"{site}-B1", "serial")
    path = root / "sites.yaml"
    registry_mod.save(reg, path)
    s = LocalStack(root / "stack", reg)
    s.start()
    try:
        config = s.write_cloud_config(path)
        s.wait_ready(
            "ingest-1", s.spawn("ingest", "ingest", "--config", str(config), "--name", "ingest-1")
        )
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def wb_influx(wb_stack: LocalStack) -> Iterator[InfluxClient]:
    with InfluxClient(wb_stack.influx_config()) as client:
        yield client


def stored(influx: InfluxClient, site: str = WB) -> list[dict[str, object]]:
    return rows_of(influx, f"SELECT * FROM {T} WHERE site = '{site}'")


def quarantined(influx: InfluxClient, site: str) -> dict[str, int]:
    rows = rows_of(
        influx, f"SELECT count(reason) FROM quarantine WHERE site = '{site}' GROUP BY code"
    )
    return {str(r["code"]): int(r["count"]) for r in rows}


def gateway_config(
    root: Path, stack: LocalStack, port: str, stored_tares: dict[str, int]
) -> WeighbridgeConfig:
    ep = stack.endpoint(WB)
    creds = root / "mqtt-password"
    creds.write_text(stack.passwords[WB] + "\n")
    creds.chmod(0o600)
    return WeighbridgeConfig.model_validate(
        {
            "site": WB,
            "broker": {
                "url": f"mqtts://127.0.0.1:{ep.port}",
                "ca_file": str(ep.ca_file),
                "credentials_file": str(creds),
            },
            "queue": {"path": str(root / "queue.db"), "keep_acked_s": 3600},
            "publish": {"status_interval_s": 5},
            "weighbridge": {
                "id": DEV,
                "port": port,
                "stable_s": 0.4,  # the simulator runs 5x: 5 s standing are 1 s here
                "max_gap_s": 0.6,
                "silence_s": 30,
                "operator_input": str(root / "operator.jsonl"),
                "state_file": str(root / "book.json"),
                "stored_tares_kg": {p: g // 1000 for p, g in stored_tares.items()},
            },
        }
    )


def test_simulated_weighbridge_tickets_reach_influx_exactly_once(
    wb_stack: LocalStack, wb_influx: InfluxClient, tmp_path: Path
) -> None:
    trucks = make_trucks(6, 15, ["A07", "A08"], stored_every=3)
    t = timeline(trucks, seed=15, glitch_rate=0.02, start_ms=now_ms())
    sim = WeighbridgeSim(t, tmp_path / "operator.jsonl", speed=5)
    cfg = gateway_config(
        tmp_path, wb_stack, sim.port, {x.plate: x.tare_g for x in trucks if x.stored_tare}
    )
    with DurableQueue.open(cfg.queue.path) as queue:
        gw = WeighbridgeGateway(cfg, queue, cfg.endpoint(wb_stack.passwords[WB]))
        gw.start()
        try:
            sim.start()
            assert sim.wait(t.duration_ms / 1000 / 5 + 30), "simulator did not finish"
            wait_until(lambda: len(stored(wb_influx)) >= len(trucks), 30, what="all tickets stored")
            frames, malformed = gw.source.stats.frames, gw.source.stats.malformed_total
            assert gw.tickets == len(trucks) and not gw.aborted, gw.stats_line()
        finally:
            gw.stop()
            sim.close()
        # the gateway counted the simulator's glitches and skipped them
        assert malformed + gw.source.stats.resyncs == t.glitches > 0
        assert frames == len(t.frames) - t.glitches
        retained = queue.acked_since(0, 1000, kind="tickets")
    rows = stored(wb_influx)
    got = sorted((r["plate"], r["gross_g"], r["tare_g"], r["net_g"]) for r in rows)
    assert got == sorted((x.plate, x.gross_g, x.tare_g, x.net_g) for x in trucks)
    assert count(wb_influx, f"SELECT sum(net_g) FROM {T} WHERE site = '{WB}'") == sum(
        x.net_g for x in trucks
    )
    by_plate = {x.plate: x for x in trucks}
    for r in rows:
        x = by_plate[str(r["plate"])]
        assert (r["category"], r["source_area"]) == (x.entry["category"], x.entry["source_area"])
        assert r["subcategory"] == x.entry.get("subcategory")
        assert r["tare_source"] == ("stored" if x.stored_tare else "weighed")

    # its retained status (kind waste) and its indicator's device status reached the cloud too
    assert count(wb_influx, f"SELECT count(online) FROM gateway_status WHERE site = '{WB}'") >= 1
    assert count(wb_influx, f"SELECT count(ok) FROM device_status WHERE device = '{DEV}'") >= 1

    # a redelivery of every ticket (the same messages again) changes nothing
    assert len(retained) == len(trucks)
    body = f'{{"schema":"{TICKETS_SCHEMA}","site":"{WB}","tickets":[{",".join(p for _, p in retained)}]}}'
    last = json.loads(retained[-1][1])
    extra = {**last, "ticket": last["ticket"] + 1, "net_g": 1000, "tare_g": last["gross_g"] - 1000}
    with probe(wb_stack.endpoint(WB), WB) as gw2:
        assert gw2.publish(weighbridge_tickets(WB), body.encode()).value == 0
        assert gw2.publish(weighbridge_tickets(WB), body.encode()).value == 0
        one_more = {"schema": TICKETS_SCHEMA, "site": WB, "tickets": [extra]}
        assert (
            gw2.publish(
                weighbridge_tickets(WB), json.dumps(one_more, ensure_ascii=False).encode()
            ).value
            == 0
        )
    wait_until(lambda: len(stored(wb_influx)) == len(trucks) + 1, 20, what="the new ticket stored")
    assert (
        count(wb_influx, f"SELECT sum(net_g) FROM {T} WHERE site = '{WB}'")
        == sum(x.net_g for x in trucks) + 1000
    )
    assert quarantined(wb_influx, WB) == {}


def ticket(n: int, **change: object) -> dict[str, object]:
    ts = now_ms() - 60_000
    doc: dict[str, object] = {
        "device": DEV,
        "ticket": n,
        "ts": ts,
        "gross_ts": ts - 600_000,
        "plate": "沪B77777",
        "category": "recyclable",
        "subcategory": "glass",
        "source_area": "A07",
        "gross_g": 12_345_678,
        "tare_g": 8_000_001,
        "net_g": 4_345_677,
        "tare_source": "weighed",
    }
    return {**doc, **change}


def batch(*entries: dict[str, object], site: str = WB) -> bytes:
    return json.dumps(
        {"schema": TICKETS_SCHEMA, "site": site, "tickets": list(entries)}, ensure_ascii=False
    ).encode()


def test_hostile_weighbridge_gateway_is_refused_or_quarantined_and_nothing_else_is_lost(
    wb_stack: LocalStack, wb_influx: InfluxClient
) -> None:
    before = len(stored(wb_influx))
    base = 9_000_000_000
    with probe(wb_stack.endpoint(WB), WB) as gw:
        # the broker refuses every topic but its own tickets and status (0x87 not authorized)
        refused = [
            gw.publish(
                weighbridge_tickets(OTHER), batch(ticket(base, device=f"{OTHER}-B1"), site=OTHER)
            ),
            gw.publish(waste_readings(WB), b'{"schema":"gumei.waste.readings.v1"}'),
            gw.publish(f"gumei/v1/waste/{WB}/anything", b"{}"),
            gw.publish(health_measurements("HH-01"), b"{}"),
            gw.publish(waste_readings(STATION), b"{}"),
        ]
        assert [rc.value for rc in refused] == [0x87] * 5
        # on its own topic: oversize, garbled, and a batch mixing good and bad tickets
        oversize = batch(ticket(base + 1))[:-2] + b', "pad": "' + b"x" * MAX_PAYLOAD_BYTES + b'"}'
        mixed = batch(
            ticket(base + 2),
            ticket(base + 3, net_g=4_345_678),  # net is not gross - tare
            ticket(base + 4, source_area="A99"),  # not a registry area
            ticket(base + 5, device=f"{OTHER}-B1"),  # another site's indicator
            ticket(base + 6, gross_g=12_345_678.0),  # grams as a float
            ticket(base + 7, device=f"{WB}-B9"),  # not registered
        )
        for body in (oversize, b"\x02+00326001C\x03", b'{"schema": "' + b"[" * 5000, mixed):
            assert gw.publish(weighbridge_tickets(WB), body).value == 0
    with probe(wb_stack.endpoint(STATION), STATION) as station:
        # a waste station may publish under its own site, but it is no weighbridge
        assert (
            station.publish(
                f"gumei/v1/waste/{STATION}/tickets",
                batch(ticket(1, device=f"{STATION}-S1"), site=STATION),
            ).value
            == 0
        )
    want = {
        "too_large": 1,
        "not_json": 2,
        "invalid_entry": 2,
        "unknown_area": 1,
        "device_not_of_site": 1,
        "unknown_device": 1,
    }
    wait_until(lambda: quarantined(wb_influx, WB) == want, 20, what=f"quarantine {want}")
    wait_until(
        lambda: quarantined(wb_influx, STATION).get("wrong_kind") == 1, 20, what="station refused"
    )
    rows = stored(wb_influx)
    assert len(rows) == before + 1
    [good] = [r for r in rows if r["ticket"] == base + 2]
    assert (good["net_g"], good["gross_g"], good["tare_g"]) == (4_345_677, 12_345_678, 8_000_001)
    assert stored(wb_influx, OTHER) == [] and stored(wb_influx, STATION) == []
    time.sleep(0.5)
    assert quarantined(wb_influx, WB) == want  # nothing more arrives later


def toml_config(root: Path, stack: LocalStack, link: Path) -> Path:
    """The gateway's TOML file as an installer writes it (the serial port is a symlink)."""
    ep = stack.endpoint(WB)
    creds = root / "mqtt-password"
    creds.write_text(stack.passwords[WB] + "\n")
    creds.chmod(0o600)
    cfg = root / "wb.toml"
    cfg.write_text(
        f"""site = "{WB}"
log_stats_s = 5
[broker]
url = "mqtts://127.0.0.1:{ep.port}"
ca_file = "{ep.ca_file}"
credentials_file = "{creds}"
[queue]
path = "{root / "queue.db"}"
[weighbridge]
id = "{DEV}"
port = "{link}"
stable_s = 0.4
max_gap_s = 0.6
silence_s = 60
operator_input = "{root / "operator.jsonl"}"
state_file = "{root / "book.json"}"
""",
        encoding="utf-8",
    )
    return cfg


def play(t: Timeline, root: Path, link: Path) -> None:
    sim = WeighbridgeSim(t, root / "operator.jsonl", speed=5)
    link.unlink(missing_ok=True)
    link.symlink_to(sim.port)
    try:
        time.sleep(1.5)  # the gateway (re)opens the port: it retries with back-off from 1 s
        sim.start()
        assert sim.wait(t.duration_ms / 1000 / 5 + 30)
        time.sleep(0.5)
    finally:
        sim.close()


def test_gateway_process_killed_between_gross_and_tare_still_makes_every_ticket_once(
    wb_stack: LocalStack, wb_influx: InfluxClient, tmp_path: Path
) -> None:
    trucks = make_trucks(4, 33, ["A07"], stored_every=0)
    link = tmp_path / "ttyWB"
    cfg = toml_config(tmp_path, wb_stack, link)
    log = tmp_path / "gateway.log"
    t0 = now_ms()

    def spawn() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "edge.agent", "--config", str(cfg)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    link.symlink_to("/dev/null")
    proc = spawn()
    try:
        play(timeline(trucks, seed=33, start_ms=now_ms(), phase="gross"), tmp_path, link)
        book = tmp_path / "book.json"
        wait_until(
            lambda: book.exists() and len(json.loads(book.read_text())["open"]) == 4,
            20,
            what="four grosses open",
        )
        proc.send_signal(signal.SIGKILL)  # power cut between the grosses and the tares
        proc.wait(10)
        proc = spawn()
        play(timeline(trucks, seed=34, start_ms=now_ms(), phase="tare"), tmp_path, link)

        def mine() -> list[dict[str, object]]:
            plates = {x.plate for x in trucks}
            rows = rows_of(wb_influx, f"SELECT * FROM {T} WHERE site = '{WB}' AND time >= {t0}ms")
            return [r for r in rows if r["plate"] in plates]

        wait_until(lambda: len(mine()) == len(trucks), 30, what="all tickets after the restart")
    finally:
        stop_process(proc)
    assert proc.returncode == 0, log.read_text()[-3000:]
    got = sorted((r["plate"], r["net_g"]) for r in mine())
    assert got == sorted((x.plate, x.net_g) for x in trucks)
    text = log.read_text()
    assert "weighing aborted" not in text and "Traceback" not in text, text[-3000:]
