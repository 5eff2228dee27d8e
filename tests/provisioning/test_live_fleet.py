"""Issue 19: stations come and go while the fleet runs; nothing is restarted.

A private Mosquitto and influxd, one real `gumei ingest` worker and the API, on a registry file of
their own. Each change is made with the commands the operations team runs (`gumei registry …
--broker-dir`), against the running broker over TLS as the admin; the worker and the API reload
the file by themselves.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from cloud import measurements as m
from cloud import registry as reg
from cloud.days import date_of, day_number, day_start_ms
from cloud.influx import InfluxClient
from contract.models import WASTE_SCHEMA, now_ms
from contract.topics import waste_readings
from devstack.stack import LocalStack
from runtime.mqtt import make_client
from tests.support.api_process import api_process
from tests.support.common import count, gumei, wait_until

NOT_AUTHORIZED = 0x87


def base_registry() -> reg.Registry:
    r = reg.Registry(areas=[reg.Area(id="A01", name="a1"), reg.Area(id="A02", name="a2")], sites=[])
    r = reg.add_site(r, "WS-0101", "A01", "s1", 31.15, 121.40)
    r = reg.add_device(r, "WS-0101-S1", "serial", "dry", None, 240.0)
    r = reg.add_site(r, "WS-0102", "A01", "s2", 31.15, 121.40)
    return reg.add_device(r, "WS-0102-S1", "serial", "wet", None, 240.0)


@dataclass
class Fleet:
    stack: LocalStack
    path: Path
    config: Path
    api: str
    influx: InfluxClient
    worker_pid: int
    clients: dict[str, mqtt.Client] = field(default_factory=dict)

    def registry(self, *args: str) -> str:
        """`gumei registry …` on the fleet's file, applied live to its broker."""
        assert self.stack.mosquitto is not None
        live = ["--broker-dir", str(self.stack.root), "--live-host", "127.0.0.1"]
        live += ["--live-port", str(self.stack.mosquitto.tls_port)]
        needs_broker = args[0] in ("add-site", "retire-site")
        return gumei(
            "registry",
            *args,
            "--registry",
            str(self.path),
            "--by",
            "test-ops",
            *(live if needs_broker else []),
        ).stdout

    def password(self, site: str) -> str:
        return json.loads((self.stack.root / "secrets" / "mqtt.json").read_text())[site]

    def connect(self, site: str) -> tuple[mqtt.Client, list[int]]:
        """A connected gateway (the site's previous one, if any, gone first: one session per client
        id); the list collects every disconnect it sees."""
        if (previous := self.clients.pop(site, None)) is not None:
            previous.disconnect()
            previous.loop_stop()
        ep = self.stack.endpoint("gumei-admin").model_copy(
            update={"username": site, "password": self.password(site)}
        )
        c = make_client(ep, site, reconnect_max_s=1)
        drops: list[int] = []
        up = threading.Event()
        c.on_connect = lambda *_a: up.set()
        c.on_disconnect = lambda _c, _u, _f, rc, _p: drops.append(int(rc.value))
        c.connect(ep.host, ep.port)
        c.loop_start()
        assert up.wait(10), f"{site} did not connect"
        self.clients[site] = c
        return c, drops

    def stored(self, device: str) -> int:
        return count(
            self.influx,
            f"SELECT count(net_kg) FROM {m.WASTE_READING.name} WHERE device = '{device}'",
        )

    def dead(self, site: str, code: str) -> int:
        q = f"SELECT sum(entries) FROM {m.QUARANTINE.name} WHERE site = '{site}' AND code = '{code}'"
        return count(self.influx, q)


_seq = iter(range(1, 1_000_000))


def reading(site: str, device: str, category: str, ts: int | None = None) -> bytes:
    r = {
        "device": device,
        "seq": next(_seq),
        "ts": now_ms() - 1000 if ts is None else ts,
        "category": category,
        "net_kg": 1.234,
    }
    return json.dumps({"schema": WASTE_SCHEMA, "site": site, "readings": [r]}).encode()


def send(client: mqtt.Client, site: str, device: str, category: str, ts: int | None = None) -> None:
    info = client.publish(waste_readings(site), reading(site, device, category, ts), qos=1)
    info.wait_for_publish(10)
    assert info.is_published()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("provisioning")
    path = root / "sites.yaml"
    reg.save(base_registry(), path)
    stack = LocalStack(root / "stack", base_registry())
    stack.start()
    config = stack.write_cloud_config(path)
    worker = stack.spawn("ingest", "ingest", "--config", str(config), "--name", "ingest-1")
    stack.wait_ready("ingest-1", worker)
    stack.spawn("aggregate", "aggregate", "loop", "--config", str(config), "--interval", "1")
    with api_process(stack, config, "api") as api, InfluxClient(stack.influx_config()) as influx:
        f = Fleet(stack, path, config, api, influx, worker.pid)
        yield f
        for c in f.clients.values():
            c.disconnect()
            c.loop_stop()
    stack.stop()


