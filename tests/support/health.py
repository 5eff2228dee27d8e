"""A resident seeded straight into the health database, for the tests of who may read it."""

from __future__ import annotations

import datetime as dt
import secrets

from cloud.health.lines import health_line
from cloud.influx import InfluxClient
from contract.models import HealthMeasurement

DAY = "2023-04-11"  # this test's own day
T0 = int(dt.datetime(2023, 4, 11, 2, 0, tzinfo=dt.UTC).timestamp() * 1000)


def pseudonym() -> str:
    return "r-" + secrets.token_hex(16)


def seed_resident(influx: InfluxClient) -> str:
    """A new resident with three blood-pressure readings on DAY (written straight to InfluxDB)."""
    resident = pseudonym()
    lines = [
        health_line(
            "HH-01",
            HealthMeasurement.model_validate(
                {
                    "device": "HH-01-BP",
                    "seq": 700 + i,
                    "ts": T0 + i * 60_000,
                    "resident": resident,
                    "type": "blood_pressure",
                    "values": {"systolic_mmhg": 120 + i, "diastolic_mmhg": 80, "pulse_bpm": 70},
                }
            ),
        )
        for i in range(3)
    ]
    influx.write_lines(
        "\n".join(lines).encode(), precision="ns", db=influx.config.health_database
    )  # where ingestion puts them
    return resident
