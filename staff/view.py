"""What the staff tool prints (pure): the worklist with names from the roster, a resident's record."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from staff.roster import Roster

NOT_ON_ROSTER = "(not on the roster)"


def worklist_lines(followups: Iterable[dict[str, Any]], roster: Roster) -> list[str]:
    """One line per follow-up: due, status, tier, reason, name, masked card, id (sorted as given)."""
    out = []
    for f in followups:
        person = roster.person(str(f["resident"]))
        who = f"{person.name} {person.masked_card}" if person else NOT_ON_ROSTER
        out.append(
            f"{f['due']}  {f['status']:<9} {f['tier']:<7} {f['reason']:<15} {who:<28} {f['id']}"
        )
    return out


def record_lines(observations: Iterable[dict[str, Any]]) -> list[str]:
    """One line per observation: time, type, values, tier."""
    out = []
    for o in observations:
        values = ", ".join(f"{k} {v}" for k, v in sorted(o["values"].items()))
        out.append(f"{o['time'][:16]}  {o['type']:<17} {values}  [{o.get('tier') or o['flag']}]")
    return out
