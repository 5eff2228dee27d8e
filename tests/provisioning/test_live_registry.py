"""The registry a running process uses: reloaded when its file changes, never a broken one."""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path

import pytest

from broker.live import GatewayChanges, gateway_changes, gateway_commands, is_service
from cloud import registry as reg
from runtime.system import ServiceError


def small() -> reg.Registry:
    r = reg.Registry(areas=[reg.Area(id="A01", name="a")], sites=[])
    r = reg.add_site(r, "WS-0101", "A01", "s1", 31.15, 121.40)
    return reg.add_device(r, "WS-0101-S1", "serial", "dry", None, 240.0)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_change_is_taken_at_the_next_check_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "sites.yaml"
    reg.save(small(), path)
    clock = Clock()
    live = reg.LiveRegistry(path, check_every_s=1.0, clock=clock)
    assert live.snapshot() == (1, small())
    reg.save(reg.add_site(small(), "WS-0102", "A01", "s2", 31.15, 121.40), path)
    assert live.current().site("WS-0102") is None  # not looked at again within the interval
    clock.t = 1.0
    version, now = live.snapshot()
    assert version == 2 and now.site("WS-0102") is not None
    clock.t = 2.0
    assert live.snapshot()[0] == 2  # unchanged file: same version, no reload


@pytest.mark.parametrize(
    "broken",
    [
        "areas: [\n",
        "areas: []\nsites: [{id: WS-1, kind: waste, area: A99, name: x, lat: 0, lon: 0}]\n",
        "",
    ],
)
def test_a_broken_file_is_refused_once_and_the_running_registry_stays(
    tmp_path: Path, broken: str
) -> None:
    path = tmp_path / "sites.yaml"
    reg.save(small(), path)
    clock, errors = Clock(), list[str]()
    live = reg.LiveRegistry(path, check_every_s=1.0, clock=clock, on_error=errors.append)
    path.write_text(broken)
    os.utime(path, ns=(1, 1))  # a stamp of its own, whatever the file system's granularity
    for t in (1.0, 2.0, 3.0):
        clock.t = t
        assert live.snapshot() == (1, small())
    assert len(errors) == 1 and "\n" not in errors[0]
    assert errors[0].startswith("registry change refused, still using version 1: registry ")
    reg.save(reg.add_site(small(), "WS-0102", "A01", "s2", 31.15, 121.40), path)  # fixed
    clock.t = 4.0
    assert live.snapshot()[0] == 2


def test_a_process_does_not_start_on_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "sites.yaml"
    path.write_text("sites: 3\n")
    with pytest.raises(reg.RegistryError):
        reg.LiveRegistry(path)


def test_derive_makes_anew_only_after_a_reload(tmp_path: Path) -> None:
    path = tmp_path / "sites.yaml"
    reg.save(small(), path)
    clock, made = Clock(), []
    live = reg.LiveRegistry(path, check_every_s=1.0, clock=clock)

    def make(r: reg.Registry) -> int:
        made.append(r)
        return len(r.sites)

    get = live.derive(make)
    assert [get() for _ in range(5)] == [1] * 5 and len(made) == 1
    reg.save(reg.add_site(small(), "WS-0102", "A01", "s2", 31.15, 121.40), path)
    clock.t = 1.0
    assert get() == 2 and len(made) == 2


def test_save_is_atomic_under_concurrent_readers(tmp_path: Path) -> None:
    """Readers loading while a writer saves see the old or the new registry, never a broken one."""
    path = tmp_path / "sites.yaml"
    one, two = small(), reg.add_site(small(), "WS-0102", "A01", "s2", 31.15, 121.40)
    reg.save(one, path)
    stop, seen, failures = threading.Event(), set(), []

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.add(len(reg.load(path).sites))
            except reg.RegistryError as exc:
                failures.append(str(exc))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(200):
        reg.save(two if i % 2 else one, path)
    stop.set()
    for t in threads:
        t.join()
    assert failures == [] and seen <= {1, 2}
    assert not list(tmp_path.glob(".*.tmp"))


