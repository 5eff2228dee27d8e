"""One-command migration of an existing deployment: per-resident health data out of the main
database into the health database, then health_daily recomputed (exact there, suppressed here).

Idempotent: a second run finds nothing left to move and recomputes the same points.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud.days import day_number
from cloud.health.daily import recompute_health_days
from cloud.health.suppress import DEFAULT_K
from cloud.influx import FatalInfluxError, InfluxClient
from cloud.lineproto import line
from cloud.measurements import HEALTH_DAILY, HEALTH_MEASUREMENT, QUARANTINE
from cloud.quarantine import HEALTH_STUB_REASON

HEALTH_DEAD_LETTERS = "kind = 'health'"


@dataclass(frozen=True)
class Counts:
    """Points of health_measurement and health dead letters in each database."""

    main_measurements: int
    health_measurements: int
    main_dead_letters: int
    health_dead_letters: int


def counts(influx: InfluxClient) -> Counts:
    """Count what lies where (dead letters: those with a payload, not the stubs)."""

    def one(q: str, db: str | None) -> int:
        series = influx.query(q, db=db)
        return int(series[0].values[0][1]) if series and series[0].values else 0

    hm = f'SELECT count("seq") FROM {HEALTH_MEASUREMENT.name}'
    dl = f"SELECT count(\"entries\") FROM {QUARANTINE.name} WHERE {HEALTH_DEAD_LETTERS} AND payload != ''"
    return Counts(
        one(hm, None), one(hm, influx.health_db), one(dl, None), one(dl, influx.health_db)
    )


def _copy(influx: InfluxClient, measurement: str, where: str = "") -> None:
    """SELECT * INTO the health database, every tag kept as a tag (GROUP BY *), point times kept."""
    rp = f'"{influx.health_db}".."{measurement}"'
    influx.execute(f'SELECT * INTO {rp} FROM "{measurement}" {where} GROUP BY *')


def _day_span(influx: InfluxClient) -> range:
    """Shanghai day numbers from the first to the last stored measurement (health database)."""
    ends = []
    for fn in ("first", "last"):
        series = influx.query(
            f'SELECT {fn}("seq") FROM {HEALTH_MEASUREMENT.name}', db=influx.health_db
        )
        if series and series[0].values:
            ends.append(day_number(int(series[0].values[0][0])))
    return range(ends[0], ends[1] + 1) if len(ends) == 2 else range(0)


def migrate_health(influx: InfluxClient, k: int = DEFAULT_K) -> tuple[Counts, Counts, int]:
    """Move health points and health dead letters, drop them from the main database, recompute
    health_daily; returns (counts before, counts after, hut-days recomputed). Needs an admin client
    (or READ+WRITE on both databases)."""
    before = counts(influx)
    influx.execute(f'CREATE DATABASE "{influx.health_db}"')
    if before.main_measurements:
        _copy(influx, HEALTH_MEASUREMENT.name)
    if before.main_dead_letters:
        _copy(influx, QUARANTINE.name, f"WHERE {HEALTH_DEAD_LETTERS} AND payload != ''")
    moved = counts(influx)
    if moved.health_measurements < before.main_measurements:  # never drop what did not arrive
        raise FatalInfluxError(
            f"copied {moved.health_measurements} of {before.main_measurements} health points; nothing dropped"
        )
    if before.main_measurements:
        influx.execute(f"DROP MEASUREMENT {HEALTH_MEASUREMENT.name}")
    # old dead letters keep their tags and counts in the main database, without payload and reason
    if before.main_dead_letters:
        _strip_dead_letters(influx)
    influx.execute(f"DROP MEASUREMENT {HEALTH_DAILY.name}")  # exact figures: recomputed below
    days = recompute_health_days(influx, _day_span(influx), k)
    return before, counts(influx), len(days)


def _strip_dead_letters(influx: InfluxClient) -> None:
    """Replace the main database's health dead letters by stubs (same tags, entries and time to the
    millisecond, a nanosecond apart within a series so none overwrites another)."""
    q = f"SELECT entries, topic FROM {QUARANTINE.name} WHERE {HEALTH_DEAD_LETTERS} GROUP BY *"
    lines = []
    for s in influx.query(q):
        for i, (t, entries, topic) in enumerate(s.values):
            fields = {
                "reason": HEALTH_STUB_REASON,
                "topic": topic or "",
                "payload": "",
                "entries": int(entries or 1),
            }
            lines.append(line(QUARANTINE.name, s.tags, fields, int(t) * 1_000_000 + i))
    influx.execute(f"DELETE FROM {QUARANTINE.name} WHERE {HEALTH_DEAD_LETTERS}")
    if lines:
        influx.write_lines(("\n".join(lines) + "\n").encode())
