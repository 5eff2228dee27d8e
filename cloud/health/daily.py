"""Daily hut statistics from stored measurements to the `health_daily` measurement (dashboards, API).

Recomputing a day writes the same points again, so any number of aggregators may run it.
"""

from __future__ import annotations

from collections.abc import Iterable

from cloud.days import DAY_MS, day_start_ms, number_of
from cloud.health.stats import HutDay, StatRow, daily_stats
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
    for s in influx.query_chunks(q):
        device = s.tags.get("device", "")
        for t, seq, resident, abnormal in s.values:
            if (device, int(seq)) in seen:
                continue
            seen.add((device, int(seq)))
            rows.append(StatRow(s.tags.get("site", ""), int(t), s.tags.get("type", ""), resident, bool(abnormal)))
    return rows


def daily_lines(day: HutDay) -> list[str]:
    """One point for the whole hut (type "all") and one per measurement type."""
    time_ns = day_start_ms(number_of(day.date)) * 1_000_000
    total: dict[str, FieldValue | None] = {
        "visits": day.visits,
        "measurements": day.measurements,
        "anonymous": day.anonymous,
        "abnormal": day.abnormal,
        "abnormal_rate": day.abnormal_rate,
    }
    out = [line(HEALTH_DAILY.name, {"site": day.site, "type": ALL_TYPES}, total, time_ns)]
    for type_, n in day.by_type.items():
        bad = day.abnormal_by_type.get(type_, 0)
        fields: dict[str, FieldValue | None] = {"measurements": n, "abnormal": bad, "abnormal_rate": bad / n}
        out.append(line(HEALTH_DAILY.name, {"site": day.site, "type": type_}, fields, time_ns))
    return out


def recompute_health_days(influx: InfluxClient, days: Iterable[int]) -> list[HutDay]:
    """Recompute and write `health_daily` for these Shanghai day numbers; return the hut-days."""
    result: list[HutDay] = []
    for day in sorted(set(days)):
        stats = daily_stats(read_day(influx, day))
        lines = [x for d in stats for x in daily_lines(d)]
        if lines:
            influx.write_lines(("\n".join(lines) + "\n").encode())
        result.extend(stats)
    return result

