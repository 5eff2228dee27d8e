"""Tonnage helpers the aggregation tests share."""

from __future__ import annotations

from cloud.aggregate.tonnage import DailyTotals


def rows_of_totals(t: DailyTotals) -> dict[tuple[int, int, int], list[int]]:
    """{(day, site, category): [mg, deposits]} of daily_totals' result."""
    return {
        (d, s, c): [mg, n]
        for d, s, c, mg, n in zip(
            t.day.tolist(),
            t.site.tolist(),
            t.category.tolist(),
            t.net_mg.tolist(),
            t.deposits.tolist(),
            strict=True,
        )
    }
