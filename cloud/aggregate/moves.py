"""A station moved to another area from a day on: the rows already stored for those days follow.

The registry keeps the site's earlier areas (`Site.area_history`), and the aggregator rolls each
day up with the areas of that day (`Aggregator.layout`). Days on or after the move that were
aggregated before it was recorded (typically today, or a move dated back) have rows stored
under the old area; `restate_after_move` removes the moved site's rows stored under the old
area for those days and marks the days dirty for the site and the old area's other stations,
so the aggregator's next run rewrites both areas' rows, exact as ever. Days before the move are
not touched. Idempotent: running it twice deletes nothing more and marks the same days.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter

from cloud import measurements as m
from cloud.days import day_start_ms, number_of, today
from cloud.influx import InfluxClient
from cloud.ingest.handler import day_marker_lines
from cloud.lineproto import join_lines
from cloud.registry import Registry


def _tag(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def restate_after_move(
    influx: InfluxClient,
    registry: Registry,
    site_id: str,
    old_area: str,
    since: dt.date,
    until: dt.date | None = None,
) -> int:
    """After `site_id` moved from `old_area` on `since` (registry: already moved), fix the stored
    days from `since` to `until` (default today, Shanghai); return how many days were marked."""
    last = until or today()
    if since > last:
        return 0  # a move from a future day: nothing stored yet
    start_ms = day_start_ms(number_of(since))
    influx.execute(
        f"DELETE FROM {m.WASTE_DAILY.name} WHERE site = {_tag(site_id)} "
        f"AND area = {_tag(old_area)} AND time >= {start_ms}ms"
    )
    others = [s.id for s in registry.sites if s.id != site_id and s.area_on(since) == old_area]
    if not others:  # the old area has no station left: its rows of those days go too
        influx.execute(
            f"DELETE FROM {m.WASTE_AREA_DAILY.name} WHERE area = {_tag(old_area)} "
            f"AND time >= {start_ms}ms"
        )
    days = range(number_of(since), number_of(last) + 1)
    marks: Counter[tuple[int, str]] = Counter({(d, s): 1 for d in days for s in [site_id, *others]})
    influx.write_lines(join_lines(day_marker_lines(marks, time.time_ns())))
    return len(days)
