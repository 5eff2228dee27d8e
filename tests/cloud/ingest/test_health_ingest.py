"""Ingestion planning of health payloads (pure): implausible entries quarantined alone, the rest stored."""

from __future__ import annotations

import json

from cloud.health.lines import health_lines
from cloud.ingest.handler import BatchPlanner, Message
from cloud.registry import Registry
from contract import HealthBatch, HealthMeasurement, encode
from contract.topics import health_measurements

TS = 1_764_201_600_000
R = "r-5f0c2a9b41d07e3c8a66b1f2d9e04c17"


def bp(seq: int, systolic: float, diastolic: float = 80) -> HealthMeasurement:
    return HealthMeasurement.model_validate(
        {
            "device": "HH-01-BP",
            "seq": seq,
            "ts": TS + seq,
            "resident": R,
            "type": "blood_pressure",
            "values": {"systolic_mmhg": systolic, "diastolic_mmhg": diastolic},
        }
    )


def message(*ms: HealthMeasurement) -> Message:
    return Message(
        health_measurements("HH-01"), encode(HealthBatch(site="HH-01", measurements=list(ms)))
    )


def test_implausible_entries_are_quarantined_alone(registry: Registry) -> None:
    plan = BatchPlanner(registry, health_lines).plan_batch(
        [message(bp(1, 120), bp(2, 20), bp(3, 400), bp(4, 150))], TS
    )
    assert (
        plan.measurements == 2 and len(plan.health_lines) == 2 and plan.lines == []
    )  # the health database's
    assert [q.code for q in plan.quarantine] == ["implausible", "implausible"]
    assert "systolic_mmhg 20 outside plausible range 40..300" in plan.quarantine[0].reason
    assert "systolic_mmhg 400 outside" in plan.quarantine[1].reason
    assert json.loads(plan.quarantine[1].payload)["seq"] == 3
    assert (
        'flag="normal"' in plan.health_lines[0] and 'flag="bp_raised_home"' in plan.health_lines[1]
    )
    assert len(plan.days) == 1  # the aggregator recomputes health_daily for that day


def test_without_encoder_health_is_not_supported_once(registry: Registry) -> None:
    stray = HealthMeasurement.model_validate(
        {
            "device": "HH-01-XX",
            "seq": 1,
            "ts": TS,
            "type": "body_temperature",
            "values": {"temperature_c": 36.6},
        }
    )
    plan = BatchPlanner(registry).plan_batch([message(bp(1, 120), stray)], TS)
    assert [q.code for q in plan.quarantine] == ["not_supported"] and plan.quarantine[
        0
    ].entries == 2
    with_encoder = BatchPlanner(registry, health_lines).plan_batch([message(bp(1, 120), stray)], TS)
    assert [q.code for q in with_encoder.quarantine] == [
        "unknown_device"
    ] and with_encoder.measurements == 1
