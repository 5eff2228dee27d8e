"""cloud.days.days_where: the InfluxQL time condition of a range of Shanghai days (pure)."""

from __future__ import annotations

import datetime as dt

from cloud.days import DAY_MS, day_start_ms, days_where, number_of


def test_the_range_runs_from_the_first_days_shanghai_midnight_to_the_midnight_after_the_last() -> (
    None
):
    # 2025-11-27 00:00 Asia/Shanghai is 2025-11-26 16:00 UTC
    first = 1_764_172_800_000
    assert days_where(dt.date(2025, 11, 27), dt.date(2025, 11, 28)) == (
        f"time >= {first}ms AND time < {first + 2 * DAY_MS}ms"
    )


def test_one_day_is_its_midnight_to_the_next() -> None:
    day = dt.date(1970, 1, 1)
    lo = day_start_ms(number_of(day))
    assert lo == -8 * 3_600_000
    assert days_where(day, day) == f"time >= {lo}ms AND time < {lo + DAY_MS}ms"
