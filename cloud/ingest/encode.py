"""A batch of messages made ready to write: planned, dead letters bounded, encoded as request bodies.

No network. The planner thread prepares batch n+1 here while the committer writes batch n.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cloud.ingest.handler import (
    BatchPlanner,
    Message,
    Plan,
    QuarantineRecord,
    day_marker_lines,
    quarantine_lines,
)
from cloud.lineproto import join_lines
from cloud.quarantine import DeadLetterBudget, split_health


@dataclass(frozen=True)
class Prepared:
    """A decoded batch with its InfluxDB bodies, waiting for the committer."""

    messages: list[Message]
    plan: Plan
    body: bytes
    health_body: bytes  # per-resident lines and health dead letters: empty for a waste-only batch
    started: float  # time.perf_counter() when preparing began (the batch latency counts from it)


def dead_letter_lines(
    records: list[QuarantineRecord], worker: str, now_ns: int
) -> tuple[list[str], list[str]]:
    """Dead-letter lines for the main and the health database (cloud.quarantine.split_health)."""
    if not any(r.kind == "health" for r in records):
        return quarantine_lines(records, worker, now_ns), []
    main, health = split_health(records)
    return quarantine_lines(main, worker, now_ns), quarantine_lines(health, worker, now_ns)


def plan_bodies(plan: Plan, worker: str, now_ns: int) -> tuple[bytes, bytes]:
    """(main database body, health database body); day markers go last into the main one."""
    main, health = dead_letter_lines(plan.quarantine, worker, now_ns)
    return (
        join_lines(plan.lines + main + day_marker_lines(plan.days, now_ns)),
        join_lines(plan.health_lines + health),
    )


class BatchEncoder:
    """Plans a batch, folds a flood of dead letters (`DeadLetterBudget`) and encodes the bodies.

    Threading: one thread only (the planner thread); the budget it owns is not thread-safe.
    Messages from an earlier connection are prepared like any other (they are written, idempotent,
    but never acknowledged on this connection: the session decides that).
    """

    def __init__(
        self,
        planner: BatchPlanner,
        worker: str,
        budget: DeadLetterBudget | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.planner = planner
        self.worker = worker
        self._budget = budget or DeadLetterBudget()
        self._clock = clock
        self._wall_ns = wall_ns

    def prepare(self, messages: list[Message]) -> Prepared:
        """The batch planned and encoded; never raises for any input (BatchPlanner.plan_batch)."""
        started = time.perf_counter()
        plan = self.planner.plan_batch(messages)
        if plan.quarantine:  # a flood of junk from one site stays a trickle of points
            plan.quarantine = self._budget.admit(plan.quarantine, self._clock())
        return Prepared(messages, plan, *plan_bodies(plan, self.worker, self._wall_ns()), started)
