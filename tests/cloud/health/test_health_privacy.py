"""Health data behind least privilege: per-service InfluxDB grants on the real influxd, small-cell
suppression (pure), and the one-command migration of an existing deployment."""

from __future__ import annotations

import datetime as dt

import pytest

from cloud import measurements as m
from cloud.days import day_start_ms, number_of
from cloud.health.daily import daily_lines, hidden_cells, recompute_health_days
from cloud.health.stats import StatRow, daily_stats
from cloud.health.suppress import Cell, suppress_group
from cloud.influx import FatalInfluxError, InfluxClient
from cloud.influx_grants import GRANTS, grant_table
from cloud.lineproto import line
from devstack.stack import LocalStack
from tests.support.common import PROJECT, gumei

# -- suppression, plain data ---------------------------------------------------------------


def test_small_cells_and_their_complement_are_hidden() -> None:
    parts = {
        "blood_pressure": Cell(8, 9),
        "blood_glucose": Cell(2, 2),
        "body_temperature": Cell(6, 6),
        "pulse_oximetry": Cell(7, 7),
    }
    hide_total, hidden = suppress_group(Cell(12, 24), parts, k=5)
    # glucose (2 residents) alone would be total - the rest: the next smallest (temperature, 6) goes too
    assert not hide_total and hidden == {"blood_glucose", "body_temperature"}


def test_two_small_cells_need_no_complement_and_ties_break_on_size_then_name() -> None:
    assert suppress_group(
        Cell(20, 30), {"a": Cell(3, 3), "b": Cell(4, 4), "c": Cell(9, 23)}, 5
    ) == (False, {"a", "b"})
    assert suppress_group(
        Cell(20, 30), {"a": Cell(1, 1), "b": Cell(9, 20), "c": Cell(9, 9)}, 5
    ) == (False, {"a", "c"})


def test_a_small_total_hides_everything_and_big_cells_show() -> None:
    assert suppress_group(Cell(4, 30), {"a": Cell(4, 20), "b": Cell(2, 10)}, 5) == (
        True,
        {"a", "b"},
    )
    assert suppress_group(Cell(9, 30), {"a": Cell(5, 20), "b": Cell(9, 10)}, 5) == (False, set())
    assert suppress_group(Cell(3, 3), {"a": Cell(3, 3)}, 5) == (True, {"a"})
    assert suppress_group(Cell(3, 3), {"a": Cell(3, 3)}, 1) == (False, set())


DAY = number_of(dt.date(2024, 3, 5))


def _rows(site: str = "HH-01") -> list[StatRow]:
    """Six residents measure blood pressure, one of them glucose too; one walk-in, no card."""
    t = day_start_ms(DAY) + 3_600_000
    rows = [StatRow(site, t + i, "blood_pressure", f"r-{i:032x}", i == 0) for i in range(6)]
    rows.append(StatRow(site, t + 10, "blood_glucose", f"r-{0:032x}", True))
    rows.append(StatRow(site, t + 11, "body_temperature", None, False))
    return rows


def test_hut_day_cells_count_distinct_residents_and_the_walk_in_as_one() -> None:
    (day,) = daily_stats(_rows())
    assert day.residents == 7 and day.residents_by_type == {
        "blood_glucose": 1,
        "blood_pressure": 6,
        "body_temperature": 1,
    }
    assert hidden_cells(day, 5) == (False, {"blood_glucose", "body_temperature"})
    # one hidden only (glucose 1; pressure 6, temperature 7): the next smallest, pressure, goes too
    rows = [
        *_rows(),
        *[
            StatRow("HH-01", day_start_ms(DAY) + 20 + i, "body_temperature", f"r-{i:032x}", False)
            for i in range(6)
        ],
    ]
    (day,) = daily_stats(rows)
    assert hidden_cells(day, 5) == (False, {"blood_glucose", "blood_pressure"})
    shown = "\n".join(daily_lines(day, 5))
    assert (
        "type=blood_glucose suppressed=true " in shown
        and "type=blood_pressure suppressed=true " in shown
    )
    assert "type=body_temperature measurements=7i,abnormal=0i" in shown
    assert "suppressed=true" not in "\n".join(daily_lines(day))  # exact copy: nothing hidden