def test_a_station_added_while_the_fleet_runs_counts_within_seconds(fleet: Fleet) -> None:
    old, old_drops = fleet.connect("WS-0101")
    send(old, "WS-0101", "WS-0101-S1", "dry")
    wait_until(lambda: fleet.stored("WS-0101-S1") == 1, 15, what="the running gateway's reading")

    out = fleet.registry(
        "add-site", "WS-0103", "--area", "A02", "--name", "new", "--lat", "31.15", "--lon", "121.4"
    )
    assert "gateways added WS-0103" in out
    fleet.registry("add-device", "WS-0103-S1", "--category", "recyclable")
    started = time.monotonic()
    new, _ = fleet.connect("WS-0103")  # its own password, made by the command, works at once
    send(new, "WS-0103", "WS-0103-S1", "recyclable")
    wait_until(lambda: fleet.stored("WS-0103-S1") == 1, 15, what="the new station's first reading")
    print(f"new station: first reading stored {time.monotonic() - started:.1f} s after add-device")

    assert fleet.dead("WS-0103", "unknown_site") + fleet.dead("WS-0103", "unknown_device") == 0
    # the aggregator loop (not restarted either) puts it in its area's daily rows
    q = "SELECT sum(net_g) FROM waste_daily WHERE site = 'WS-0103'"
    wait_until(lambda: count(fleet.influx, q) == 1234, 30, what="the new station's daily row")
    assert old_drops == []  # no other gateway was disconnected
    send(old, "WS-0101", "WS-0101-S1", "dry")
    wait_until(lambda: fleet.stored("WS-0101-S1") == 2, 15, what="the old gateway still counts")
    procs = dict(fleet.stack.processes)
    assert procs["ingest"].pid == fleet.worker_pid and procs["ingest"].poll() is None
    # the API (not restarted) knows the station too
    token = fleet.stack.tokens().create("prov admin", "admin")
    got = httpx.get(
        fleet.api + "/api/v1/admin/registry", headers={"Authorization": f"Bearer {token}"}
    )
    assert "WS-0103" in {s["id"] for s in got.json()["sites"]}
    log = (fleet.path.parent / "sites.yaml.changes.log").read_text()
    assert "test-ops\tadded site WS-0103" in log and "test-ops\tadded device WS-0103-S1" in log


def test_a_retired_device_becomes_dead_letters_from_that_moment(fleet: Fleet) -> None:
    c, _ = fleet.connect("WS-0102")
    send(c, "WS-0102", "WS-0102-S1", "wet")
    wait_until(lambda: fleet.stored("WS-0102-S1") == 1, 15, what="the reading before")
    fleet.registry("retire-device", "WS-0102-S1")

    def refused() -> bool:  # the worker reloads within about a second: probe until it refuses
        send(c, "WS-0102", "WS-0102-S1", "wet")
        time.sleep(0.3)
        return fleet.dead("WS-0102", "unknown_device") > 0

    wait_until(refused, 15, interval=0.5, what="a dead letter for the retired device")
    stored = fleet.stored("WS-0102-S1")
    send(c, "WS-0102", "WS-0102-S1", "wet")
    wait_until(
        lambda: fleet.dead("WS-0102", "unknown_device") >= 2, 15, what="every later reading refused"
    )
    assert fleet.stored("WS-0102-S1") == stored


def test_a_retired_site_is_disconnected_and_refused_and_others_stay(fleet: Fleet) -> None:
    gone, gone_drops = fleet.connect("WS-0102")
    stays, stays_drops = fleet.connect("WS-0101")
    password = fleet.password("WS-0102")
    out = fleet.registry("retire-site", "WS-0102")
    assert "gateways removed and disconnected WS-0102" in out
    wait_until(lambda: gone_drops, 10, what="the retired gateway's session ended")
    gone.loop_stop()
    ep = fleet.stack.endpoint("gumei-admin").model_copy(
        update={"username": "WS-0102", "password": password}
    )
    again = make_client(ep, "WS-0102")
    codes: list[int] = []
    done = threading.Event()

    def on_connect(_c: object, _u: object, _f: object, rc: mqtt.ReasonCode, _p: object) -> None:
        codes.append(int(rc.value))
        done.set()

    again.on_connect = on_connect
    again.connect(ep.host, ep.port)
    again.loop_start()
    assert done.wait(10) and codes == [NOT_AUTHORIZED]
    again.loop_stop()
    assert stays_drops == []
    send(stays, "WS-0101", "WS-0101-S1", "dry")
    assert "WS-0102" not in json.loads((fleet.stack.root / "secrets" / "mqtt.json").read_text())


