"""The operations evaluator: one pass reads the rules' inputs incrementally, runs the table, and
stores the changes it asks for; `loop` repeats it. Any number may run (docs/operations.md)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cloud import measurements as m
from cloud.influx import InfluxClient, InfluxError
from cloud.lineproto import line
from cloud.ops import store
from cloud.ops.housekeeping import prune
from cloud.ops.inputs import Cache, gather
from cloud.ops.lifecycle import STATE_AFTER, Change, Event, plan
from cloud.ops.rules import DAY_MS, RULES, Rule, Thresholds
from cloud.registry import Registry

log = logging.getLogger(__name__)

OVERLAP_MS = 5 * 60_000  # markers are re-read this far behind the watermark (late writes)
FIRST_LOOKBACK_MS = 2 * DAY_MS  # a first pass looks at the stations touched in the last 2 days


def wall_ms() -> int:
    """Now, in epoch milliseconds."""
    return time.time_ns() // 1_000_000


@dataclass
class PassResult:
    """What one pass did."""

    now_ms: int
    observed: int = 0  # scales whose fill state was read anew
    subjects: int = 0  # (rule, subject) pairs judged
    changes: list[Change] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def opened(self) -> list[Change]:
        return [c for c in self.changes if c.action == "open"]

    @property
    def resolved(self) -> list[Change]:
        return [c for c in self.changes if c.action == "resolve"]


def read_watermark(influx: InfluxClient) -> int | None:
    """Where the evaluators got to (epoch ms), None before the first pass."""
    q = f'SELECT last("watermark_ms") FROM "{m.OPS_STATE.name}"'
    for s in influx.query(q, db=influx.records_db):
        if s.values and s.values[0][1] is not None:
            return int(s.values[0][1])
    return None


class Evaluator:
    """Runs the rule table over InfluxDB. The clock is injected (epoch ms) for tests."""

    def __init__(
        self,
        influx: InfluxClient,
        registry: Registry,
        thresholds: Thresholds | None = None,
        clock: Callable[[], int] = wall_ms,
        rules: tuple[Rule, ...] = RULES,
    ) -> None:
        self.influx = influx
        self.registry = registry
        self.thresholds = thresholds or Thresholds()
        self.clock = clock
        self.rules = rules
        self.cache = Cache()
        self._last_ms: int | None = None  # this evaluator's own last pass (its markers' watermark)
        self._pruned_ms = 0

    def run_once(self) -> PassResult:
        """One pass: inputs since the watermark, every rule, the changes stored, the watermark moved."""
        t0 = time.perf_counter()
        now = self.clock()
        # Markers since this evaluator's own last pass (its cache saw everything before); on a
        # cold start since the stored watermark (any evaluator's), else the first lookback.
        last = self._last_ms if self._last_ms is not None else read_watermark(self.influx)
        since = now - FIRST_LOOKBACK_MS if last is None else min(last, now) - OVERLAP_MS
        inputs, observed = gather(
            self.influx, self.registry, since, now, self.thresholds, self.cache
        )
        episodes = store.read_episodes(self.influx)
        current = store.current(episodes)
        result = PassResult(now, observed)
        for rule in self.rules:
            if rule.evaluate is None:
                continue
            verdict = rule.evaluate(inputs, self.thresholds)
            if verdict is None:
                continue
            result.subjects += len(verdict.subjects)
            mine: dict[str, Event] = {s: ev for (r, s), ev in current.items() if r == rule.name}
            result.changes += plan(rule, verdict, mine, now)
        store.write_changes(self.influx, [(c, STATE_AFTER[c.action]) for c in result.changes])
        point = line(
            m.OPS_STATE.name,
            {},
            {"watermark_ms": now, "subjects": result.subjects},
            now * 1_000_000,
        )
        self.influx.write_lines((point + "\n").encode(), db=self.influx.records_db)
        self._last_ms = now
        if now - self._pruned_ms >= DAY_MS:  # once a day (and on start): idempotent deletions
            prune(self.influx, episodes, now)
            self._pruned_ms = now
        result.seconds = time.perf_counter() - t0
        return result

    def loop(
        self,
        interval_s: float,
        report: Callable[[PassResult], None],
        stop: Callable[[], bool] = lambda: False,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        """Run a pass every interval_s until stop(); a failed pass is logged and retried next time."""
        while not stop():
            try:
                report(self.run_once())
            except InfluxError as exc:  # InfluxDB down or refusing: the next pass retries
                log.warning("operations pass failed, will retry: %s", exc)
            sleep(interval_s)
