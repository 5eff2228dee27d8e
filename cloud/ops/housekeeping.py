"""Pruning what the operations evaluator and deliverer keep, so no measurement grows forever.

Each DELETE is idempotent (any number of evaluators may run it) and removes only what no pass
reads any more:

- `ops_event`: per (rule, subject), the points before the oldest episode still kept (active, or
  resolved within `keep_events_ms`, default 90 days; the latest episode is always kept);
- `ops_observed`: states older than the silence horizon (14 days) plus a day;
- `ops_profile`: profiles learned more than 2 days ago (one a day is read);
- `ops_delivery`: attempts older than the delivery horizon (7 days) plus 2 days;
- `ops_state`: watermarks older than 7 days.
"""

from __future__ import annotations

from cloud import measurements as m
from cloud.days import DAY_MS
from cloud.influx import InfluxClient, quote
from cloud.ops.delivery import HORIZON_MS
from cloud.ops.inputs import SILENCE_HORIZON_MS
from cloud.ops.lifecycle import Event
from cloud.ops.store import Key

KEEP_EVENTS_MS = 90 * DAY_MS


def event_cutoffs(
    episodes: dict[Key, list[Event]], now_ms: int, keep_ms: int = KEEP_EVENTS_MS
) -> dict[Key, int]:
    """Per (rule, subject), the time before which its points may go (pure): the opening of its
    oldest kept episode; series with nothing to prune are left out."""
    out = {}
    for key, eps in episodes.items():
        kept = [
            e
            for e in eps[:-1]
            if e.active or (e.resolved_ms is not None and e.resolved_ms >= now_ms - keep_ms)
        ]
        first_kept = kept[0] if kept else eps[-1]
        if first_kept is not eps[0]:
            out[key] = first_kept.opened_ms
    return out


def prune(
    influx: InfluxClient,
    episodes: dict[Key, list[Event]],
    now_ms: int,
    keep_events_ms: int = KEEP_EVENTS_MS,
) -> int:
    """Run the deletions; returns how many event series were pruned."""
    cutoffs = event_cutoffs(episodes, now_ms, keep_events_ms)
    statements = [
        f'DELETE FROM "{m.OPS_EVENT.name}" WHERE "rule" = {quote(r)} AND "subject" = {quote(s)} '
        f"AND time < {cutoff}ms"
        for (r, s), cutoff in cutoffs.items()
    ]
    statements += [
        f'DELETE FROM "{m.OPS_OBSERVED.name}" WHERE time < {now_ms - SILENCE_HORIZON_MS - DAY_MS}ms',
        f'DELETE FROM "{m.OPS_PROFILE.name}" WHERE time < {now_ms - 2 * DAY_MS}ms',
        f'DELETE FROM "{m.OPS_DELIVERY.name}" WHERE time < {now_ms - HORIZON_MS - 2 * DAY_MS}ms',
        f'DELETE FROM "{m.OPS_STATE.name}" WHERE time < {now_ms - 7 * DAY_MS}ms',
    ]
    for i in range(0, len(statements), 100):
        influx.execute(";".join(statements[i : i + 100]), db=influx.records_db)
    return len(cutoffs)
