"""Re-ingest dead letters whose cause was the registry (a station or scale not yet registered).

A reading that arrived as `unknown_site` / `unknown_device` shortly before its station or scale
was registered is in the quarantine with its contract fields intact (cloud/redact.py keeps ids,
seq, ts, kilograms and a valid pseudonym). `messages_from` rebuilds a v1 message from each such
dead letter (an entry dead letter is wrapped in its site's envelope; a whole-payload one is used
as kept, if it was kept whole); `replay` plans them with the registry now in force, exactly as a
worker does (`BatchPlanner`), and writes the accepted readings with their day markers, so the
aggregator recomputes their days. A reading's point is keyed by its identity `(device, seq)`
(series and time), so replaying twice, or a dead letter stored twice, still counts it once.
What is still refused is reported, not quarantined again (it is there already).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from cloud.influx import InfluxClient
from cloud.ingest.handler import BatchPlanner, Message, day_marker_lines
from cloud.lineproto import join_lines
from cloud.quarantine import DeadLetter
from contract.errors import ContractError
from contract.models import WASTE_SCHEMA
from contract.topics import parse

REPLAYABLE = ("unknown_site", "unknown_device")  # causes a registry change can remove


@dataclass
class ReplayResult:
    """What a replay did: readings written, entries still refused (by code), letters not usable."""

    written: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    unusable: list[str] = field(default_factory=list)


def messages_from(letters: Iterable[DeadLetter]) -> tuple[list[Message], list[str]]:
    """v1 waste messages rebuilt from dead letters, and one line per letter that cannot be used."""
    out: list[Message] = []
    unusable: list[str] = []
    for d in letters:
        where = f"{d.time.isoformat(timespec='milliseconds')} {d.site} {d.code}"
        try:
            topic = parse(d.topic)
            doc = json.loads(d.payload)
        except (ContractError, ValueError):
            unusable.append(f"{where}: topic or payload not kept whole")
            continue
        if topic.kind != "waste" or topic.channel != "readings" or not isinstance(doc, dict):
            unusable.append(f"{where}: not a waste readings message")
            continue
        if "readings" not in doc:  # one entry of a batch
            doc = {"schema": WASTE_SCHEMA, "site": topic.site, "readings": [doc]}
        out.append(Message(d.topic, json.dumps(doc).encode()))
    return out, unusable


def replay(
    writer: InfluxClient,
    planner: BatchPlanner,
    letters: Iterable[DeadLetter],
    dry_run: bool = False,
) -> ReplayResult:
    """Plan the letters' messages with today's registry and write what is now accepted."""
    messages, unusable = messages_from(letters)
    result = ReplayResult(unusable=unusable)
    if not messages:
        return result
    plan = planner.plan_batch(messages)
    result.refused.update(q.code for q in plan.quarantine for _ in range(max(q.entries, 1)))
    result.written = plan.readings
    if plan.lines and not dry_run:
        writer.write_lines(join_lines(plan.lines + day_marker_lines(plan.days, time.time_ns())))
    return result
