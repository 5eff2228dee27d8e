"""InfluxDB 1.x users and grants, least privilege, from ONE table: used by the local stack (tests,
`gumei run`) and by `gumei influx grants` for a deployment, so the deployed grants are the tested ones.

Two databases: `database` (non-personal: waste, fleet, suppressed health aggregates) and
`health_database` (per-resident health measurements, exact health aggregates, health dead letters).
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
MAIN, HEALTH = "main", "health"

# Who may do what where. ALL on 1.x = READ + WRITE on that database (never cluster admin).
# ingest: WRITE both (points, dead letters, the quarantine's age-based DELETE needs WRITE only);
# aggregate: reads raw data and writes aggregates in both; api: reads both (the health role's
# routes read per-resident data) and writes the health staff's follow-up actions (contacted,
# closed: `health_followup` events) into the health database; grafana: reads the non-personal database only, writes nothing;
# ops: the operations evaluator and the API's event routes read the main database and write its
# ops_* measurements (1.x grants are per database: docs/operations.md), never the health database.
GRANTS: dict[Service, dict[str, Privilege]] = {
    "ingest": {MAIN: "WRITE", HEALTH: "WRITE"},
    "aggregate": {MAIN: "ALL", HEALTH: "ALL"},
    "api": {MAIN: "READ", HEALTH: "ALL"},
    "grafana": {MAIN: "READ"},
    "ops": {MAIN: "ALL"},
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
    database: str, health_database: str, users: Mapping[Service, str] | None = None
) -> list[Grant]:
    """The grants as rows (for docs, tests and the statements)."""
    names = {**DEFAULT_USERS, **(users or {})}
    dbs = {MAIN: database, HEALTH: health_database}
    return [
        Grant(s, names[s], dbs[where], priv) for s in SERVICES for where, priv in GRANTS[s].items()
    ]


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def statements(
    database: str, health_database: str, credentials: Mapping[Service, tuple[str, str]]
) -> list[str]:
    """InfluxQL that creates both databases and every service user (name, password) with exactly
    its grants; re-running it resets passwords and privileges to the table (idempotent)."""
    out = [f"CREATE DATABASE {_ident(database)}", f"CREATE DATABASE {_ident(health_database)}"]
    users = {s: credentials[s][0] for s in SERVICES}
    by_user: dict[str, list[Grant]] = {}
    for g in grant_table(database, health_database, users):
        by_user.setdefault(g.username, []).append(g)
    for service in SERVICES:
        name, password = credentials[service]
        out += [
            f"CREATE USER {_ident(name)} WITH PASSWORD {_literal(password)}",
            f"SET PASSWORD FOR {_ident(name)} = {_literal(password)}",
            f"REVOKE ALL PRIVILEGES FROM {_ident(name)}",
            f"REVOKE ALL ON {_ident(database)} FROM {_ident(name)}",
            f"REVOKE ALL ON {_ident(health_database)} FROM {_ident(name)}",
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
