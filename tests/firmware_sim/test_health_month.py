"""One simulated month triaged (pure) and its CLI: the counts add up and are reproducible."""

from __future__ import annotations

from cloud.health.triage import TIERS
from firmware_sim.health.month import report_lines, simulate_month
from tests.support.common import gumei


def test_a_month_adds_up_and_is_reproducible() -> None:
    r = simulate_month(residents=120, visits_per_day=12, days=30, seed=3)
    assert r.visits == 360 and r.measurements == 5 * 360
    assert sum(r.tiers[t] for t in TIERS) == r.measurements
    assert all(sum(c.values()) == 360 for c in r.tiers_by_type.values())
    assert r.tiers["normal"] and r.tiers["recheck"] and r.tiers["refer"] and r.tiers["urgent"]
    # one reading never refers a blood pressure: only urgent ones or the 3-day rule do
    assert r.tiers_by_type["blood_pressure"]["refer"] == 0 and r.suspected_hypertension > 0
    # follow-ups: at most one per resident and reason (none closed in the simulation)
    assert sum(r.followups.values()) <= r.visitors * 6
    assert report_lines(r) == report_lines(simulate_month(120, 12, 30, 3))


def test_triage_month_cli() -> None:
    out = gumei(
        "health", "triage-month", "--residents", "50", "--visits-per-day", "5", "--days", "7"
    ).stdout
    assert out.startswith("35 visits by ") and "measurements per tier: normal " in out
    bad = gumei("health", "triage-month", "--days", "0", check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
