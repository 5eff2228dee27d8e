"""The health-hut gateway as a production process: config, check-config, a serial card reader, and
`python -m edge.agent` on a real broker with a real ingestion worker and influxd, fed by the simulated hut
through the same socket transport the tests of the hut loop use."""

from __future__ import annotations

import datetime as dt
import json
import os
import pty
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from broker.dynsec import monitor_name
from cloud import measurements as m
from cloud.influx import InfluxClient
from contract import pseudonymize
from contract.topics import status as status_topic
from devstack.services import stop_process
from devstack.stack import LocalStack
from edge.ble.transport import BleakTransport, SocketTransport
from edge.config import HutConfig, check_files, load_config
from edge.errors import ConfigError
from edge.health_session import CARD_TAP_UUID
from edge.hut_gateway import SerialCardSource, make_source
from firmware_sim.health import HealthHutSim, make_residents, measure
from runtime.mqtt import make_client
from runtime.system import write_private
from tests.support.common import PROJECT, gumei, wait_until

SITE = "HH-01"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
SAMPLE = PROJECT / "config" / "gateway.sample.toml"


def hut_sample() -> str:
    """The commented health-hut example of the sample config, uncommented."""
    text = SAMPLE.read_text()
    block = text[text.index("# Uncomment into its own file") :].splitlines()[1:]
    return "\n".join(line[2:] if line.startswith("# ") else "" for line in block) + "\n"


def write_files(tmp: Path, text: str) -> Path:
    """A hut config whose secret files exist (0600) and whose queue directory is writable."""
    creds, key = tmp / "mqtt-password", tmp / "district.key"
    write_private(creds, "pw\n")
    write_private(key, os.urandom(16).hex() + "\n")
    (tmp / "ca.crt").write_text("x")
    text = (
        text.replace("/etc/gumei/mqtt-password", str(creds))
        .replace("/etc/gumei/district.key", str(key))
        .replace("/etc/gumei/ca.crt", str(tmp / "ca.crt"))
        .replace("/var/lib/gumei-edge", str(tmp))
    )
    path = tmp / "hut.toml"
    path.write_text(text)
    return path


def test_the_commented_hut_sample_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "hut.toml"
    path.write_text(hut_sample())
    cfg = load_config(path)
    assert (
        isinstance(cfg, HutConfig)
        and cfg.site == "HH-01"
        and cfg.endpoint("pw").username == "HH-01"
    )
    assert cfg.hut.card_reader.transport == "serial" and len(cfg.hut.instruments) == 7
    bp = cfg.hut.instruments[0]
    assert bp.transport == "ble" and bp.characteristics == ["00002a35-0000-1000-8000-00805f9b34fb"]
    # the real-device path: bleak transports subscribed to the configured characteristics (no I/O yet)
    src = make_source(bp, cfg.hut.card_characteristics())
    assert isinstance(src, BleakTransport) and src._uuids == bp.characteristics
    assert isinstance(make_source(cfg.hut.card_reader, []), SerialCardSource)
    # the height/weight station on RS-232, the staff's entry terminal on the network
    by_id = {d.id: d for d in cfg.hut.instruments}
    assert isinstance(make_source(by_id["HH-01-HW"], []), SerialCardSource)
    assert isinstance(make_source(by_id["HH-01-TAPE"], []), SocketTransport)


HUT_MISTAKES = [
    (
        'address = "A4:C1:38:00:00:01"',
        'address = "A4:C1:38:00:01"',
        "hut.instruments[0].address: must be a Bluetooth address like A4:C1:38:00:00:01",
    ),
    (
        'characteristics = ["2a35"]',
        'characteristics = ["2a99"]',
        (
            "hut: instruments[0].characteristics: 00002a99-0000-1000-8000-00805f9b34fb has no decoder "
            "(supported: 2a35, 2a9d, 2a9c, 2a1c, 2a18, 2a34, 2a5e)"
        ),
    ),
    (
        'characteristics = ["2a35"]',
        "",
        'hut: instruments[0].characteristics: list the measurement characteristics (e.g. ["2a35"] for blood pressure)',
    ),
    (
        'id = "HH-01-BP"',
        'id = "HH-02-BP"',
        "hut.instruments[0].id 'HH-02-BP' must start with the site id HH-01-",
    ),
    ('id = "HH-01-BC"', 'id = "HH-01-BP"', "hut.instruments[1].id 'HH-01-BP' is listed twice"),
    (
        'address = "A4:C1:38:00:00:02"',
        'address = "A4:C1:38:00:00:01"',
        "hut.instruments[1] uses A4:C1:38:00:00:01 like another device",
    ),
    (
        'transport = "serial"',
        'transport = "usb"',
        "hut.card_reader: transport must be 'ble', 'socket' or 'serial'",
    ),
    (
        'district_key_file = "/etc/gumei/district.key"',
        "",
        "hut.district_key_file: missing (required)",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "line"), HUT_MISTAKES, ids=[m[2][:40] for m in HUT_MISTAKES]
)
def test_each_hut_mistake_is_one_clear_line(tmp_path: Path, old: str, new: str, line: str) -> None:
    text = hut_sample()
    assert old in text
    path = tmp_path / "hut.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: {line}"


