"""One simulated month at a hut, triaged (pure, no services): how many measurements per tier, how
many follow-ups the family-doctor team would get. `gumei health triage-month` prints it.

The residents and their readings are the simulator's (`residents.py`: hypertension and diabetes
likelier with age, some COPD, the odd fever); the tiers and follow-ups are the cloud's own
functions (`cloud/health/triage.py`, `worklist.raised_events`, `followups.fold`), so the figures
are what the pipeline would produce for the same readings.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from dataclasses import dataclass, field

from cloud.health.followups import fold
from cloud.health.triage import BP, TIERS, triage
from cloud.health.worklist import Reading, raised_events
from contract.days import day_start_ms, number_of
from contract.pseudonym import pseudonymize
from firmware_sim.health.instruments import INSTRUMENTS
from firmware_sim.health.residents import make_residents, measure

KEY = b"simulated-month-district-key"


@dataclass
class MonthReport:
    """Counts of one simulated month."""

    residents: int
    visits: int
    visitors: int  # distinct residents who came
    measurements: int
    tiers: Counter[str] = field(default_factory=Counter)  # per measurement
    tiers_by_type: dict[str, Counter[str]] = field(default_factory=dict)
    codes: Counter[str] = field(default_factory=Counter)  # rows at the reading's tier
    suspected_hypertension: int = 0  # residents the 3-day rule refers
    followups: Counter[tuple[str, str]] = field(default_factory=Counter)  # (reason, tier)
    overdue_at_end: int = 0  # with nobody acting on the worklist
    visits_with_urgent: int = 0


def simulate_month(
    residents: int = 400,
    visits_per_day: int = 40,
    days: int = 30,
    seed: int = 1,
    first: dt.date = dt.date(2026, 11, 1),
) -> MonthReport:
    """Visits drawn at random among `residents` (a resident may come several times), every one
    measuring on all five instruments, triaged as the cloud triages them."""
    rng = random.Random(seed)
    people = make_residents(residents, seed)
    readings: list[Reading] = []
    report = MonthReport(residents, 0, 0, 0)
    seq = 0
    came: set[str] = set()
    for d in range(days):
        day = first + dt.timedelta(days=d)
        for v in range(visits_per_day):
            person = rng.choice(people)
            pseudonym = pseudonymize(KEY, person.card)
            came.add(pseudonym)
            truth = measure(person, rng)
            ts = day_start_ms(number_of(day)) + (8 * 3600 + v * 15 * 60) * 1000  # 08:00 on
            urgent = False
            for instrument in INSTRUMENTS:
                type_, values = instrument.expected(truth)
                t = triage(type_, values)
                seq += 1
                readings.append(Reading(pseudonym, instrument.suffix, type_, seq, ts, dict(values)))
                report.tiers[t.tier] += 1
                report.tiers_by_type.setdefault(type_, Counter())[t.tier] += 1
                report.codes.update(t.codes)
                urgent |= t.tier == "urgent"
            report.visits += 1
            report.visits_with_urgent += urgent
    report.visitors = len(came)
    report.measurements = len(readings)
    history: dict[str, list[Reading]] = {}
    for r in readings:
        if r.type == BP:
            history.setdefault(r.resident, []).append(r)
    events = raised_events(readings, history)
    report.suspected_hypertension = len(
        {e.resident for e in events if e.code == "suspected_hypertension"}
    )
    end = first + dt.timedelta(days=days - 1)
    for f in fold(events):
        report.followups[(f.reason, f.tier)] += 1
        report.overdue_at_end += f.status(end) == "overdue"
    return report


def report_lines(r: MonthReport) -> list[str]:
    """The report as text (what the CLI prints and docs/health.md quotes)."""
    out = [
        f"{r.visits} visits by {r.visitors} of {r.residents} residents, {r.measurements} measurements",
        "measurements per tier: " + ", ".join(f"{t} {r.tiers[t]}" for t in TIERS),
    ]
    for type_, c in sorted(r.tiers_by_type.items()):
        out.append(f"  {type_:<17} " + ", ".join(f"{t} {c[t]}" for t in TIERS))
    out.append(f"visits with an urgent reading: {r.visits_with_urgent}")
    out.append(
        f"residents referred for suspected hypertension (3 raised days): {r.suspected_hypertension}"
    )
    total = sum(r.followups.values())
    out.append(
        f"follow-ups opened: {total} ({r.overdue_at_end} overdue at month end if nobody acts)"
    )
    for (reason, tier), n in sorted(r.followups.items()):
        out.append(f"  {reason:<15} {tier:<7} {n}")
    return out