# -- grants on the real influxd -------------------------------------------------------------


def test_the_grants_table_is_least_privilege() -> None:
    grants = grant_table("gumei", "gumei_health", "gumei_records")
    table = {(g.service, g.database): g.privilege for g in grants}
    assert table == {
        ("ingest", "gumei"): "WRITE",
        ("ingest", "gumei_health"): "WRITE",
        ("aggregate", "gumei"): "ALL",
        ("aggregate", "gumei_health"): "ALL",
        ("aggregate", "gumei_records"): "READ",
        ("api", "gumei"): "READ",  # never writes the tonnage it serves
        ("api", "gumei_health"): "ALL",  # follow-up actions (contacted, closed)
        ("api", "gumei_records"): "ALL",  # inspections
        ("grafana", "gumei"): "READ",
        ("grafana", "gumei_records"): "READ",
        ("ops", "gumei"): "READ",
        ("ops", "gumei_records"): "ALL",
    }
    assert "health" not in GRANTS["grafana"]


@pytest.fixture(scope="module")
def seeded(stack: LocalStack, influx: InfluxClient) -> int:
    """One health point and one dead letter in the health database (as the ingestion user)."""
    t = (day_start_ms(number_of(dt.date(2024, 4, 2))) + 3_600_000) * 1_000_000
    with InfluxClient(stack.influx_config("ingest")) as ingest:
        ingest.write_lines(
            (
                line(
                    m.HEALTH_MEASUREMENT.name,
                    {"site": "HH-01", "device": "HH-01-BP", "type": "blood_pressure"},
                    {
                        "seq": 1,
                        "resident": "r-" + "a" * 32,
                        "abnormal": True,
                        "flag": "high",
                        "systolic_mmhg": 151.0,
                    },
                    t,
                )
                + "\n"
            ).encode(),
            db=ingest.health_db,
        )
        ingest.write_lines(
            b"waste_reading,site=WS-0101,area=A01,device=WS-0101-S1,category=dry net_kg=1.0,seq=1i "
            + str(t).encode()
            + b"\n"
        )
        ingest.execute(
            f"DELETE FROM {m.QUARANTINE.name} WHERE time < 0s", db=ingest.health_db
        )  # pruning needs WRITE only
        with pytest.raises(FatalInfluxError, match="not authorized"):
            ingest.query(f"SELECT * FROM {m.HEALTH_MEASUREMENT.name}", db=ingest.health_db)
    return t


def test_grafana_can_neither_read_health_data_nor_write(stack: LocalStack, seeded: int) -> None:
    with InfluxClient(stack.influx_config("grafana")) as grafana:
        for q in (
            f"SELECT * FROM {m.HEALTH_MEASUREMENT.name}",
            f"SELECT * FROM {m.QUARANTINE.name}",
            f"SELECT * FROM {m.HEALTH_DAILY.name}",
            "SHOW MEASUREMENTS",
        ):
            with pytest.raises(FatalInfluxError, match="not authorized"):
                grafana.query(q, db=grafana.health_db)
        assert (
            grafana.query(f"SELECT * FROM {m.HEALTH_MEASUREMENT.name}") == []
        )  # the main database holds none
        for db in (None, grafana.health_db):
            with pytest.raises(FatalInfluxError, match="not authorized"):
                grafana.write_lines(b"x v=1\n", db=db)
        with pytest.raises(FatalInfluxError, match="not authorized|requires admin"):
            grafana.execute("DROP MEASUREMENT waste_reading")
        assert grafana.query(
            "SELECT count(net_kg) FROM waste_reading"
        )  # what it is for: non-personal data


