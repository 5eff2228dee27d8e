"""Reference answers from ground truth, computed the plain way (no NumPy), for load-test checks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from cloud.days import date_of, day_number
from contract import WasteReading


def expected_daily(
    readings: Iterable[WasteReading], site_of: dict[str, str]
) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(date, site, category) -> (grams, deposits), deduplicated by (device, seq), one rounding per day."""
    seen: set[tuple[str, int]] = set()
    mg: dict[tuple[str, str, str], int] = defaultdict(int)
    n: dict[tuple[str, str, str], int] = defaultdict(int)
    for r in readings:
        if (r.device, r.seq) in seen:
            continue
        seen.add((r.device, r.seq))
        key = (date_of(day_number(r.ts)).isoformat(), site_of[r.device], r.category.value)
        mg[key] += round(r.net_kg * 1_000_000)
        n[key] += 1
    return {k: ((v + 500) // 1000, n[k]) for k, v in mg.items()}


def api_daily(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str], tuple[int, int]]:
    """The API's rows in the same shape: grams from tonnes (exact to the gram)."""
    out = {}
    for row in rows:
        grams = round(float(row["tonnes"]) * 1_000_000)
        out[(str(row["date"]), str(row["site"]), str(row["category"]))] = (
            grams,
            int(row["deposits"]),
        )
    return out


def compare(
    expected: dict[tuple[str, str, str], tuple[int, int]],
    actual: dict[tuple[str, str, str], tuple[int, int]],
) -> list[str]:
    """Differences as readable lines (empty when equal)."""
    problems = []
    for key in sorted(set(expected) | set(actual)):
        e, a = expected.get(key), actual.get(key)
        if e != a:
            problems.append(f"{key}: expected {e} (g, deposits), API says {a}")
    return problems
