"""The site registry as code: the default validates, edits give one-line errors, the CLI edits a copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cloud import registry as r
from tests.support.common import gumei


def test_default_registry_is_the_realistic_gumei_layout() -> None:
    reg = r.load()
    waste = [s for s in reg.sites if s.kind == "waste"]
    assert len(reg.areas) == 40 and 300 <= len(waste) <= 400 and reg.site("HH-01") is not None
    assert all(31.1 < s.lat < 31.2 and 121.35 < s.lon < 121.45 for s in reg.sites)
    assert all(len(s.devices) == 4 for s in waste)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda g: r.add_site(g, "WS-0101", "A01", "x", 31.1, 121.4),
            "site WS-0101 already exists",
        ),
        (lambda g: r.add_site(g, "WS 01", "A01", "x", 31.1, 121.4), "bad site id 'WS 01'"),
        (lambda g: r.add_site(g, "WS-9901", "A99", "x", 31.1, 121.4), "unknown area 'A99'"),
        (
            lambda g: r.add_site(g, "WS-0101-B", "A01", "x", 31.1, 121.4),
            "starts with site id WS-0101-",
        ),
        (lambda g: r.add_area(g, "A01", "x"), "area A01 already exists"),
        (
            lambda g: r.add_device(g, "WS-0101-S1", "serial", "dry"),
            "device WS-0101-S1 already exists",
        ),
        (
            lambda g: r.add_device(g, "WS-7777-S1", "serial", "dry"),
            "does not start with a known site id",
        ),
        (lambda g: r.add_device(g, "HH-01-X", "ble", "dry"), "give --type"),
        (lambda g: r.add_device(g, "WS-0101-S9", "usb", "dry"), "interface"),
        (lambda g: r.retire_site(g, "WS-7777"), "no site WS-7777"),
        (lambda g: r.retire_device(g, "WS-0101-S7"), "no device WS-0101-S7"),
    ],
)
def test_bad_edits_are_one_line_errors(edit, message) -> None:
    with pytest.raises(r.RegistryError) as exc:
        edit(r.load())
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_edits_round_trip_and_retired_ids_are_never_reused(tmp_path: Path) -> None:
    reg = r.add_device(
        r.add_site(r.add_area(r.load(), "A41", "新区"), "WS-4101", "A41", "新站", 31.15, 121.40),
        "WS-4101-S1",
        "modbus",
        "wet",
        None,
        240.0,
    )
    r.save(r.retire_device(r.retire_site(reg, "WS-4101"), "WS-4101-S1"), tmp_path / "s.yaml")
    back = r.load(tmp_path / "s.yaml")
    site = back.site("WS-4101")
    assert (
        site is not None
        and site.retired
        and site.devices[0].retired
        and site.devices[0].interface == "modbus"
    )
    with pytest.raises(r.RegistryError, match="retired; ids are never reused"):
        r.add_site(back, "WS-4101", "A41", "again", 31.15, 121.40)


def test_cli_lists_adds_retires_with_one_line_errors(tmp_path: Path) -> None:
    path = tmp_path / "sites.yaml"
    shutil.copy(r.DEFAULT_PATH, path)
    gumei(
        "registry",
        "add-site",
        "WS-0111",
        "--area",
        "A01",
        "--name",
        "古美第1居民区 投放点 11",
        "--lat",
        "31.16",
        "--lon",
        "121.39",
        "-r",
        str(path),
    )
    gumei("registry", "add-device", "WS-0111-S1", "--category", "recyclable", "-r", str(path))
    listed = gumei("registry", "list", "--area", "A01", "--devices", "-r", str(path)).stdout
    assert "WS-0111-S1\tWS-0111\tserial\trecyclable\tactive" in listed
    dup = gumei(
        "registry",
        "add-site",
        "WS-0111",
        "--area",
        "A01",
        "--name",
        "x",
        "--lat",
        "31",
        "--lon",
        "121",
        "-r",
        str(path),
        check=False,
    )
    assert dup.returncode == 2 and dup.stderr.strip() == "gumei: error: site WS-0111 already exists"
    gumei("registry", "retire-site", "WS-0111", "-r", str(path))
    assert "WS-0111" not in gumei("registry", "list", "-r", str(path)).stdout
    assert (
        "WS-0111\twaste\tA01\t1 devices\tretired"
        in gumei("registry", "list", "--retired", "-r", str(path)).stdout
    )
