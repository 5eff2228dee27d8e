"""Small-cell suppression of health aggregates (pure): no operator-visible figure may come from
fewer than k distinct residents, and no shown total may give a hidden cell back by subtraction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_K = 5


@dataclass(frozen=True, slots=True)
class Cell:
    """One figure's population: how many distinct residents it is computed from, and its size."""

    residents: int
    measurements: int


def suppress_group(
    total: Cell, parts: Mapping[str, Cell], k: int = DEFAULT_K
) -> tuple[bool, set[str]]:
    """(hide the total, hidden parts) for a total and the parts that add up to it.

    Primary: any cell of fewer than k residents. Complementary: when exactly one part is hidden
    and the total is shown, the next smallest part (fewest residents, then measurements, then
    name) is hidden too, so total minus the shown parts never equals one hidden cell. A hidden
    total hides every part (a part never has more residents than its total).
    """
    hide_total = total.residents < k
    if hide_total:
        return True, set(parts)
    hidden = {name for name, c in parts.items() if c.residents < k}
    if len(hidden) == 1:
        shown = sorted(
            (c.residents, c.measurements, name) for name, c in parts.items() if name not in hidden
        )
        if shown:
            hidden.add(shown[0][2])
        else:  # the one part is the total: hide both
            return True, hidden
    return False, hidden