def test_each_service_works_with_its_own_grants(stack: LocalStack, seeded: int) -> None:
    with InfluxClient(stack.influx_config("api")) as api:
        assert api.query(
            f"SELECT count(seq) FROM {m.HEALTH_MEASUREMENT.name}", db=api.health_db
        )  # health routes read
        # the inspectors' records: the API writes the records database, never the main one
        line = (
            f"{m.INSPECTION.name},place_type=residential,place_kind=area,place=A01,area=A01 "
            f'id="i-{"0" * 20}",score=95i,passed=true {seeded}\n'.encode()
        )
        api.write_lines(line, db=api.records_db)
        with pytest.raises(FatalInfluxError, match="not authorized"):
            api.write_lines(b"waste_reading,site=WS-0101 net_kg=999.0 1\n")
    with InfluxClient(stack.influx_config("aggregate")) as agg:
        days = recompute_health_days(agg, [number_of(dt.date(2024, 4, 2))], k=5)
        assert [d.measurements for d in days] == [1]
        exact = agg.query(
            f"SELECT visits, suppressed FROM {m.HEALTH_DAILY.name} WHERE type = 'all'",
            db=agg.health_db,
        )
        shown = agg.query(
            f"SELECT visits, suppressed FROM {m.HEALTH_DAILY.name} WHERE type = 'all' AND site = 'HH-01' "
            f"AND time = {day_start_ms(number_of(dt.date(2024, 4, 2)))}ms"
        )
        assert any(v[1:] == [1, False] for s in exact for v in s.values)
        assert [v[1:] for s in shown for v in s.values] == [
            [None, True]
        ]  # one resident: suppressed for operators


# -- migration of an existing deployment ----------------------------------------------------


def test_migrate_health_moves_points_once_and_recomputes(
    stack: LocalStack, influx: InfluxClient, cloud_config
) -> None:
    day = number_of(dt.date(2023, 9, 14))
    t0 = (day_start_ms(day) + 7_200_000) * 1_000_000
    old = [
        line(
            m.HEALTH_MEASUREMENT.name,
            {"site": "HH-01", "device": "HH-01-BP", "type": "blood_pressure"},
            {
                "seq": 100 + i,
                "resident": f"r-{i:032x}",
                "abnormal": i == 0,
                "flag": "x",
                "systolic_mmhg": 120.0 + i,
            },
            t0 + i,
        )
        for i in range(7)
    ]
    old.append(
        line(
            m.HEALTH_DAILY.name,
            {"site": "HH-01", "type": "blood_glucose"},
            {"measurements": 1, "abnormal": 1},
            day_start_ms(day) * 1_000_000,
        )
    )
    old.append(
        line(
            m.QUARANTINE.name,
            {"site": "HH-01", "kind": "health", "code": "implausible", "worker": "ingest-1"},
            {
                "reason": "systolic 400",
                "topic": "gumei/v1/health/HH-01/measurements",
                "payload": '{"resident":"r-x"}',
                "entries": 1,
            },
            t0,
        )
    )
    influx.write_lines(
        ("\n".join(old) + "\n").encode()
    )  # as an old deployment stored them: the main database
    out = gumei(
        "influx", "migrate-health", "--config", str(cloud_config), env=stack.admin_env()
    ).stdout
    assert (
        "before: health_measurement gumei=" in out and "after: health_measurement gumei=0 " in out
    )
    assert influx.query(f"SELECT * FROM {m.HEALTH_MEASUREMENT.name}") == []
    moved = influx.query(
        f"SELECT count(seq) FROM {m.HEALTH_MEASUREMENT.name} WHERE time >= {t0} AND time < {t0 + 10}",
        db=influx.health_db,
    )
    assert moved[0].values[0][1] == 7
    types = influx.query(
        f"SELECT * FROM {m.HEALTH_MEASUREMENT.name} WHERE seq = 100", db=influx.health_db
    )
    assert types[0].values[0][types[0].columns.index("abnormal")] is True  # field types kept
    letters = influx.query(
        f"SELECT payload, reason FROM {m.QUARANTINE.name} WHERE kind = 'health' AND time = {t0}"
    )
    assert letters[0].values[0][1:] == [
        "",
        "health dead letter: details in the health database (health role)",
    ]
    assert influx.query(
        f"SELECT count(entries) FROM {m.QUARANTINE.name} WHERE kind = 'health' AND payload != ''",
        db=influx.health_db,
    )
    # the old exact glucose cell is gone from the main database; the day is recomputed there, suppressed
    daily = influx.query(
        f"SELECT * FROM {m.HEALTH_DAILY.name} WHERE time = {day_start_ms(day)}ms GROUP BY type"
    )
    assert {s.tags["type"] for s in daily} == {"all", "blood_pressure"}
    again = gumei(
        "influx", "migrate-health", "--config", str(cloud_config), env=stack.admin_env()
    ).stdout
    before, after = again.splitlines()[:2]
    assert before.replace("before:", "") == after.replace(
        "after:", ""
    )  # idempotent: nothing left to move
    assert (
        influx.query(
            f"SELECT count(seq) FROM {m.HEALTH_MEASUREMENT.name} WHERE time >= {t0} AND time < {t0 + 10}",
            db=influx.health_db,
        )[0].values[0][1]
        == 7
    )


