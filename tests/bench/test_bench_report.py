"""The benchmarks' one report format (bench/report.py): goal directions, how figures print, and the
edge and scale benches' reports built on it."""

from __future__ import annotations

import pytest

from bench.edge import EdgeBench, edge_report
from bench.report import Figure, Goal, Report


@pytest.mark.parametrize(
    ("goal", "meets", "text"),
    [
        (Goal("ratio", 0.64, 0.5, "min", "%"), True, "64.0%  goal >= 50%: meets"),
        (Goal("ratio", 0.49, 0.5, "min", "%"), False, "49.0%  goal >= 50%: MISSES"),
        (Goal("error", 0.000027, 0.005, "max", "%"), True, "0.0027%  goal < 0.5%: meets"),
        (Goal("error", 0.005, 0.005, "max", "%"), False, "goal < 0.5%: MISSES"),  # strict
        (Goal("lost", 0, 1, "max"), True, "           0  goal < 1: meets"),  # a count, not 0.000
        (Goal("p99", 1.234, 2, "max", "s"), True, "1.234  goal < 2 s: meets"),
        (Goal("rate", 68150.6, 1000, "min", "readings/s"), True, "68,151  goal >= 1000 readings/s"),
        (Goal("speed-up", 12.5, 10, "min", "×"), True, "12.5×  goal >= 10×: meets"),
        (Goal("ratio", 0.7749, 0.8, "min", "×"), False, "0.77×  goal >= 0.8×: MISSES"),
    ],
)
def test_a_goal_prints_its_value_target_and_verdict(goal: Goal, meets: bool, text: str) -> None:
    assert goal.meets is meets
    assert goal.line().startswith(goal.name)
    assert text in goal.line()


def test_a_report_meets_only_when_every_goal_does() -> None:
    report = Report([Figure("ingest", "readings/s", 1234.5)], ["a note"], [])
    assert report.meets  # no goal
    report.goals = [Goal("a", 1, 0, "min"), Goal("b", 1, 0, "max")]
    assert not report.meets
    lines = report.lines()
    assert lines[1].split()[-2:] == ["1,234", "readings/s"] and lines[2] == "a note"
    assert lines[-1].endswith("MISSES") and lines[-2].endswith("meets")


def test_the_edge_bench_checks_the_gateway_budget() -> None:
    run = EdgeBench(4, 60, 0.5, 41.7, 41.9, 40, 50_000, 0.7, 0.5, 100_000, 50, 45.0, 91_000)
    assert edge_report(run, via_cli=False).meets
    heavy = EdgeBench(4, 60, 7.0, 41.7, 41.9, 40, 50_000, 0.7, 0.5, 500, 50, 145.0, 500)
    report = edge_report(heavy, via_cli=True)
    assert [g.meets for g in report.goals] == [False, False, False]
    assert "gumei edge run" in "\n".join(report.lines())
