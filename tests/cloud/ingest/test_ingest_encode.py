"""Preparing a batch alone (no network): bodies per database, day markers last, health dead letters
kept whole only in the health database, a flood of dead letters folded; and the thread guard."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence

import pytest

from cloud import measurements as m
from cloud.health.lines import health_lines
from cloud.ingest.encode import BatchEncoder, plan_bodies
from cloud.ingest.guard import guarded
from cloud.ingest.handler import BatchPlanner, Message, Plan
from cloud.quarantine import HEALTH_STUB_REASON, DeadLetterBudget, QuarantineRecord
from cloud.registry import Registry
from contract.models import HealthMeasurement
from contract.models import now_ms as wall_now_ms
from contract.topics import health_measurements, waste_readings

SITE, HUT = "WS-0101", "HH-01"
WORKER = "ingest-encode-test"


def encode_health(site: str, measurements: Sequence[object]) -> list[str]:
    return health_lines(site, [x for x in measurements if isinstance(x, HealthMeasurement)])


def waste(seq: int, ts: int, device: str = "WS-0101-S1") -> Message:
    doc = {
        "schema": "gumei.waste.readings.v1",
        "site": SITE,
        "readings": [{"device": device, "seq": seq, "ts": ts, "category": "dry", "net_kg": 2.0}],
    }
    return Message(waste_readings(SITE), json.dumps(doc).encode(), seq)


def bp(seq: int, ts: int, systolic: int = 120) -> Message:
    doc = {
        "schema": "gumei.health.measurements.v1",
        "site": HUT,
        "measurements": [
            {
                "device": f"{HUT}-BP",
                "seq": seq,
                "ts": ts,
                "type": "blood_pressure",
                "values": {"systolic_mmhg": systolic, "diastolic_mmhg": 80},
            }
        ],
    }
    return Message(health_measurements(HUT), json.dumps(doc).encode(), seq)


def lines_of(body: bytes) -> list[str]:
    return body.decode().splitlines()


def test_points_then_dead_letters_then_day_markers_and_health_apart(registry: Registry) -> None:
    now = wall_now_ms()
    encoder = BatchEncoder(BatchPlanner(registry, encode_health), WORKER)
    prepared = encoder.prepare(
        [waste(1, now - 1000), waste(2, now - 900, device="WS-0101-NOPE"), bp(1, now - 800)]
    )
    assert (prepared.plan.readings, prepared.plan.measurements) == (1, 1)
    main = [ln.split(",", 1)[0] for ln in lines_of(prepared.body)]
    # one marker per (site, day): the station's and the hut's
    assert main == [m.WASTE_READING.name, m.QUARANTINE.name, *[m.DIRTY_SITE_DAY.name] * 2]
    assert [ln.split(",", 1)[0] for ln in lines_of(prepared.health_body)] == [
        m.HEALTH_MEASUREMENT.name
    ]


def test_a_waste_only_batch_has_no_health_body(registry: Registry) -> None:
    prepared = BatchEncoder(BatchPlanner(registry), WORKER).prepare([waste(1, wall_now_ms())])
    assert prepared.health_body == b"" and len(lines_of(prepared.body)) == 2


def test_a_health_dead_letter_leaves_only_a_stub_in_the_main_database() -> None:
    secret = QuarantineRecord(HUT, "health", "implausible", "systolic 400", "t", '{"seq": 1}')
    main, health = plan_bodies(Plan(quarantine=[secret]), WORKER, 1_000)
    assert HEALTH_STUB_REASON in main.decode() and "systolic 400" not in main.decode()
    assert "systolic 400" in health.decode() and f"worker={WORKER}" in health.decode()


def test_a_flood_of_dead_letters_is_folded_by_the_encoder_s_budget(registry: Registry) -> None:
    encoder = BatchEncoder(
        BatchPlanner(registry),
        WORKER,
        DeadLetterBudget(per_window=2, window_s=60),
        clock=lambda: 0.0,
    )
    junk = [Message(waste_readings(SITE), b"not json", i) for i in range(5)]
    prepared = encoder.prepare(junk)
    assert [r.entries for r in prepared.plan.quarantine] == [1, 1, 3]
    assert len(lines_of(prepared.body)) == 3


def test_a_guarded_loop_that_raises_calls_on_fatal_with_its_thread_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reasons: list[str] = []

    def explode() -> None:
        raise MemoryError("simulated")

    t = threading.Thread(target=guarded(explode, "ingest-7", reasons.append), name="ingest-7-x")
    with caplog.at_level(logging.CRITICAL, logger="cloud.ingest.guard"):
        t.start()
        t.join(5)
    assert reasons == ["ingest-7-x died: MemoryError"]
    assert (
        caplog.records[0].getMessage() == "ingest-7: thread ingest-7-x died: MemoryError: simulated"
    )
    done: list[str] = []
    t = threading.Thread(target=guarded(lambda: None, "ingest-7", done.append))
    t.start()
    t.join(5)
    assert done == []  # a loop that returns is not a death
