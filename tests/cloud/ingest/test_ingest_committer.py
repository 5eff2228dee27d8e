"""The committer alone, against a private influxd: one request for a clean batch (health first),
a poison batch bisected down to its bad lines (only those quarantined, every other line stored by
exactly one accepted request), retries until InfluxDB takes the batch, and `Stopped` on stop."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from cloud import measurements as m
from cloud.health.lines import health_lines
from cloud.influx import InfluxClient, InfluxConfig
from cloud.ingest.committer import Committer, Stopped
from cloud.ingest.encode import BatchEncoder
from cloud.ingest.handler import BatchPlanner, Message
from cloud.ingest.stats import Counters
from cloud.registry import Registry
from contract.days import DAY_MS
from contract.models import HealthMeasurement
from contract.topics import health_measurements, waste_readings
from devstack.services import Influxd, free_port
from tests.support.common import wait_until

SITE, DEVICE, HUT = "WS-0101", "WS-0101-S1", "HH-01"
WORKER = "ingest-committer-test"


class RecordingInflux(InfluxClient):
    """The real client, remembering every body InfluxDB accepted (and into which database)."""

    def __init__(self, config: InfluxConfig) -> None:
        super().__init__(config)
        self.accepted: list[tuple[str | None, bytes]] = []

    def write_lines(
        self, body: bytes, precision: str = "ns", retries: int | None = None, db: str | None = None
    ) -> None:
        super().write_lines(body, precision, retries, db)
        self.accepted.append((db, body))

    def accepted_lines(self, measurement: str) -> Counter[str]:
        """How many accepted requests carried each line of `measurement`."""
        return Counter(
            ln
            for _db, body in self.accepted
            for ln in body.decode().splitlines()
            if ln.startswith(measurement + ",")
        )


def config_of(influxd: Influxd) -> InfluxConfig:
    return InfluxConfig(
        url=influxd.url,
        database=influxd.database,
        auth="basic",
        username=influxd.username,
        password=influxd.password,
        timeout_s=5,
    )


@pytest.fixture(scope="module")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """A private influxd (a planted type conflict must not reach other tests' data)."""
    server = Influxd(tmp_path_factory.mktemp("committer-influxd"))
    server.start()
    with InfluxClient(config_of(server)) as admin:
        admin.execute(f'CREATE DATABASE "{admin.health_db}"')
    yield server
    server.stop()


@pytest.fixture
def influx(influxd: Influxd) -> Iterator[RecordingInflux]:
    with RecordingInflux(config_of(influxd)) as client:
        yield client


def encode_health(site: str, measurements: Sequence[object]) -> list[str]:
    """cloud.health.lines.health_lines, typed as the planner's health encoder."""
    return health_lines(site, [x for x in measurements if isinstance(x, HealthMeasurement)])


@pytest.fixture(scope="module")
def planner(registry: Registry) -> BatchPlanner:
    return BatchPlanner(registry, encode_health)


def committer(
    influx: InfluxClient,
    planner: BatchPlanner,
    stop: threading.Event | None = None,
    max_backoff_s: float = 0.5,
) -> Committer:
    return Committer(
        influx,
        planner.plan_batch,
        Counters(),
        worker=WORKER,
        max_backoff_s=max_backoff_s,
        stop=stop or threading.Event(),
    )


def waste(ts: int, seqs: range, gross_every: int = 0) -> Message:
    readings = [
        {
            "device": DEVICE,
            "seq": seq,
            "ts": ts + i,
            "category": "dry",
            "net_kg": 1.5,
            **({"gross_kg": 20.5} if gross_every and i % gross_every == 0 else {}),
        }
        for i, seq in enumerate(seqs)
    ]
    doc = {"schema": "gumei.waste.readings.v1", "site": SITE, "readings": readings}
    return Message(waste_readings(SITE), json.dumps(doc).encode(), seqs[0])


def blood_pressure(ts: int, seq: int) -> Message:
    doc = {
        "schema": "gumei.health.measurements.v1",
        "site": HUT,
        "measurements": [
            {
                "device": f"{HUT}-BP",
                "seq": seq,
                "ts": ts,
                "type": "blood_pressure",
                "values": {"systolic_mmhg": 120, "diastolic_mmhg": 80},
            }
        ],
    }
    return Message(health_measurements(HUT), json.dumps(doc).encode(), seq)


def count(influx: InfluxClient, q: str, db: str | None = None) -> int:
    series = influx.query(q, db=db)
    return int(series[0].values[0][1]) if series else 0


def day_start(days_ago: int) -> int:
    """A Shanghai-independent ms start well inside the age horizon, one per test."""
    return (int(time.time() * 1000) // DAY_MS - days_ago) * DAY_MS + 3_600_000


def test_a_clean_batch_is_one_request_per_database_health_first(
    influx: RecordingInflux, planner: BatchPlanner
) -> None:
    ts = day_start(3)
    prepared = BatchEncoder(planner, WORKER).prepare(
        [waste(ts, range(1, 6)), blood_pressure(ts, 1)]
    )
    c = committer(influx, planner)
    plan = c.commit(prepared)
    assert plan is prepared.plan and (plan.readings, plan.measurements) == (5, 1)
    assert [db for db, _ in influx.accepted] == [influx.health_db, None]
    assert (c.counters.rejected_batches, c.counters.write_errors) == (0, 0)
    where = f"time >= {ts}ms AND time < {ts + 1000}ms"
    assert count(influx, f"SELECT count(net_kg) FROM {m.WASTE_READING.name} WHERE {where}") == 5


def test_a_poison_batch_quarantines_only_its_bad_lines_and_stores_the_rest_once(
    influx: RecordingInflux, planner: BatchPlanner
) -> None:
    ts = day_start(5)
    # an integer gross_kg planted in this shard: every float gross_kg is then a type conflict (400)
    influx.write_lines(
        f"{m.WASTE_READING.name},area=x,category=dry,device={DEVICE},site={SITE} gross_kg=1i "
        f"{(ts - 1000) * 1_000_000}\n".encode()
    )
    influx.accepted.clear()
    messages = [
        waste(ts, range(100, 110)),
        waste(ts + 100, range(200, 220), gross_every=5),  # 4 of its 20 lines are poison
        waste(ts + 200, range(300, 310)),
    ]
    expected = planner.plan_batch(messages).lines
    poison = [ln for ln in expected if "gross_kg=" in ln]
    good = [ln for ln in expected if "gross_kg=" not in ln]
    assert (len(poison), len(good)) == (4, 36)

    c = committer(influx, planner)
    plan = c.commit(BatchEncoder(planner, WORKER).prepare(messages))

    assert c.counters.rejected_batches == 1 and c.counters.write_errors == 0
    assert plan.readings == 36
    rejected = [r for r in plan.quarantine if r.code == "write_rejected"]
    assert sorted(r.payload for r in rejected) == sorted(poison)
    assert all("conflict" in r.reason and r.site == SITE for r in rejected)
    accepted = influx.accepted_lines(m.WASTE_READING.name)
    assert accepted == Counter(good)  # each good line in exactly one accepted request, no poison
    where = f"time >= {ts}ms AND time < {ts + 1000}ms AND site = '{SITE}'"
    assert count(influx, f"SELECT count(net_kg) FROM {m.WASTE_READING.name} WHERE {where}") == 36
    assert (
        count(
            influx,
            f"SELECT sum(entries) FROM {m.QUARANTINE.name} WHERE code = 'write_rejected' "
            f"AND worker = '{WORKER}'",
        )
        == 4
    )


def test_a_batch_waits_for_influxdb_and_is_written_when_it_comes(
    tmp_path: Path, planner: BatchPlanner
) -> None:
    """Unreachable, then up without its user and database (401, 404: fatal, retried slowly),
    then ready: the batch is stored once it can be, and nothing is raised."""
    late = Influxd(tmp_path / "late")
    late.write_config()
    ts = day_start(7)
    try:
        with RecordingInflux(config_of(late)) as influx:
            c = committer(influx, planner)
            prepared = BatchEncoder(planner, WORKER).prepare([waste(ts, range(1, 11))])
            done: list[object] = []
            writer = threading.Thread(target=lambda: done.append(c.commit(prepared)))
            writer.start()
            wait_until(lambda: c.counters.write_errors >= 2, what="two failed attempts")
            late.start()
            writer.join(60)
            assert done and not writer.is_alive()
            assert len(influx.accepted) == 1
            where = f"time >= {ts}ms AND time < {ts + 1000}ms"
            assert (
                count(influx, f"SELECT count(net_kg) FROM {m.WASTE_READING.name} WHERE {where}")
                == 10
            )
    finally:
        late.stop()


def test_stopping_while_influxdb_is_down_leaves_the_batch_unwritten(planner: BatchPlanner) -> None:
    stop = threading.Event()
    down = InfluxConfig(url=f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with InfluxClient(down) as influx:
        c = committer(influx, planner, stop=stop, max_backoff_s=10.0)
        prepared = BatchEncoder(planner, WORKER).prepare([waste(day_start(9), range(1, 3))])
        raised: list[BaseException] = []

        def run() -> None:
            try:
                c.commit(prepared)
            except Stopped as exc:
                raised.append(exc)

        writer = threading.Thread(target=run)
        writer.start()
        wait_until(lambda: c.counters.write_errors >= 1, what="a failed attempt")
        stop.set()
        writer.join(5)
        assert not writer.is_alive() and len(raised) == 1
