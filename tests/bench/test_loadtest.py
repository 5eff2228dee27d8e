"""Load and fault tests: a simulated fleet drives the real pipeline; nothing lost, tonnage exact."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from bench.loadtest import LoadConfig, LoadRun, Report, run_loadtest


def run_and_print(cfg: LoadConfig, capsys: pytest.CaptureFixture[str], title: str) -> Report:
    report = run_loadtest(cfg, progress=lambda s: None)
    with capsys.disabled():
        print(f"\n== {title}")
        for line in report.lines():
            print("   " + line)
    return report


def assert_exact(report: Report) -> None:
    assert report.lost == 0, report.lines()
    assert report.duplicated == 0, report.lines()
    assert report.stored == report.sent - report.expected_quarantined, report.lines()
    assert report.mismatches == [], report.lines()
    assert report.tonnage_error_g == 0
    assert report.daily_rows > 0


async def gateway_offline(run: LoadRun) -> None:
    """Three gateways lose their network for an hour of simulated time, then replay."""
    fleet_gateways = run.fleet.gateways
    for g in fleet_gateways[10:13]:
        g.go_offline(3600 / run.cfg.warp)


def test_short_load_2000_gateways_with_skew_and_outage(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = LoadConfig(
        gateways=2000,
        seconds=40,
        workers=2,
        warp=600,
        skew_ms={"WS-0101": 86_400_000, "WS-0102": 86_400_000, "WS-0201": -3_600_000},
        faults=[(8, gateway_offline)],
    )
    report = run_and_print(
        cfg,
        capsys,
        "short load test: 2000 gateways, two clocks a day ahead, one an hour behind, 3 offline for a simulated hour",
    )
    assert report.gateways == 2000 and report.connected_peak == 2000
    assert report.expected_quarantined > 0  # the gateways a day ahead: every reading quarantined
    assert report.quarantined == report.expected_quarantined
    assert_exact(report)


async def restart_broker(run: LoadRun) -> None:
    assert run.stack.mosquitto is not None
    events = run.fleet.truth.events
    events.append((time.time(), "broker stopping"))
    await asyncio.to_thread(run.stack.mosquitto.stop)
    events.append((time.time(), "broker stopped"))
    await asyncio.sleep(3)
    await asyncio.to_thread(run.stack.mosquitto.start)
    events.append((time.time(), "broker started"))


async def stop_influxd_10s(run: LoadRun) -> None:
    assert run.stack.influxd is not None
    await asyncio.to_thread(run.stack.influxd.stop)
    await asyncio.sleep(10)
    await asyncio.to_thread(run.stack.influxd.start)


async def stop_influxd_30s(run: LoadRun) -> None:
    assert run.stack.influxd is not None
    await asyncio.to_thread(run.stack.influxd.stop)
    await asyncio.sleep(30)
    await asyncio.to_thread(run.stack.influxd.start)


async def kill_worker(run: LoadRun) -> None:
    os.kill(run.process("ingest-1").pid, signal.SIGKILL)
    await asyncio.sleep(2)
    run.start_worker(
        "ingest-1"
    )  # same client id: its persistent session gets the unacknowledged back


@pytest.mark.parametrize(
    ("fault", "title"),
    [
        (restart_broker, "broker restarted mid-stream"),
        (stop_influxd_10s, "influxd stopped for 10 s mid-stream"),
        (kill_worker, "a worker killed with kill -9 mid-stream"),
    ],
)
def test_fault(fault, title, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = LoadConfig(gateways=200, seconds=30, workers=2, warp=1800, faults=[(8, fault)])
    assert_exact(run_and_print(cfg, capsys, title))


@pytest.mark.soak
def test_influxd_stopped_30s(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = LoadConfig(
        gateways=500, seconds=90, workers=2, warp=1800, faults=[(20, stop_influxd_30s)]
    )
    assert_exact(run_and_print(cfg, capsys, "influxd stopped for 30 s mid-stream"))


@pytest.mark.soak
@pytest.mark.timeout(
    1500
)  # 600 s of load, then the verification (the suite's default is 300 s a test)
def test_soak_2000_gateways_10_minutes(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = LoadConfig(
        gateways=2000,
        seconds=600,
        workers=2,
        warp=1200,
        faults=[(120, restart_broker), (240, kill_worker), (360, stop_influxd_30s)],
    )
    assert_exact(
        run_and_print(
            cfg,
            capsys,
            "soak: 2000 gateways, 10 minutes, broker restart, worker kill, influxd outage",
        )
    )
