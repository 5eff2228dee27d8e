"""Gateway config: the commented sample is valid; each mistake is one clear line; CLI check-config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.config import GatewayConfig, check_files, load_config
from edge.errors import ConfigError
from tests.support.common import PROJECT, gumei

SAMPLE = PROJECT / "config" / "gateway.sample.toml"
BASE = SAMPLE.read_text()

MISTAKES = [  # (replace, with, the one line expected, after "<file>: ")
    ('site = "WS-0101"', "", "site: missing (required)"),
    ('site = "WS-0101"', "site = WS-0101", "not valid TOML: Invalid value (at line 5, column 8)"),
    (
        'site = "WS-0101"',
        'site = "WS 0101"',
        "site: must be 1-64 letters, digits, '-' or '_' (e.g. WS-0101-S1)",
    ),
    ("baudrate = 9600", "baud = 9600", "devices[0].baud: unknown setting (misspelt?)"),
    (
        "baudrate = 9600",
        "baudrate = 9601",
        "devices[0].baudrate: must be 1200, 2400, 4800, 9600, 19200, 38400, 57600 or 115200",
    ),
    (
        'id = "WS-0101-S2"',
        'id = "WS-0102-S2"',
        "devices[1].id 'WS-0102-S2' must start with the site id WS-0101-",
    ),
    ('id = "WS-0101-S2"', 'id = "WS-0101-S1"', "devices[1].id 'WS-0101-S1' is listed twice"),
    ('/dev/ttyUSB1"', '/dev/ttyUSB0"', "devices[1] uses /dev/ttyUSB0 like another device"),
    (
        'interface = "serial"\nport = "/dev/ttyUSB1"',
        'interface = "usb"\nport = "/dev/ttyUSB1"',
        "devices[1]: interface must be 'serial' or 'modbus'",
    ),
    (
        'category = "wet"',
        'category = "kitchen"',
        "devices[1].category: must be 'dry', 'wet', 'recyclable' or 'hazardous'",
    ),
    ("port = 502", "port = 70000", "devices[2].port: must be less than or equal to 65535"),
    (
        'ca_file = "/etc/gumei/ca.crt"',
        "",
        "broker: ca_file is required for mqtts:// (the CA that signed the broker's certificate)",
    ),
    (
        "mqtts://mqtt.gumei.example:8883",
        "http://mqtt.gumei.example",
        "broker.url: must look like mqtts://host:8883 (or mqtt://host:1883)",
    ),
    (
        "tolerance_kg = 0.02",
        "tolerance_kg = 0.5",
        "detector: need 0 <= tolerance_kg < min_deposit_kg <= max_deposit_kg",
    ),
    (
        "max_deposit_kg = 60.0",
        "max_deposit_kg = 900.0",
        "detector.max_deposit_kg: must be less than or equal to 500",
    ),
    (
        "backoff_max_s = 30",
        "backoff_max_s = 0.1",
        "publish: backoff_max_s must be >= backoff_min_s",
    ),
    (
        '# cert_file = "/etc/gumei/WS-0101.crt"',
        'cert_file = "/etc/gumei/WS-0101.crt"',
        "broker: cert_file and key_file go together (a client certificate and its key)",
    ),
]


def test_the_commented_sample_is_valid() -> None:
    cfg = load_config(SAMPLE)
    assert isinstance(cfg, GatewayConfig)  # a waste station's sample
    assert cfg.site == "WS-0101" and [d.interface for d in cfg.devices] == [
        "serial",
        "serial",
        "modbus",
        "modbus",
    ]
    assert (cfg.broker.host, cfg.broker.port) == ("mqtt.gumei.example", 8883)
    assert cfg.endpoint("pw").username == "WS-0101" and cfg.endpoint("pw").ca_file == Path(
        "/etc/gumei/ca.crt"
    )


@pytest.mark.parametrize(("old", "new", "line"), MISTAKES, ids=[m[2][:40] for m in MISTAKES])
def test_each_mistake_is_one_clear_line(tmp_path: Path, old: str, new: str, line: str) -> None:
    assert old in BASE
    path = tmp_path / "gw.toml"
    path.write_text(BASE.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: {line}"


def test_two_mistakes_two_lines_and_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text(
        BASE.replace("baudrate = 9600", "baud = 9600").replace('category = "wet"', 'category = "x"')
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert len(str(err.value).splitlines()) == 2
    with pytest.raises(ConfigError, match=r"nope.toml: cannot read: No such file or directory$"):
        load_config(tmp_path / "nope.toml")


def good_files(tmp_path: Path, key_mode: int = 0o600) -> Path:
    """The sample pointed at real files under tmp_path."""
    for name, text in [
        ("mqtt-password", "s3cret\n"),
        ("district.key", "00" * 32 + "\n"),
        ("ca.crt", "x"),
    ]:
        (tmp_path / name).write_text(text)
        os.chmod(tmp_path / name, 0o600)
    os.chmod(tmp_path / "district.key", key_mode)
    text = BASE.replace("/etc/gumei/", f"{tmp_path}/").replace(
        "/var/lib/gumei-edge/", f"{tmp_path}/q/"
    )
    (tmp_path / "q").mkdir(exist_ok=True)
    path = tmp_path / "gw.toml"
    path.write_text(text)
    return path


def test_files_named_by_the_config_are_checked(tmp_path: Path) -> None:
    cfg = load_config(good_files(tmp_path))
    assert check_files(cfg) == []
    os.chmod(tmp_path / "mqtt-password", 0o644)
    os.chmod(tmp_path / "district.key", 0o640)
    (tmp_path / "q").rmdir()
    (tmp_path / "ca.crt").unlink()
    assert check_files(cfg) == [
        f"broker.credentials_file {tmp_path}/mqtt-password is readable by others; chmod 600 it",
        f"broker.ca_file {tmp_path}/ca.crt: no such file",
        f"queue.path: directory {tmp_path}/q does not exist",
        f"cards.district_key_file: district key file {tmp_path}/district.key is readable by others; chmod 600 it",
    ]


def test_cli_check_config_ok_and_one_line_per_mistake(tmp_path: Path) -> None:
    ok = gumei("edge", "check-config", "--config", str(good_files(tmp_path)))
    assert (
        ok.stdout.strip()
        == f"{tmp_path}/gw.toml: ok: site WS-0101, 4 devices, broker mqtts://mqtt.gumei.example:8883"
    )
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE.replace('category = "wet"', 'category = "kitchen"'))
    r = gumei("edge", "check-config", "--config", str(bad), check=False)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [
        f"gumei: error: {bad}: devices[1].category: must be 'dry', 'wet', 'recyclable' or 'hazardous'"
    ]
    r = gumei("edge", "run", "--config", str(tmp_path / "missing.toml"), check=False)
    assert r.returncode == 2 and r.stderr.splitlines() == [
        f"gumei: error: {tmp_path}/missing.toml: cannot read: No such file or directory"
    ]


def test_lean_entry_point_checks_the_same_way(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "bad.toml"
    bad.write_text(BASE.replace("baudrate = 9600", "baud = 9600"))
    r = subprocess.run(
        [sys.executable, "-m", "edge.agent", "--check", "--config", str(bad)],
        capture_output=True,
        check=False,
        text=True,
        cwd=PROJECT,
        timeout=60,
    )
    assert r.returncode == 2 and r.stderr.splitlines() == [
        f"edge: error: {bad}: devices[0].baud: unknown setting (misspelt?)"
    ]
    ok = subprocess.run(
        [sys.executable, "-m", "edge.agent", "--check", "--config", str(good_files(tmp_path))],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0 and ok.stdout.endswith(
        "ok: site WS-0101, 4 devices, broker mqtts://mqtt.gumei.example:8883\n"
    )
