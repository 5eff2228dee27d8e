"""The `gumei ops` commands as a user runs them, on the session's stack; subscribers from the TOML."""

from __future__ import annotations

import time

import pytest

from cloud.ops import store
from cloud.ops.lifecycle import change_for
from cloud.ops.rules import BY_NAME
from cloud.settings import SettingsError, load_settings
from devstack.services import free_port
from tests.support.common import gumei
from tests.support.webhook import Receiver


@pytest.fixture(scope="module")
def hook_config(cloud_config, tmp_path_factory):
    rx = Receiver(free_port())
    text = cloud_config.read_text()
    extra = f"""
[[ops.subscribers]]
name = "cli-hook"
url = "{rx.url}"
secret = "k"
audiences = ["operations"]
"""
    path = tmp_path_factory.mktemp("ops-cli") / "cloud.toml"
    path.write_text(text + extra)
    yield path, rx
    rx.stop()


def test_deliver_sends_then_says_pending_when_the_receiver_is_down(hook_config, influx):
    path, rx = hook_config
    now = time.time_ns() // 1_000_000
    rule = BY_NAME["target_missed"]  # audience operations
    store.write_changes(influx, [(change_for(rule, "cli-target", "open", now - 1000), "open")])
    down = gumei("ops", "deliver", "--config", str(path), check=False)
    assert down.returncode == 1 and "pending" in down.stdout and "Traceback" not in down.stderr
    rx.start()
    up = gumei("ops", "deliver", "--config", str(path))
    assert "delivered" in up.stdout
    assert f"target_missed:cli-target:{now - 1000}:open" in rx.idempotency_keys()
    again = gumei("ops", "deliver", "--config", str(path))
    assert rx.idempotency_keys().count(f"target_missed:cli-target:{now - 1000}:open") == 1, (
        again.stdout
    )


def test_events_lists_active_events(hook_config, influx):
    path, _ = hook_config
    now = time.time_ns() // 1_000_000
    rule = BY_NAME["quarantine_spike"]
    store.write_changes(influx, [(change_for(rule, "WS-CLI-1", "open", now - 1000), "open")])
    out = gumei("ops", "events", "--config", str(path)).stdout
    assert f"quarantine_spike:WS-CLI-1:{now - 1000}" in out


def test_bad_config_is_one_line(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text('[[ops.subscribers]]\nname = "a"\nurl = "gopher://x"\n')
    r = gumei("ops", "evaluate", "--config", str(bad), check=False)
    assert (
        r.returncode == 2
        and "Traceback" not in r.stderr
        and len(r.stderr.strip().splitlines()) == 1
    )
    dup = tmp_path / "d.toml"
    dup.write_text(
        '[[ops.subscribers]]\nname = "a"\nurl = "http://x"\n[[ops.subscribers]]\nname = "a"\nurl = "http://y"\n'
    )
    with pytest.raises(SettingsError, match="unique"):
        load_settings(dup)


def test_offline_minutes_sets_the_gateway_offline_delay(tmp_path):
    from gumei.cli.ops_cmds import _thresholds

    assert _thresholds(load_settings(None)).offline_ms == 10 * 60_000  # production default
    demo = tmp_path / "demo.toml"
    demo.write_text("[ops]\noffline_minutes = 1\n")
    assert _thresholds(load_settings(demo)).offline_ms == 60_000
    for bad in ("0", "-5", "100000", '"soon"'):
        path = tmp_path / "bad.toml"
        path.write_text(f"[ops]\noffline_minutes = {bad}\n")
        with pytest.raises(SettingsError, match="offline_minutes"):
            load_settings(path)
        r = gumei("ops", "evaluate", "--config", str(path), check=False)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
