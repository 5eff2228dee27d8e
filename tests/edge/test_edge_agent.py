"""The real agent process against real brokers: kill -9 and restart, broker outage, bad frames."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from broker.dynsec import monitor_name
from cloud import registry as registry_mod
from cloud.influx import InfluxClient
from contract.topics import status as status_topic
from devstack.stack import LocalStack
from firmware_sim.scales.station import SimStation
from runtime.mqtt import make_client
from tests.support.common import wait_until
from tests.support.edge_harness import (
    AgentRun,
    assert_exact,
    assert_seq_contiguous,
    finish,
    stack_with_worker,
    stored,
)


def agent_on(stack: LocalStack, root: Path, station: SimStation) -> AgentRun:
    assert stack.mosquitto is not None and stack.ca_file is not None
    return AgentRun(
        root,
        station,
        f"mqtts://127.0.0.1:{stack.mosquitto.tls_port}",
        stack.ca_file,
        stack.passwords[station.site],
    )


def test_kill_9_while_publishing_then_restart_loses_and_doubles_nothing(
    stack: LocalStack, ingest_worker: Any, influx: InfluxClient, tmp_path: Path
) -> None:
    run = agent_on(stack, tmp_path, SimStation("WS-0901", serial=3, modbus=1, fps=40))
    try:
        run.start()
        wait_until(lambda: run.counters()["acked"] >= 40, what="40 readings acknowledged")
        run.kill9()  # mid-stream: scales keep sending, PUBACKs outstanding
        at_kill = run.counters()
        run.start()
        wait_until(
            lambda: run.counters()["accepted"] >= at_kill["accepted"] + 40, what="40 more accepted"
        )
        truth = finish(run)
    finally:
        run.close()
    assert len(truth) == run.counters()["accepted"] and run.counters()["dropped"] == 0
    assert_seq_contiguous(truth)  # seq continued after the restart
    assert len({t["device"] for t in truth}) == 4  # serial and Modbus scales
    wait_until(
        lambda: len(stored(influx, "WS-0901", run.t0_ms)) >= len(truth),
        what=f"{len(truth)} readings stored",
    )
    assert_exact(truth, stored(influx, "WS-0901", run.t0_ms))
    assert run.log_text().count("connected to 127.0.0.1") >= 2


@pytest.fixture
def private_stack(
    tmp_path_factory: pytest.TempPathFactory, registry: registry_mod.Registry
) -> Iterator[LocalStack]:
    with stack_with_worker(tmp_path_factory.mktemp("edge-outage"), registry) as s:
        yield s


def test_broker_stopped_for_a_while_scales_keep_weighing_every_reading_arrives(
    private_stack: LocalStack, tmp_path: Path
) -> None:
    broker = private_stack.mosquitto
    assert broker is not None
    run = agent_on(private_stack, tmp_path, SimStation("WS-0902", serial=2, modbus=1, fps=40))
    try:
        run.start()
        wait_until(lambda: run.counters()["acked"] >= 30, what="30 readings acknowledged")
        broker.stop()
        down = run.counters()
        wait_until(
            lambda: run.counters()["accepted"] >= down["accepted"] + 150,
            what="150 readings weighed while down",
        )
        assert (
            run.counters()["acked"] == down["acked"]
        )  # nothing can be acknowledged without a broker
        broker.start()
        truth = finish(run)
    finally:
        run.close()
    assert_seq_contiguous(truth)
    with InfluxClient(private_stack.influx_config()) as influx:
        wait_until(
            lambda: len(stored(influx, "WS-0902", run.t0_ms)) >= len(truth),
            what=f"{len(truth)} readings stored",
        )
        assert_exact(truth, stored(influx, "WS-0902", run.t0_ms))
    assert "replay done" in run.log_text()


def latest_status(stack: LocalStack, site: str) -> dict[str, Any]:
    """The retained status of a gateway, read with a monitor identity."""
    got: list[dict[str, Any]] = []
    ready = threading.Event()

    def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        got.append(json.loads(msg.payload))
        ready.set()

    ep = stack.endpoint(monitor_name(2))
    client = make_client(ep, monitor_name(2))
    client.on_message = on_message
    client.connect(ep.host, ep.port, clean_start=True)
    client.subscribe(status_topic("waste", site), qos=1)
    client.loop_start()
    try:
        assert ready.wait(10), "no retained status"
    finally:
        client.disconnect()
        client.loop_stop()
    return got[-1]


def test_malformed_frames_are_skipped_counted_and_the_agent_keeps_going(
    stack: LocalStack, ingest_worker: Any, influx: InfluxClient, tmp_path: Path
) -> None:
    site = "WS-0801"
    # truncated, bad checksum, wrong unit and random bytes, cycling, after every 3rd frame
    run = agent_on(
        stack, tmp_path, SimStation(site, serial=2, modbus=0, fps=40, fault_every=3, checksum=True)
    )
    try:
        run.start()
        wait_until(
            lambda: run.counters()["acked"] >= 40,
            what="40 readings acknowledged despite bad frames",
        )

        def counted() -> dict[str, Any] | None:
            st = latest_status(stack, site)
            bad = [sum(d["malformed"].values()) for d in st["devices"]]
            return st if all(n >= 20 for n in bad) else None

        status = wait_until(counted, what="malformed frames counted in the status")
        assert run.alive()
        truth = finish(run)
        offline = latest_status(stack, site)
    finally:
        run.close()
    assert status["state"] == "online" and "buffered" in status
    reasons = set().union(*(d["malformed"] for d in status["devices"]))
    assert {"bad_checksum", "bad_unit"} <= reasons and len(reasons) >= 3, reasons
    assert all(d["frames"] > 100 and d["deposits"] > 0 for d in status["devices"])
    assert offline["state"] == "offline"
    assert all(0.05 <= float(t["net_kg"]) <= 5.0 for t in truth)  # no bad frame became a deposit
    wait_until(
        lambda: len(stored(influx, site, run.t0_ms)) >= len(truth),
        what=f"{len(truth)} readings stored",
    )
    assert_exact(truth, stored(influx, site, run.t0_ms))
