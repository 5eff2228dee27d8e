"""Issue 19, part 2: `gumei gateway bundle` writes everything one gateway needs and nothing of any other."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from devstack.stack import LocalStack
from edge.config import BleDevice, HutConfig, check_files, load_config, read_secret
from runtime.mqtt import make_client
from tests.support.common import gumei

SITE = "WS-4001"  # area A40: no other test connects as it


def bundle(stack: LocalStack, out: Path, site: str = SITE, *extra: str, check: bool = True):
    assert stack.mosquitto is not None
    return gumei(
        "gateway", "bundle", site, "--out", str(out), "--broker-dir", str(stack.root),
        "--broker-url", f"mqtts://127.0.0.1:{stack.mosquitto.tls_port}",
        "--install-dir", str(out), "--queue-dir", str(out / "queue"), *extra, check=check,
    )  # fmt: skip


def everything_in(folder: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


def test_a_waste_station_bundle_holds_its_own_password_only_and_connects(
    stack: LocalStack, tmp_path: Path
) -> None:
    out = tmp_path / "bundle"
    said = bundle(stack, out).stdout
    assert said.startswith(f"bundle for {SITE} in {out}: gateway.toml, ca.crt, mqtt-password")
    assert sorted(p.name for p in out.iterdir()) == [
        "INSTALL.txt", "ca.crt", "gateway.toml", "mqtt-password",
    ]  # fmt: skip
    passwords = json.loads((stack.root / "secrets" / "mqtt.json").read_text())
    text = everything_in(out)
    assert passwords[SITE] in text
    leaked = [u for u, pw in passwords.items() if u != SITE and pw in text]
    assert leaked == []
    assert stat.S_IMODE((out / "mqtt-password").stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    sheet = (out / "INSTALL.txt").read_text()
    assert "gumei edge check-config --config" in sheet and "网关安装单" in sheet

    cfg = load_config(out / "gateway.toml")  # the gateway's own loader
    assert [d.id for d in cfg.devices] == [f"{SITE}-S{i}" for i in range(1, 5)]  # type: ignore[union-attr]
    (out / "queue").mkdir()
    assert check_files(cfg) == []
    assert gumei("edge", "check-config", "--config", str(out / "gateway.toml")).returncode == 0

    endpoint = cfg.endpoint(read_secret(cfg.broker.credentials_file, "password"))
    client = make_client(endpoint, SITE)
    codes: list[int] = []
    done = threading.Event()

    def on_connect(_c: object, _u: object, _f: object, rc: object, _p: object) -> None:
        codes.append(int(rc.value))  # type: ignore[attr-defined]
        done.set()

    client.on_connect = on_connect
    client.connect(endpoint.host, endpoint.port)
    client.loop_start()
    try:
        assert done.wait(10) and codes == [0]
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_health_hut_bundle_carries_the_district_key_and_its_instruments(
    stack: LocalStack, tmp_path: Path
) -> None:
    key = tmp_path / "district.key"
    key.write_text("00112233445566778899aabbccddeeff\n")
    os.chmod(key, 0o600)
    refused = bundle(stack, tmp_path / "nokey", "HH-01", check=False)
    assert refused.returncode == 2
    assert "HH-01 pseudonymizes resident cards: give --district-key" in refused.stderr
    out = tmp_path / "hut"
    bundle(stack, out, "HH-01", "--district-key", str(key))
    assert stat.S_IMODE((out / "district.key").stat().st_mode) == 0o600
    cfg = load_config(out / "gateway.toml")
    assert isinstance(cfg, HutConfig)
    chars = {d.id: d.characteristics for d in cfg.hut.instruments if isinstance(d, BleDevice)}
    assert chars["HH-01-BP"] == ["00002a35-0000-1000-8000-00805f9b34fb"]
    assert len(chars["HH-01-GLU"]) == 2
    transports = {d.id: d.transport for d in cfg.hut.instruments}
    assert (transports["HH-01-HW"], transports["HH-01-TAPE"]) == ("serial", "socket")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("WS-9999",), "no site WS-9999 in the registry"),
        (
            (SITE, "--district-key", "/etc/hostname"),
            f"{SITE} has no card reader: it gets no district key",
        ),
    ],
)
def test_a_bundle_is_refused_in_one_line(
    stack: LocalStack, tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    r = bundle(stack, tmp_path / "b", *args, check=False)
    assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_a_bundle_never_goes_into_a_folder_with_files(stack: LocalStack, tmp_path: Path) -> None:
    out = tmp_path / "used"
    out.mkdir()
    (out / "gateway.toml").write_text("another gateway's")
    r = bundle(stack, out, check=False)
    assert r.returncode == 2 and "is not empty" in r.stderr
    assert (out / "gateway.toml").read_text() == "another gateway's"
