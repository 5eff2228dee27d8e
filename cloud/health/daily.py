"""Daily hut statistics from stored measurements to the `health_daily` measurement (dashboards, API).

Exact figures go to the health database (health staff); a copy with small cells suppressed
(cloud/health/suppress.py) goes to the main database (operators, Grafana). Recomputing a day
deletes that day's points in both and writes them again, so any number of aggregators may run it.
"""

from __future__ import annotations

from collections.abc import Iterable

from cloud.days import DAY_MS, day_start_ms, number_of
from cloud.health.stats import HutDay, StatRow, daily_stats
from cloud.health.suppress import DEFAULT_K, Cell, suppress_group
from cloud.influx import InfluxClient
from cloud.lineproto import FieldValue, line
from cloud.measurements import HEALTH_DAILY, HEALTH_MEASUREMENT

ALL_TYPES = "all"


def read_day(influx: InfluxClient, day: int) -> list[StatRow]:
    """The stored measurements of one Shanghai day, deduplicated on (device, seq)."""
    start = day_start_ms(day)
    q = (
        f'SELECT "seq", "resident", "abnormal" FROM {HEALTH_MEASUREMENT.name} '
        f'WHERE time >= {start}ms AND time < {start + DAY_MS}ms GROUP BY "site", "device", "type"'
    )
    seen: set[tuple[str, int]] = set()
    rows = []
    for s in influx.query_chunks(q, db=influx.health_db):
        device = s.tags.get("device", "")
        for t, seq, resident, abnormal in s.values:
            if (device, int(seq)) in seen:
                continue
            seen.add((device, int(seq)))
            rows.append(
                StatRow(
                    s.tags.get("site", ""), int(t), s.tags.get("type", ""), resident, bool(abnormal)
                )
            )
    return rows


def hidden_cells(day: HutDay, k: int = DEFAULT_K) -> tuple[bool, set[str]]:
    """(hide the whole-hut cell, hidden types) of one hut-day at threshold k."""
    parts = {t: Cell(day.residents_by_type.get(t, 0), n) for t, n in day.by_type.items()}
    return suppress_group(Cell(day.residents, day.measurements), parts, k)


def daily_lines(day: HutDay, k: int | None = None) -> list[str]:
    """One point for the whole hut (type "all") and one per measurement type.

    k None: the exact figures (health database). k given: cells of fewer than k residents (and
    their complements) carry only `suppressed=true`, never a count (main database)."""
    time_ns = day_start_ms(number_of(day.date)) * 1_000_000
    hide_total, hidden = hidden_cells(day, k) if k is not None else (False, set())
    total: dict[str, FieldValue | None] = {
        "visits": day.visits,
        "measurements": day.measurements,
        "anonymous": day.anonymous,
        "abnormal": day.abnormal,
        "abnormal_rate": day.abnormal_rate,
        "suppressed": False,
    }
    hidden_fields: dict[str, FieldValue | None] = {"suppressed": True}
    out = [
        line(
            HEALTH_DAILY.name,
            {"site": day.site, "type": ALL_TYPES},
            hidden_fields if hide_total else total,
            time_ns,
        )
    ]
    for type_, n in day.by_type.items():
        bad = day.abnormal_by_type.get(type_, 0)
        fields: dict[str, FieldValue | None] = {
            "measurements": n,
            "abnormal": bad,
            "abnormal_rate": bad / n,
            "residents": day.residents_by_type.get(type_, 0),
            "suppressed": False,
        }
        out.append(
            line(
                HEALTH_DAILY.name,
                {"site": day.site, "type": type_},
                hidden_fields if type_ in hidden else fields,
                time_ns,
            )
        )
    return out


def recompute_health_days(
    influx: InfluxClient, days: Iterable[int], k: int = DEFAULT_K
) -> list[HutDay]:
    """Recompute `health_daily` for these Shanghai day numbers: exact into the health database,
    suppressed at k into the main one (each day's old points deleted first); return the hut-days."""
    result: list[HutDay] = []
    for day in sorted(set(days)):
        stats = daily_stats(read_day(influx, day))
        start = day_start_ms(day)
        window = f"time >= {start}ms AND time < {start + DAY_MS}ms"
        for db in (influx.health_db, None):  # a hut-day may have become suppressed, or lost a type
            influx.execute(f"DELETE FROM {HEALTH_DAILY.name} WHERE {window}", db=db)
        exact = [x for d in stats for x in daily_lines(d)]
        shown = [x for d in stats for x in daily_lines(d, k)]
        if exact:
            influx.write_lines(("\n".join(exact) + "\n").encode(), db=influx.health_db)
            influx.write_lines(("\n".join(shown) + "\n").encode())
        result.extend(stats)
    return result
