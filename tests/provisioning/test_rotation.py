"""Issue 19: a gateway's password rotated without downtime — staged first, switched live, nothing lost."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from cloud.influx import InfluxClient
from devstack.stack import LocalStack
from edge.credentials import PasswordFile
from edge.errors import ConfigError
from firmware_sim.scales.station import SimStation
from runtime.system import write_private
from tests.support.common import gumei, wait_until
from tests.support.edge_harness import AgentRun, assert_exact, finish, stored

SITE = "WS-4002"  # area A40: no other test connects as it


def test_a_staged_password_is_used_only_when_the_old_one_is_refused(tmp_path: Path) -> None:
    current = tmp_path / "mqtt-password"
    write_private(current, "old\n")
    creds = PasswordFile(current)
    assert creds.password() == "old" and not creds.refused()  # nothing staged: nothing to try
    write_private(tmp_path / "mqtt-password.next", "new\n")
    creds.accepted()
    assert current.read_text() == "old\n"  # the current one was accepted: nothing promoted
    assert creds.refused() and creds.password() == "new"
    assert creds.refused() and creds.password() == "old"  # the next one refused too: back
    assert creds.refused() and creds.password() == "new"
    creds.accepted()  # the broker took it: it is the password now
    assert current.read_text() == "new\n" and not (tmp_path / "mqtt-password.next").exists()
    assert creds.password() == "new" and creds.rotations == 1
    assert stat.S_IMODE(current.stat().st_mode) == 0o600


def test_a_staged_password_readable_by_others_is_refused(tmp_path: Path) -> None:
    write_private(tmp_path / "mqtt-password", "old\n")
    nxt = tmp_path / "mqtt-password.next"
    nxt.write_text("new\n")
    os.chmod(nxt, 0o644)
    creds = PasswordFile(tmp_path / "mqtt-password")
    assert creds.refused()
    with pytest.raises(ConfigError, match="readable by others"):
        creds.password()


def test_rotation_without_downtime_on_the_real_broker_and_agent(
    stack: LocalStack, ingest_worker: Any, influx: InfluxClient, tmp_path: Path
) -> None:
    assert stack.mosquitto is not None and stack.ca_file is not None
    live = ["--live-host", "127.0.0.1", "--live-port", str(stack.mosquitto.tls_port)]
    run = AgentRun(
        tmp_path / "agent",
        SimStation(SITE, serial=2, modbus=0, fps=20),
        f"mqtts://127.0.0.1:{stack.mosquitto.tls_port}",
        stack.ca_file,
        stack.passwords[SITE],
    )
    try:
        run.start()
        wait_until(lambda: run.counters()["acked"] >= 20, what="20 readings acknowledged")
        # 1. stage; the broker keeps the old password, the gateway keeps working with it
        said = gumei("broker", "rotate", SITE, "--out", str(stack.root), "--stage", "--grace", "1s")
        assert f"staged a new password for {SITE}" in said.stdout
        bundle = tmp_path / "bundle"
        gumei(
            "gateway", "bundle", SITE, "--out", str(bundle), "--broker-dir", str(stack.root),
            "--broker-url", f"mqtts://127.0.0.1:{stack.mosquitto.tls_port}",
        )  # fmt: skip
        staged = (bundle / "mqtt-password.next").read_text().strip()
        assert staged != stack.passwords[SITE]
        shutil.copy2(bundle / "mqtt-password.next", run.root / "mqtt-password.next")  # install
        # 2. the grace time is over: the operator's periodic sync switches the broker
        out = gumei("broker", "sync", "--out", str(stack.root), *live).stdout
        assert f"rotated {SITE} to its staged password (due)" in out
        accepted = run.counters()["accepted"]
        wait_until(
            lambda: (run.root / "mqtt-password").read_text().strip() == staged,
            30,
            what="the gateway to take its staged password",
        )
        assert not (run.root / "mqtt-password.next").exists()
        wait_until(
            lambda: run.counters()["acked"] >= accepted + 20, 30, what="20 more after the switch"
        )
        assert run.alive() and "password rotated" in run.log_text()
        truth = finish(run)
    finally:
        run.close()
        stack.passwords[SITE] = json.loads((stack.root / "secrets" / "mqtt.json").read_text())[
            SITE
        ]  # later tests of the session connect as this site with its password
    assert run.starts == 1  # never restarted
    wait_until(lambda: len(stored(influx, SITE, run.t0_ms)) >= len(truth), what="all stored")
    assert_exact(truth, stored(influx, SITE, run.t0_ms))
    assert not json.loads((stack.root / "secrets" / "pending.json").read_text())