def test_every_change_is_logged_with_who_and_when(tmp_path: Path) -> None:
    path = tmp_path / "sites.yaml"
    reg.log_change(path, "added site WS-0102", "ops-li")
    reg.log_change(path, "retired device WS-0101-S1", "ops-wang")
    lines = (tmp_path / "sites.yaml.changes.log").read_text().splitlines()
    assert [line.split("\t")[1:] for line in lines] == [
        ["ops-li", "added site WS-0102"],
        ["ops-wang", "retired device WS-0101-S1"],
    ]
    assert all(line.split("\t")[0].endswith("Z") for line in lines)


# -- the broker's gateways, as data ---------------------------------------------------------------


def test_gateway_changes_add_new_sites_and_remove_retired_ones_only() -> None:
    r = reg.add_site(small(), "WS-0102", "A01", "s2", 31.15, 121.40)
    r = reg.retire_site(r, "WS-0101")
    present = {"gumei-admin", "ingest-1", "monitor-1", "WS-0101", "WS-0999"}
    assert gateway_changes(r, present) == GatewayChanges(("WS-0102",), ("WS-0101", "WS-0999"))
    assert not gateway_changes(r, {"gumei-admin", "ingest-1", "WS-0102"})
    assert all(is_service(u) for u in ("gumei-admin", "ingest-4", "monitor-2"))


def test_a_site_named_like_a_service_identity_is_refused() -> None:
    r = reg.add_site(small(), "ingest-9", "A01", "x", 31.15, 121.40)
    with pytest.raises(ServiceError, match="ingest-9 is the name of a broker service identity"):
        gateway_changes(r, set())


def test_gateway_commands_bind_the_client_id_and_grant_only_its_own_topics() -> None:
    cmds = gateway_commands(
        GatewayChanges(("WS-0102",), ("WS-0101",)), {"WS-0102": "pw"}, {"gateway-WS-0101"}
    )
    assert [c["command"] for c in cmds] == [
        "createRole",
        "createClient",
        "deleteClient",
        "deleteRole",
    ]
    role, client = cmds[0], cmds[1]
    assert role["acls"] == [
        {
            "acltype": "publishClientSend",
            "topic": "gumei/v1/waste/WS-0102/+",
            "priority": 0,
            "allow": True,
        }
    ]
    assert client["clientid"] == client["username"] == "WS-0102"
    assert client["roles"] == [{"rolename": "gateway-WS-0102"}]


def test_a_move_keeps_the_old_area_for_the_days_before() -> None:
    r = reg.add_area(small(), "A02", "b")
    moved = reg.move_site(r, "WS-0101", "A02", dt.date(2026, 12, 5))
    site = moved.site("WS-0101")
    assert site is not None and site.area == "A02"
    assert (
        site.area_on(dt.date(2026, 12, 4)) == "A01" and site.area_on(dt.date(2026, 12, 5)) == "A02"
    )
    assert moved.area_of(dt.date(2026, 1, 1)) == {"WS-0101": "A01"} and moved.has_moves()
    back = reg.move_site(moved, "WS-0101", "A01", dt.date(2027, 1, 1))
    days = (dt.date(2026, 1, 1), dt.date(2026, 12, 10), dt.date(2027, 1, 1))
    assert [back.site("WS-0101").area_on(d) for d in days] == [  # type: ignore[union-attr]
        "A01", "A02", "A01",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("site", "area", "day", "says"),
    [
        ("WS-0101", "A01", dt.date(2026, 12, 5), "is in area A01 already"),
        ("WS-0101", "A09", dt.date(2026, 12, 5), "unknown area 'A09'"),
        ("WS-0999", "A02", dt.date(2026, 12, 5), "no site WS-0999"),
    ],
)
def test_a_bad_move_is_one_line(site: str, area: str, day: dt.date, says: str) -> None:
    with pytest.raises(reg.RegistryError, match=says):
        reg.move_site(reg.add_area(small(), "A02", "b"), site, area, day)


def test_moves_are_in_order_and_survive_a_save(tmp_path: Path) -> None:
    r = reg.move_site(reg.add_area(small(), "A02", "b"), "WS-0101", "A02", dt.date(2026, 12, 5))
    with pytest.raises(reg.RegistryError, match="a later move must start after it"):
        reg.move_site(r, "WS-0101", "A01", dt.date(2026, 12, 5))
    path = tmp_path / "sites.yaml"
    reg.save(r, path)
    assert reg.load(path) == r and "until: '2026-12-05'" in path.read_text()
