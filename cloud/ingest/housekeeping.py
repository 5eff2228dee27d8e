"""The planner thread's periodic chores: when one is due (`Every`), and pruning old dead letters."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

from cloud.influx import InfluxClient, InfluxError
from cloud.quarantine import QuarantineStore

log = logging.getLogger(__name__)


class Every:
    """Due once per `interval_s` on a monotonic clock, counted from construction.

    Threading: one thread.
    """

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._last = clock()

    def due(self, now: float) -> bool:
        """True (and the interval starts again) when `interval_s` passed since the last time."""
        if now - self._last >= self.interval_s:
            self._last = now
            return True
        return False


def prune_quarantine(influx: InfluxClient, keep_days: float) -> None:
    """Delete dead letters older than `keep_days` from both databases; log a failure (idempotent:
    every worker prunes, the next hour tries again)."""
    try:
        keep = dt.timedelta(days=keep_days)
        QuarantineStore(influx).prune(keep)
        QuarantineStore(influx, influx.health_db).prune(keep)
    except InfluxError as exc:
        log.warning("could not prune the quarantine: %s", exc)
