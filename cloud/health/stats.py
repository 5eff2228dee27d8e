"""Daily aggregate statistics per health hut (Asia/Shanghai days), as pure functions."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from cloud.days import date_of, day_number


@dataclass(frozen=True, slots=True)
class StatRow:
    """What the statistics need of one stored measurement (no values, no identity beyond the pseudonym)."""

    site: str
    ts: int
    type: str
    resident: str | None
    abnormal: bool


@dataclass(slots=True)
class HutDay:
    """One hut's day: visits (distinct residents), measurements by type, abnormal count and rate."""

    date: dt.date
    site: str
    visits: int = 0
    measurements: int = 0
    anonymous: int = 0  # measurements taken without a card tap
    abnormal: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    abnormal_by_type: dict[str, int] = field(default_factory=dict)
    # distinct residents per type; measurements without a card count as one more (at least one person)
    residents_by_type: dict[str, int] = field(default_factory=dict)

    @property
    def residents(self) -> int:
        """Distinct residents of the whole hut-day, anonymous measurements counted as one more."""
        return self.visits + (1 if self.anonymous else 0)

    @property
    def abnormal_rate(self) -> float:
        """Abnormal measurements / measurements (0.0 on an empty day)."""
        return self.abnormal / self.measurements if self.measurements else 0.0


def daily_stats(rows: Iterable[StatRow]) -> list[HutDay]:
    """Aggregate rows into one HutDay per (Shanghai date, site), sorted by date then site."""
    residents: dict[tuple[int, str], set[str]] = defaultdict(set)
    counts: dict[tuple[int, str], Counter[str]] = defaultdict(Counter)
    abnormal: dict[tuple[int, str], Counter[str]] = defaultdict(Counter)
    anonymous: Counter[tuple[int, str]] = Counter()
    people: dict[tuple[int, str], dict[str, set[str | None]]] = defaultdict(
        lambda: defaultdict(set)
    )
    for row in rows:
        key = (day_number(row.ts), row.site)
        counts[key][row.type] += 1
        people[key][row.type].add(row.resident)  # None: the anonymous ones, counted as one person
        if row.abnormal:
            abnormal[key][row.type] += 1
        if row.resident is None:
            anonymous[key] += 1
        else:
            residents[key].add(row.resident)
    out = []
    for key in sorted(counts):
        day, site = key
        by_type = dict(sorted(counts[key].items()))
        bad = dict(sorted(abnormal[key].items()))
        out.append(
            HutDay(
                date_of(day),
                site,
                len(residents[key]),
                sum(by_type.values()),
                anonymous[key],
                sum(bad.values()),
                by_type,
                bad,
                {t: len(people[key][t]) for t in by_type},
            )
        )
    return out