def test_hut_files_checked_key_0600_and_bleak(tmp_path: Path) -> None:
    path = write_files(tmp_path, hut_sample())
    cfg = load_config(path)
    problems = check_files(cfg)
    try:
        import bleak  # noqa: F401
    except ImportError:
        assert problems == [
            "hut: Bluetooth devices configured but bleak is not installed: pip install '.[ble]'"
        ]
    else:
        assert problems == []
    (tmp_path / "district.key").chmod(0o644)
    assert any(
        p.startswith("hut.district_key_file: ")
        and p.endswith("is readable by others; chmod 600 it")
        for p in check_files(cfg)
    )


def socket_config(
    tmp: Path, endpoints: dict[str, tuple[str, int]], broker_url: str, ca_file: Path | None
) -> Path:
    """A hut config over simulated devices (transport socket), tuned for a quick test."""
    card_host, card_port = endpoints[f"{SITE}-CARD"]
    devices = [
        f'[hut.card_reader]\nid = "{SITE}-CARD"\ntransport = "socket"\nhost = "{card_host}"\nport = {card_port}\n'
    ]
    devices += [
        f'[[hut.instruments]]\nid = "{d}"\ntransport = "socket"\nhost = "{h}"\nport = {p}\n'
        for d, (h, p) in endpoints.items()
        if d != f"{SITE}-CARD"
    ]
    text = (
        f'site = "{SITE}"\nlog_stats_s = 2\n[broker]\nurl = "{broker_url}"\n'
        + (f'ca_file = "{ca_file}"\n' if ca_file else "")
        + f'credentials_file = "{tmp / "mqtt-password"}"\n'
        f'[queue]\npath = "{tmp / "queue.db"}"\nkeep_acked_s = 3600\n'
        f"[publish]\nstatus_interval_s = 1\nbackoff_max_s = 1\n"
        f'[hut]\ndistrict_key_file = "{tmp / "district.key"}"\nsession_timeout_s = 600\nflush_after_s = 1\n'
        + "\n".join(devices)
    )
    path = tmp / "hut.toml"
    path.write_text(text)
    return path


