"""Asia/Shanghai calendar days: defined once in `contract.days` (edge and cloud both use it)."""

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
    "number_of",
    "today",
]
