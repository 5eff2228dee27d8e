"""Device status end to end: a real gateway process's status and Last Will, through ingestion, in the API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cloud import measurements as m
from tests.support.common import PROJECT, count, wait_until

SITE = "WS-3801"  # area A38; no other test uses it
KEEPALIVE_S = 2

GATEWAY = r"""
import json, os, sys, threading, time
from contract import Status, encode
from contract.topics import status
from runtime.mqtt import MqttEndpoint, Will, make_client

ep = MqttEndpoint.model_validate_json(os.environ["GATEWAY_ENDPOINT"])
site = ep.username
will = Will(status("waste", site), encode(Status(site=site, state="offline")))
client = make_client(ep, site, will=will)
ready = threading.Event()
client.on_connect = lambda *a: ready.set()
client.connect(ep.host, ep.port, keepalive=ep.keepalive_s)
client.loop_start()
ready.wait(10)
online = Status(site=site, state="online", ts=int(time.time() * 1000), agent_version="test", buffered=17,
                devices=[{"device": f"{site}-S1", "ok": True, "fill_pct": 43.5}, {"device": f"{site}-S2", "ok": False}])
client.publish(status("waste", site), encode(online), qos=1, retain=True).wait_for_publish(10)
print("online", flush=True)
time.sleep(3600)
"""


def devices(api_url: str, token: str, **params: str) -> dict:
    r = httpx.get(
        api_url + "/api/v1/devices",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_killed_gateway_goes_offline_within_the_keepalive_window(
    stack, ingest_worker, api_url, operator_token, influx, tmp_path: Path
):
    ep = stack.endpoint(SITE, keepalive_s=KEEPALIVE_S)
    before = devices(api_url, operator_token, site=SITE)["gateways"][0]
    assert before["state"] == "unknown" and before["last_seen"] is None
    proc = subprocess.Popen(
        [sys.executable, "-c", GATEWAY],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "GATEWAY_ENDPOINT": ep.model_dump_json()},
        cwd=PROJECT,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"online"
        gw = wait_until(
            lambda: (
                (g := devices(api_url, operator_token, site=SITE)["gateways"][0])["state"]
                == "online"
                and g
            ),
            20,
            what="online",
        )
        assert (
            gw["buffered"] == 17
            and gw["kind"] == "waste"
            and gw["area"] == "A38"
            and gw["last_seen"]
        )
        by_dev = {d["device"]: d for d in gw["devices"]}
        assert by_dev[f"{SITE}-S1"] == {**by_dev[f"{SITE}-S1"], "ok": True, "fill_pct": 43.5}
        assert by_dev[f"{SITE}-S2"]["ok"] is False and by_dev[f"{SITE}-S2"]["fill_pct"] is None
        assert by_dev[f"{SITE}-S3"]["reported_at"] is None  # never reported
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()
    # The broker notices after 1.5 x keepalive, publishes the Last Will; ingestion stores it.
    off = wait_until(
        lambda: (
            (g := devices(api_url, operator_token, site=SITE)["gateways"][0])["state"] == "offline"
            and g
        ),
        3 * KEEPALIVE_S + 5,
        what="offline after kill -9",
    )
    assert time.monotonic() - killed <= 3 * KEEPALIVE_S + 5
    assert off["last_seen"] == gw["last_seen"] and off["state_since"] > gw["state_since"]
    assert off["devices"][0]["fill_pct"] == 43.5  # last known fill level stays visible
    assert (
        count(
            influx,
            f"SELECT count(online) FROM {m.GATEWAY_STATUS.name} WHERE site = '{SITE}' AND online = false",
        )
        >= 1
    )
    summary = devices(api_url, operator_token, area="A38", status="offline")
    assert [g["site"] for g in summary["gateways"]] == [SITE] and summary["offline"] >= 1
    assert json.dumps(summary).count(SITE + "-") >= 4
