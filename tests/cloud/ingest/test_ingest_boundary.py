"""The planner is the boundary that must survive any input; a worker whose thread dies exits at once."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from cloud.health.lines import health_lines
from cloud.influx import InfluxClient
from cloud.ingest.handler import MAX_STATUS_DEVICES, BatchPlanner, Message, Plan
from cloud.ingest.ready import read_ready
from cloud.ingest.worker import IngestWorker, WorkerOptions
from cloud.quarantine import DeadLetterBudget, QuarantineRecord
from cloud.registry import Registry
from contract.topics import status, waste_readings
from devstack.stack import LocalStack
from tests.support.common import wait_until
from tests.support.hostile import Gateway

NOW = 1_764_201_600_000
SITE = "WS-0101"


def reading(seq: int, **over: object) -> dict[str, object]:
    return {
        "device": "WS-0101-S1",
        "seq": seq,
        "ts": NOW - 1000,
        "category": "dry",
        "net_kg": 1.25,
        **over,
    }


def batch(*readings: dict[str, object]) -> bytes:
    return json.dumps(
        {"schema": "gumei.waste.readings.v1", "site": SITE, "readings": list(readings)}
    ).encode()


def test_a_bug_of_ours_is_an_internal_error_dead_letter_and_the_rest_of_the_batch_is_kept(
    registry: Registry,
) -> None:
    """A health encoder that raises (standing in for any bug) costs only its own message, which is
    rolled back (no half-planned lines) and kept as a redacted `internal_error` dead letter."""

    def broken(site: str, measurements: Sequence[object]) -> list[str]:
        raise KeyError("6222021234567890")

    planner = BatchPlanner(registry, broken)
    hut = json.dumps(
        {
            "schema": "gumei.health.measurements.v1",
            "site": "HH-01",
            "measurements": [
                {
                    "device": "HH-01-BP",
                    "seq": 1,
                    "ts": NOW,
                    "type": "blood_pressure",
                    "resident": "6222021234567890",
                    "values": {"systolic_mmhg": 120, "diastolic_mmhg": 80},
                }
            ],
        }
    ).encode()
    plan = planner.plan_batch(
        [
            Message(waste_readings(SITE), batch(reading(1))),
            Message("gumei/v1/health/HH-01/measurements", hut),
            Message(waste_readings(SITE), batch(reading(2))),
        ],
        NOW,
    )
    assert plan.readings == 2 and len(plan.lines) == 2 and plan.measurements == 0
    assert [(q.code, q.site) for q in plan.quarantine] == [("internal_error", "HH-01")]
    assert "6222021234567890" not in repr(plan.quarantine)


def test_internal_error_rolls_back_what_the_message_had_planned(registry: Registry) -> None:
    calls = []

    def broken(site: str, measurements: Sequence[object]) -> list[str]:
        calls.append(site)
        raise RuntimeError("boom")

    planner = BatchPlanner(registry, broken)
    hut = json.dumps(
        {
            "schema": "gumei.health.measurements.v1",
            "site": "HH-01",
            "measurements": [
                {
                    "device": "HH-01-BP",
                    "seq": 1,
                    "ts": NOW,
                    "type": "blood_pressure",
                    "values": {"systolic_mmhg": 120, "diastolic_mmhg": 80},
                },
                {
                    "device": "HH-01-BP",
                    "seq": 2,
                    "ts": NOW,
                    "type": "blood_pressure",
                    "values": {"systolic_mmhg": 1},
                },
            ],
        }
    ).encode()
    plan = planner.plan_batch([Message("gumei/v1/health/HH-01/measurements", hut)], NOW)
    assert calls == ["HH-01"]
    assert (
        plan.lines == [] and plan.measurements == 0 and not plan.days and plan.internal_errors == 1
    )
    assert [(q.code, q.reason, q.entries) for q in plan.quarantine] == [
        ("internal_error", "RuntimeError", 2)
    ]


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 100_000,
        b'{"a":' * 50_000,
        b"\x00" * 1000,
        b"",
        b"null",
        b"1e999999",
        b"9" * 5000,
        b'{"schema":"gumei.status.v1","site":"WS-0101","state":"online","buffered":'
        + b"9" * 30
        + b"}",
        b'{"schema":"gumei.waste.readings.v1","site":"WS-0101","readings":['
        + b"[" * 100_000
        + b"]}",
    ],
)
@pytest.mark.parametrize("channel", ["readings", "status"])
def test_hostile_shapes_end_as_dead_letters(
    registry: Registry, payload: bytes, channel: str
) -> None:
    plan = BatchPlanner(registry, health_lines).plan_batch(
        [Message(f"gumei/v1/waste/{SITE}/{channel}", payload)], NOW
    )
    assert plan.lines == [] and len(plan.quarantine) == 1 and plan.internal_errors == 0
    assert plan.quarantine[0].code in {"not_json", "bad_schema", "too_large"}, plan.quarantine[0]


def test_a_status_names_only_registered_devices(registry: Registry) -> None:
    devices = [{"device": f"{SITE}-Z{i}", "ok": True} for i in range(5000)] + [
        {"device": f"{SITE}-S1", "ok": False, "fill_pct": 40.0}
    ]
    doc = {
        "schema": "gumei.status.v1",
        "site": SITE,
        "state": "online",
        "buffered": 2**63 - 1,
        "devices": devices,
        "fw": "9",
    }
    plan = BatchPlanner(registry).plan_batch(
        [Message(status("waste", SITE), json.dumps(doc).encode(), received_ns=1)], NOW
    )
    assert (
        len(plan.lines) == 2 and "device=WS-0101-S1" in plan.lines[1]
    )  # one gateway point, one registered device
    assert plan.ignored == {"devices[] not registered": 5000, "fw": 1}
    site = registry.site(SITE)
    assert site is not None and len(site.devices) <= MAX_STATUS_DEVICES


def test_a_dying_worker_thread_ends_the_process(tmp_path: Path, registry: Registry) -> None:
    """If a worker thread ever raises, the worker must not stay alive acknowledging nothing: the
    guard calls on_fatal (in production: os._exit(70), so systemd restarts it). A private broker:
    this worker joins the shared group and must not hold the session stack's messages."""

    class Exploding(BatchPlanner):
        def plan_batch(self, messages: object, now_ms: int | None = None) -> Plan:
            raise MemoryError("simulated")

    died = threading.Event()
    reasons: list[str] = []

    def fatal(why: str) -> None:
        reasons.append(why)
        died.set()

    stack = LocalStack(tmp_path / "stack", registry)
    stack.start()
    try:
        with InfluxClient(stack.influx_config()) as influx:
            ready = tmp_path / "ingest-1.ready"
            worker = IngestWorker(
                stack.endpoint("ingest-1"),
                influx,
                Exploding(registry),
                WorkerOptions(name="ingest-1", ready_file=ready),
                on_fatal=fatal,
            )
            worker.start()
            try:
                # publish only once the shared subscription is granted: before it, a fresh
                # broker has no subscriber to deliver to, and the planner would never be called
                wait_until(lambda: read_ready(ready), 20, what="the worker's subscription")
                gw = Gateway(stack.endpoint(SITE), SITE)
                try:
                    gw.send_nowait(waste_readings(SITE), batch(reading(1)))
                finally:
                    gw.close()
                assert died.wait(20), "the planner thread died quietly"
                assert reasons == ["ingest-1-planner died: MemoryError"]
            finally:
                worker.stop()
    finally:
        stack.stop()


def test_a_flood_of_dead_letters_is_folded_with_exact_counts() -> None:
    budget = DeadLetterBudget(per_window=3, window_s=60)
    junk = [
        QuarantineRecord("WS-0101", "waste", "not_json", f"r{i}", "t", "p", entries=2)
        for i in range(10)
    ]
    other = [QuarantineRecord("WS-0102", "waste", "not_json", "o", "t", "p")]
    kept = budget.admit(junk + other, now_s=0.0)
    assert [r.reason for r in kept[:4]] == [
        "r0",
        "r1",
        "r2",
        "o",
    ]  # within budget, and another site untouched
    assert (
        len(kept) == 5
        and kept[4].entries == 14
        and kept[4].reason.startswith("7 dead letters folded")
    )
    assert sum(r.entries for r in kept) == sum(r.entries for r in junk + other)  # counts stay exact
    assert [r.reason for r in budget.admit(junk[:1], now_s=61.0)] == ["r0"]  # a new window