def test_grants_print_emits_the_tested_statements(cloud_config) -> None:
    out = gumei("influx", "grants", "--print", "--config", str(cloud_config)).stdout
    assert 'GRANT READ ON "gumei" TO "gumei_grafana";' in out
    assert 'TO "gumei_grafana"' in out and 'ON "gumei_health" TO "gumei_grafana"' not in out
    assert 'GRANT WRITE ON "gumei_health" TO "gumei_ingest";' in out


def test_production_never_falls_back_to_the_admin_user() -> None:
    """A production config without a service's own section refuses to start that service (one
    line), instead of quietly running it with the administrator's all-privileges user."""
    from cloud.settings import CloudSettings, SettingsError

    base = {
        "environment": "production",
        "mqtt": {"ca_file": "/etc/gumei/ca.crt"},
        "influx": {
            "auth": "basic",
            "username": "admin",
            "password": "x",
            "api": {"username": "gumei_api", "password": "y"},
        },
    }
    s = CloudSettings.model_validate(base)
    assert s.influx_config("api").username == "gumei_api"
    with pytest.raises(SettingsError, match=r"production needs \[influx.grafana\]"):
        s.influx_config("grafana")
    dev = CloudSettings.model_validate({**base, "environment": "development"})
    assert (
        dev.influx_config("grafana").username == "admin"
    )  # development: the fall-back of an upgrade


def test_the_credentials_table_in_security_md_is_the_generated_grants() -> None:
    """docs/security.md says who can read and write which database; it must be what the one grants
    table deploys (a grant changed without the doc, or the doc without the grant, fails here)."""
    import re

    from cloud.influx_grants import DEFAULT_USERS, SERVICES, grant_table

    doc = (PROJECT / "docs" / "security.md").read_text()
    section = doc.split("## Credentials and what they can do", 1)[1].split("\n## ", 1)[0]
    dbs = ("gumei", "gumei_health", "gumei_records")

    def named(cell: str) -> set[str]:
        return {d for d in re.findall(r"`([a-z_]+)`", cell.split("(")[0]) if d in dbs}

    said: dict[str, tuple[set[str], set[str]]] = {}
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        m = re.match(r"`(gumei_\w+)`", cells[0]) if len(cells) == 5 else None
        if m:
            said[m.group(1)] = (named(cells[2]), named(cells[3]))
    deployed: dict[str, tuple[set[str], set[str]]] = {
        DEFAULT_USERS[s]: (set(), set()) for s in SERVICES
    }
    for g in grant_table(*dbs):
        if g.privilege in ("READ", "ALL"):
            deployed[g.username][0].add(g.database)
        if g.privilege in ("WRITE", "ALL"):
            deployed[g.username][1].add(g.database)
    assert said == deployed
