"""Asia/Shanghai calendar days: defined once in `contract.days` (edge and cloud both use it), and
the InfluxQL time condition of a range of them (`days_where`)."""

import datetime as dt

from contract.days import (
    DAY_MS,
    SHANGHAI,
    SHANGHAI_OFFSET_MS,
    date_of,
    day_number,
    day_start_ms,
    number_of,
    today,
)

__all__ = [
    "DAY_MS",
    "SHANGHAI",
    "SHANGHAI_OFFSET_MS",
    "date_of",
    "day_number",
    "day_start_ms",
    "days_where",
    "number_of",
    "today",
]


def days_where(start: dt.date, end: dt.date) -> str:
    """The InfluxQL time condition of the Shanghai days start..end (inclusive):
    `time >= <start's midnight>ms AND time < <the midnight after end>ms`."""
    return f"time >= {day_start_ms(number_of(start))}ms AND time < {day_start_ms(number_of(end) + 1)}ms"
