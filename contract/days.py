"""The contract's Day: a calendar day in Asia/Shanghai, as an integer day number.

One definition for every side (edge, cloud, dashboards, simulators). Pure arithmetic, host-zone
independent and vectorizable: `day_number` works on ints and on numpy int64 arrays alike.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# China has kept UTC+8 without daylight saving since 1991; all contract timestamps are later.
SHANGHAI_OFFSET_MS = 8 * 3600 * 1000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
_EPOCH = dt.date(1970, 1, 1)

T = TypeVar("T", "int", "npt.NDArray[np.int64]")


def day_number(ts_ms: T) -> T:
    """Shanghai day number (days since 1970-01-01 in Shanghai) of epoch-ms timestamps."""
    return (ts_ms + SHANGHAI_OFFSET_MS) // DAY_MS


def day_start_ms(day: int) -> int:
    """Epoch ms of Shanghai midnight starting day number `day`."""
    return day * DAY_MS - SHANGHAI_OFFSET_MS


def date_of(day: int) -> dt.date:
    """Calendar date of a Shanghai day number."""
    return _EPOCH + dt.timedelta(days=int(day))


def number_of(date: dt.date) -> int:
    """Shanghai day number of a calendar date."""
    return (date - _EPOCH).days


def today() -> dt.date:
    """Today's date in Shanghai, whatever the host's zone."""
    return dt.datetime.now(SHANGHAI).date()


def local_hour(ts_ms: float) -> float:
    """Hour of day in Asia/Shanghai (UTC+8, no DST) of an epoch-ms time, as a float."""
    return ((ts_ms + SHANGHAI_OFFSET_MS) % DAY_MS) / HOUR_MS


def now_local() -> dt.datetime:
    """Shanghai wall-clock time now, naive, to the second (what a hut's devices show)."""
    return dt.datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0)
