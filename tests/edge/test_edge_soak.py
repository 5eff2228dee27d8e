"""Soak: one agent for minutes with bad frames, repeated kill -9 and broker restarts; exact at the end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud import registry as registry_mod
from cloud.influx import InfluxClient
from devstack.stack import LocalStack
from firmware_sim.scales.station import SimStation
from tests.support.common import wait_until
from tests.support.edge_harness import (
    AgentRun,
    assert_exact,
    assert_seq_contiguous,
    finish,
    stack_with_worker,
    stored,
)


@pytest.fixture
def soak_stack(
    tmp_path_factory: pytest.TempPathFactory, registry: registry_mod.Registry
) -> Iterator[LocalStack]:
    with stack_with_worker(tmp_path_factory.mktemp("edge-soak"), registry) as s:
        yield s


@pytest.mark.soak
def test_minutes_of_faults_kills_and_broker_restarts_lose_and_double_nothing(
    soak_stack: LocalStack, tmp_path: Path
) -> None:
    broker = soak_stack.mosquitto
    assert broker is not None and soak_stack.ca_file is not None
    station = SimStation("WS-0903", serial=3, modbus=1, fps=30, fault_every=7, checksum=True)
    run = AgentRun(
        tmp_path,
        station,
        f"mqtts://127.0.0.1:{broker.tls_port}",
        soak_stack.ca_file,
        soak_stack.passwords["WS-0903"],
    )
    try:
        run.start()
        for round_ in range(6):
            target = run.counters()["acked"] + 100

            def acked(t: int = target) -> bool:
                return run.counters()["acked"] >= t

            wait_until(
                acked,
                timeout=60,
                what=f"round {round_}: 100 more acked",
            )
            if round_ % 2 == 0:
                run.kill9()
                time.sleep(2)  # the scales keep sending into a line nobody reads
                run.start()
            else:
                broker.stop()
                time.sleep(15)  # scales keep weighing into the queue
                broker.start()
        truth = finish(run)
    finally:
        run.close()
    assert_seq_contiguous(truth)
    with InfluxClient(soak_stack.influx_config()) as influx:
        wait_until(
            lambda: len(stored(influx, "WS-0903", run.t0_ms)) >= len(truth),
            timeout=60,
            what=f"{len(truth)} readings stored",
        )
        assert_exact(truth, stored(influx, "WS-0903", run.t0_ms))
