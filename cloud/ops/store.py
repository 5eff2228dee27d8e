"""Operations events in InfluxDB: the append-only log of changes (`ops_event`), read back and folded.

Each change is one point of the series (rule, subject), stamped with its millisecond plus a random
sub-millisecond part, so two writers never overwrite each other's point; its fields say the action,
the state after it (for Grafana), the episode's severity, audience and deadline, the rule's value,
who (`auto` or an API token id) and a note. Reading folds every series in time order
(cloud/ops/lifecycle.py), so duplicates written by several evaluators are no-ops.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from cloud import measurements as m
from cloud.influx import InfluxClient, quote
from cloud.lineproto import line
from cloud.ops.lifecycle import ACTIONS, Action, Change, Event, State, fold

Key = tuple[str, str]  # (rule, subject)
_FIELDS = ("action", "severity", "audience", "deadline_ms", "value", "by", "note")


def change_line(c: Change, state: State) -> str:
    """The point of one change; `state` is the event's state after it."""
    fields: dict[str, str | int | float] = {
        "action": c.action,
        "state": state,
        "severity": c.severity,
        "audience": c.audience,
        "deadline_ms": c.deadline_ms,
        "value": float(c.value),
        "by": c.by,
        "note": c.note[:500],
    }
    time_ns = c.at_ms * 1_000_000 + secrets.randbelow(1_000_000)
    return line(m.OPS_EVENT.name, {"rule": c.rule, "subject": c.subject}, fields, time_ns)


def write_changes(influx: InfluxClient, changes: Iterable[tuple[Change, State]]) -> int:
    """Store changes (each with the state it leads to); returns how many."""
    lines = [change_line(c, s) for c, s in changes]
    if lines:
        influx.write_lines(("\n".join(lines) + "\n").encode(), db=influx.records_db)
    return len(lines)


def read_episodes(
    influx: InfluxClient, rule: str | None = None, subject: str | None = None
) -> dict[Key, list[Event]]:
    """Every episode of every (rule, subject), or of one rule / subject, folded from the log."""
    where = []
    if rule is not None:
        where.append(f'"rule" = {quote(rule)}')
    if subject is not None:
        where.append(f'"subject" = {quote(subject)}')
    cond = f" WHERE {' AND '.join(where)}" if where else ""
    cols = ", ".join(f'"{f}"' for f in _FIELDS)
    out: dict[Key, list[Event]] = {}
    for s in influx.query(
        f'SELECT {cols} FROM "{m.OPS_EVENT.name}"{cond} GROUP BY "rule", "subject"',
        db=influx.records_db,
    ):
        r, subj = s.tags.get("rule", ""), s.tags.get("subject", "")
        idx = {c: i for i, c in enumerate(s.columns)}
        changes = []
        for v in s.values:
            action = v[idx["action"]]
            if action not in ACTIONS:
                continue  # not a change this version writes: ignored, never fatal
            act: Action = action
            changes.append(
                Change(
                    r,
                    subj,
                    act,
                    int(v[idx["time"]]),
                    str(v[idx["severity"]] or ""),
                    str(v[idx["audience"]] or ""),
                    int(v[idx["deadline_ms"]] or 0),
                    float(v[idx["value"]] or 0.0),
                    str(v[idx["by"]] or ""),
                    str(v[idx["note"]] or ""),
                )
            )
        episodes = fold(changes)
        if episodes:
            out[(r, subj)] = episodes
    return out


def current(episodes: dict[Key, list[Event]]) -> dict[Key, Event]:
    """The latest episode of each (rule, subject)."""
    return {k: v[-1] for k, v in episodes.items()}