def test_readings_that_came_before_their_scale_was_registered_are_replayed_once(
    fleet: Fleet,
) -> None:
    c, _ = fleet.connect("WS-0101")
    for _ in range(3):
        send(c, "WS-0101", "WS-0101-S9", "hazardous")  # a scale installed before it was registered
    wait_until(lambda: fleet.dead("WS-0101", "unknown_device") == 3, 15, what="3 dead letters")
    fleet.registry("add-device", "WS-0101-S9", "--category", "hazardous")
    args = ["quarantine", "replay", "--code", "unknown_device", "--since", "1h"]
    args += ["--site", "WS-0101", "--config", str(fleet.config)]
    assert "3 reading(s) would be written" in gumei(*args, "--dry-run").stdout
    assert fleet.stored("WS-0101-S9") == 0
    out = gumei(*args).stdout
    assert "3 dead letter(s) unknown_device in the last 1h: 3 reading(s) written" in out
    assert fleet.stored("WS-0101-S9") == 3
    gumei(*args)  # again: the same identities, the same points
    assert fleet.stored("WS-0101-S9") == 3
    q = "SELECT sum(net_kg) FROM waste_reading WHERE device = 'WS-0101-S9'"
    assert round(float(fleet.influx.query(q)[0].values[0][1]) * 1000) == 3 * 1234
    bad = gumei("quarantine", "replay", "--code", "bad_json", "--since", "1h", check=False)
    assert bad.returncode == 2 and "can become valid by a registry change" in bad.stderr


def test_a_broken_registry_file_is_refused_and_ingestion_goes_on(fleet: Fleet) -> None:
    good = fleet.path.read_text()
    c, _ = fleet.connect("WS-0101")
    before = fleet.stored("WS-0101-S1")
    fleet.path.write_text(good + "\n  - this: [is not\n")
    try:
        time.sleep(1.1)  # the worker looks at the file when it plans a batch, at most once a second
        send(c, "WS-0101", "WS-0101-S1", "dry")
        wait_until(lambda: fleet.stored("WS-0101-S1") == before + 1, 15, what="ingestion goes on")
        log = fleet.stack.log_of("ingest")
        refusals = [x for x in log.splitlines() if "registry change refused" in x]
        assert len(refusals) == 1 and "still using version" in refusals[0]
        assert "Traceback" not in fleet.stack.log_of("ingest")
        assert httpx.get(fleet.api + "/healthz").status_code == 200
    finally:
        fleet.path.write_text(good)


def test_a_station_moved_from_today_keeps_yesterday_in_its_old_area_to_the_gram(
    fleet: Fleet,
) -> None:
    """WS-0101 moves from A01 to A02 from today on (after today was already aggregated)."""
    today = day_number(now_ms())
    c, _ = fleet.connect("WS-0101")
    send(c, "WS-0101", "WS-0101-S1", "dry", day_start_ms(today - 1) + 12 * 3600_000)  # yesterday
    send(c, "WS-0101", "WS-0101-S1", "dry")  # today

    def grams(site: str, day: int) -> int:  # ground truth from the stored readings (1.234 kg each)
        q = (
            f"SELECT count(net_kg) FROM waste_reading WHERE site = '{site}' "
            f"AND time >= {day_start_ms(day)}ms AND time < {day_start_ms(day + 1)}ms"
        )
        return count(fleet.influx, q) * 1234

    def site_rows(day: int) -> dict[tuple[str, str], int]:
        q = (
            "SELECT sum(net_g) FROM waste_daily WHERE site = 'WS-0101' "
            f"AND time = {day_start_ms(day)}ms GROUP BY area"
        )
        return {("WS-0101", x.tags["area"]): int(x.values[0][1]) for x in fleet.influx.query(q)}

    def area_g(area: str, day: int) -> int:
        q = (
            f"SELECT sum(net_mg) FROM waste_area_daily WHERE area = '{area}' AND category = 'all' "
            f"AND time = {day_start_ms(day)}ms"
        )
        return count(fleet.influx, q) // 1000

    def in_a01(day: int) -> bool:
        return site_rows(day) == {("WS-0101", "A01"): grams("WS-0101", day)}

    wait_until(lambda: in_a01(today - 1) and in_a01(today), 30, what="both days aggregated in A01")
    a01_today_before = area_g("A01", today)
    move = ("move-site", "WS-0101", "--area", "A02", "--from", str(date_of(today)))
    out = fleet.registry(*move, "--config", str(fleet.config))
    assert "moved site WS-0101 from A01 to A02" in out and "1 stored day(s) marked" in out
    again = gumei(*("registry", *move), "--registry", str(fleet.path), check=False)
    assert again.returncode == 2 and "is in area A02 already" in again.stderr
    g_today, g_yesterday = grams("WS-0101", today), grams("WS-0101", today - 1)
    wait_until(
        lambda: site_rows(today) == {("WS-0101", "A02"): g_today},
        30,
        what="today's row of WS-0101 in A02 only",
    )
    wait_until(
        lambda: area_g("A01", today) == a01_today_before - g_today,
        30,
        what="A01 today without WS-0101",
    )
    assert site_rows(today - 1) == {("WS-0101", "A01"): g_yesterday}  # yesterday stays in A01
    a02 = grams("WS-0103", today) + g_today
    wait_until(lambda: area_g("A02", today) == a02, 30, what="A02 today with WS-0101, to the gram")
