"""InfluxDB 1.x users and grants, least privilege, from ONE table: used by the local stack (tests,
`gumei run`) and by `gumei influx grants` for a deployment, so the deployed grants are the tested ones.

Three databases: `database` (non-personal: waste, fleet, suppressed health aggregates),
`health_database` (per-resident health measurements, exact health aggregates, health dead letters,
the health staff's follow-up actions) and `records_database` (what people enter through the API
that is not per-resident: inspections), so the API, which must write those, cannot write the
tonnage and fleet data it serves.
On 2.x/3.x the same table maps to buckets and scoped tokens (docs/deploy.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from cloud.influx import FatalInfluxError, InfluxClient

Service = Literal["ingest", "aggregate", "api", "grafana", "ops"]
SERVICES: tuple[Service, ...] = ("ingest", "aggregate", "api", "grafana", "ops")
Privilege = Literal["READ", "WRITE", "ALL"]
MAIN, HEALTH, RECORDS = "main", "health", "records"

# Who may do what where. ALL on 1.x = READ + WRITE on that database (never cluster admin).
# ingest: WRITE both data databases (points, dead letters, the quarantine's age-based DELETE
# needs WRITE only); aggregate: reads raw data and writes aggregates in both, reads the records
# (targets from inspections); api: reads the main database (never writes it: a bug or a stolen
# token in the API cannot forge tonnage), reads and writes the health database (per-resident
# routes; the health staff's follow-up actions) and the records database (inspections, people's
# acknowledgements of operations events; 1.x grants are per database, not per measurement, hence
# a database of its own); grafana: reads the non-personal databases only, writes nothing;
# ops: the operations evaluator reads the main database and writes its ops_* measurements into
# the records database, never the health database (docs/operations.md).
GRANTS: dict[Service, dict[str, Privilege]] = {
    "ingest": {MAIN: "WRITE", HEALTH: "WRITE"},
    "aggregate": {MAIN: "ALL", HEALTH: "ALL", RECORDS: "READ"},
    "api": {MAIN: "READ", HEALTH: "ALL", RECORDS: "ALL"},
    "grafana": {MAIN: "READ", RECORDS: "READ"},
    "ops": {MAIN: "READ", RECORDS: "ALL"},
}
DEFAULT_USERS: dict[Service, str] = {s: f"gumei_{s}" for s in SERVICES}


@dataclass(frozen=True)
class Grant:
    """One privilege of one user on one database."""

    service: Service
    username: str
    database: str
    privilege: Privilege


def grant_table(
    database: str,
    health_database: str,
    records_database: str,
    users: Mapping[Service, str] | None = None,
) -> list[Grant]:
    """The grants as rows (for docs, tests and the statements)."""
    names = {**DEFAULT_USERS, **(users or {})}
    dbs = {MAIN: database, HEALTH: health_database, RECORDS: records_database}
    return [
        Grant(s, names[s], dbs[where], priv) for s in SERVICES for where, priv in GRANTS[s].items()
    ]


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def statements(
    database: str,
    health_database: str,
    records_database: str,
    credentials: Mapping[Service, tuple[str, str]],
) -> list[str]:
    """InfluxQL that creates the databases and every service user (name, password) with exactly
    its grants; re-running it resets passwords and privileges to the table (idempotent)."""
    dbs = (database, health_database, records_database)
    out = [f"CREATE DATABASE {_ident(db)}" for db in dbs]
    users = {s: credentials[s][0] for s in SERVICES}
    by_user: dict[str, list[Grant]] = {}
    for g in grant_table(database, health_database, records_database, users):
        by_user.setdefault(g.username, []).append(g)
    for service in SERVICES:
        name, password = credentials[service]
        out += [
            f"CREATE USER {_ident(name)} WITH PASSWORD {_literal(password)}",
            f"SET PASSWORD FOR {_ident(name)} = {_literal(password)}",
            f"REVOKE ALL PRIVILEGES FROM {_ident(name)}",
            *(f"REVOKE ALL ON {_ident(db)} FROM {_ident(name)}" for db in dbs),
        ]
        out += [
            f"GRANT {g.privilege} ON {_ident(g.database)} TO {_ident(name)}" for g in by_user[name]
        ]
    return out


def apply(admin: InfluxClient, stmts: list[str]) -> int:
    """Run the statements as an admin user; an existing user is fine (its password is SET next)."""
    for stmt in stmts:
        try:
            admin.execute(stmt)
        except FatalInfluxError as exc:
            if stmt.startswith("CREATE USER") and "already exists" in str(exc):
                continue
            raise
    return len(stmts)