def test_check_config_cli_and_lean_entry_point_accept_a_hut(tmp_path: Path) -> None:
    write_private(tmp_path / "mqtt-password", "pw\n")
    write_private(tmp_path / "district.key", os.urandom(16).hex())
    eps = {f"{SITE}-CARD": ("127.0.0.1", 1), f"{SITE}-BP": ("127.0.0.1", 2)}
    path = socket_config(tmp_path, eps, "mqtt://127.0.0.1:1883", None)
    out = gumei("edge", "check-config", "--config", str(path)).stdout
    assert (
        out.strip()
        == f"{path}: ok: site HH-01 (health hut), 1 instruments and card reader HH-01-CARD, broker mqtt://127.0.0.1:1883"
    )
    lean = subprocess.run(
        [sys.executable, "-m", "edge.agent", "--check", "--config", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lean.returncode == 0 and "ok: site HH-01 (health hut)" in lean.stdout
    (tmp_path / "district.key").chmod(0o640)
    bad = gumei("edge", "check-config", "--config", str(path), check=False)
    assert bad.returncode == 2 and "hut.district_key_file: district key file" in bad.stderr


def test_serial_card_reader_turns_lines_into_card_notifications() -> None:
    master, slave = pty.openpty()
    src = SerialCardSource(os.ttyname(slave))
    src.open()
    try:
        os.write(master, b"\r\n1234567890\r\n")
        note = next(src.notifications())
        assert (note.uuid, note.data) == (CARD_TAP_UUID, b"1234567890")
    finally:
        src.close()
        os.close(master)
        os.close(slave)


class StatusWatch:
    """The hut's retained status, as a read-only monitor identity sees it."""

    def __init__(self, stack: LocalStack) -> None:
        self.last: dict[str, Any] = {}
        ep = stack.endpoint(monitor_name(2))
        self.client = make_client(ep, monitor_name(2))
        self.client.on_message = self._on_message
        self.client.connect(ep.host, ep.port, clean_start=True)
        self.client.subscribe(status_topic("health", SITE), qos=1)
        self.client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.last = json.loads(msg.payload)

    def frames(self, device: str) -> int:
        devices = (
            {d["device"]: d for d in self.last.get("devices", [])}
            if self.last.get("state") == "online"
            else {}
        )
        return int(devices.get(device, {}).get("frames", -1))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def stored(influx: InfluxClient, q: str) -> list[dict[str, Any]]:
    """Rows of a query on the per-resident health database (where ingestion puts measurements)."""
    return [
        {**s.tags, **dict(zip(s.columns, v, strict=True))}
        for s in influx.query(q, db=influx.config.health_database)
        for v in s.values
    ]


@pytest.fixture
def clean_hut_day(influx: InfluxClient) -> Iterator[int]:
    """Start time; afterwards this test's HH-01 points are deleted (other modules count the hut's day)."""
    t0 = int(dt.datetime.now(dt.UTC).timestamp() * 1000) - 1000
    yield t0
    influx.execute(
        f"DELETE FROM {m.HEALTH_MEASUREMENT.name} WHERE site = '{SITE}' AND time >= {t0}ms",
        db=influx.config.health_database,
    )


def test_hut_gateway_process_delivers_every_visit_with_pseudonyms_only(
    stack: LocalStack, ingest_worker: Any, influx: InfluxClient, tmp_path: Path, clean_hut_day: int
) -> None:
    assert stack.mosquitto is not None and stack.ca_file is not None
    key = os.urandom(16)
    write_private(tmp_path / "district.key", key.hex())
    write_private(tmp_path / "mqtt-password", stack.passwords[SITE] + "\n")
    rng = random.Random(3)
    watch = StatusWatch(stack)
    log = tmp_path / "hut.log"
    with HealthHutSim(SITE, seed=11) as hut:
        path = socket_config(
            tmp_path,
            hut.endpoints(),
            f"mqtts://127.0.0.1:{stack.mosquitto.tls_port}",
            stack.ca_file,
        )
        with open(log, "wb") as out:  # the process the systemd unit runs
            proc = subprocess.Popen(
                [sys.executable, "-m", "edge.agent", "--config", str(path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )
        try:
            assert hut.wait_connected(15), log.read_text()
            wait_until(
                lambda: watch.frames(hut.card_reader) == 0, what="the hut online with its devices"
            )
            residents = make_residents(3, seed=8)
            want: dict[str, int] = {}
            frames: dict[str, int] = dict.fromkeys(hut.instruments, 0)
            for i, res in enumerate(residents):
                hut.tap(res.card)  # the gateway opens the session before the instruments send

                def tapped(n: int = i + 1) -> bool:
                    return watch.frames(hut.card_reader) >= n

                wait_until(tapped, what=f"tap {i + 1} handled")
                v = hut.visit(
                    None,
                    dt.datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0),
                    measure(res, rng),
                )
                want[pseudonymize(key, res.card)] = sum(1 for s in v.sent if s.expected)
                for s in v.sent:
                    frames[s.device] += 1
                wait_until(
                    lambda: all(watch.frames(d) >= n for d, n in frames.items()),
                    what=f"visit {i + 1} handled",
                )
            total = sum(want.values())
            q = f"SELECT device, seq, resident FROM {m.HEALTH_MEASUREMENT.name} WHERE site = '{SITE}' AND time >= {clean_hut_day}ms"
            rows = wait_until(
                lambda: r if len(r := stored(influx, q)) >= total else None,
                timeout=40,
                what=f"{total} measurements in InfluxDB",
            )
            status = watch.last
            proc.terminate()
            assert proc.wait(30) == 0, log.read_text()[-3000:]
        finally:
            stop_process(proc)
    text = log.read_text()
    try:
        wait_until(
            lambda: watch.last.get("state") == "offline", what="offline status after SIGTERM"
        )
    finally:
        watch.close()
    got: dict[str, int] = {}
    for r in rows:
        got[str(r["resident"])] = got.get(str(r["resident"]), 0) + 1
    assert got == want  # every measurement, each with its resident's pseudonym, nothing twice
    assert len({(r["device"], r["seq"]) for r in rows}) == len(rows)
    assert {d["device"] for d in status["devices"]} == {hut.card_reader, *hut.instruments}
    assert all(d["ok"] for d in status["devices"]) and status["site"] == SITE
    assert (
        "hut HH-01 started: 5 instruments and card reader HH-01-CARD" in text and "stats: " in text
    )
    for res in residents:
        assert res.card not in text  # the card number is neither logged ...
        assert res.card.encode() not in (tmp_path / "queue.db").read_bytes()  # ... nor queued
