"""The one result type of every benchmark and the load test: figures, goals, and how they print.

A `Figure` is one measured rate; a `Goal` is one figure (or ratio of figures) checked against a
target in an explicit direction — `"min"`: the value must reach the target (`>=`), `"max"`: it must
stay below it (`<`). `Report.lines()` prints the table every `gumei bench …` command and
`gumei loadtest` end with: figure/rate/unit lines, then one line per goal ending in
`goal >= X: meets` / `goal < X: MISSES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

NAME_WIDTH = 58


@dataclass(frozen=True)
class Figure:
    """One measured rate: `value` `unit` (e.g. readings/s) over `seconds`, with a free-text detail."""

    name: str
    unit: str
    value: float
    seconds: float = 0.0
    detail: str = ""


def _pct(fraction: float) -> str:
    """A fraction as a percentage with the digits it needs: 64.0%, 99.81%, 0.0027%."""
    pct = fraction * 100
    return (
        f"{pct:.1f}%"
        if abs(pct) >= 10 or pct == 0
        else f"{pct:.2g}%"
        if abs(pct) < 1
        else f"{pct:.2f}%"
    )


@dataclass(frozen=True)
class Goal:
    """One checked figure. `unit` "%" prints value and target as percentages, "×" as multiples;
    other values print as whole numbers when value and target are whole (counts) or the value is
    100 or more, else to 3 places."""

    name: str
    value: float
    target: float
    direction: Literal["min", "max"]
    unit: str = ""

    @property
    def meets(self) -> bool:
        return self.value >= self.target if self.direction == "min" else self.value < self.target

    def line(self) -> str:
        op = ">=" if self.direction == "min" else "<"
        if self.unit == "%":
            value, target = f"{_pct(self.value):>12}", f"{self.target * 100:g}%"
        elif self.unit == "×":
            places = 2 if abs(self.value) < 10 else 1  # 0.77× misses 0.8×: never shown as "0.8×"
            value, target = f"{self.value:>11.{places}f}×", f"{self.target:g}×"
        else:
            whole = float(self.value).is_integer() and float(self.target).is_integer()
            big = abs(self.value) >= 100
            value = (
                f"{int(self.value):>12,d}"
                if whole
                else f"{self.value:>12,.0f}"
                if big
                else f"{self.value:>12.3f}"
            )
            target = f"{self.target:g}{(' ' + self.unit) if self.unit else ''}"
        return f"{self.name:<{NAME_WIDTH}} {value}  goal {op} {target}: {'meets' if self.meets else 'MISSES'}"


@dataclass
class Report:
    """Figures, extra lines printed after them (latency, notes), and the goals."""

    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)

    @property
    def meets(self) -> bool:
        """Every goal met (true when there is none)."""
        return all(g.meets for g in self.goals)

    def lines(self) -> list[str]:
        out = [f"{'figure':<{NAME_WIDTH}} {'rate':>12}  unit"]
        for fig in self.figures:
            out.append(
                f"{fig.name:<{NAME_WIDTH}} {fig.value:>12,.0f}  {fig.unit}"
                + (f"  ({fig.detail})" if fig.detail else "")
            )
        out += self.notes
        if self.goals:
            out.append("")
            out += [g.line() for g in self.goals]
        return out
