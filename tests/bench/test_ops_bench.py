"""Smoke test of `gumei bench ops` at a tiny size: the passes run on a real influxd, the figures and
goals print, and the steady pass reads no scale (no timing asserted)."""

from __future__ import annotations

from tests.support.common import gumei


def test_bench_ops_cli_smoke() -> None:
    out = gumei(
        "bench", "ops", "--stations", "16", "--history-days", "2", "--touched-pct", "50"
    ).stdout
    assert "steady pass (no new data)" in out and "0 scales read" in out
    assert "scales re-read with no new data" in out and "MISSES" not in out


def test_bench_ops_refuses_bad_sizes() -> None:
    r = gumei("bench", "ops", "--stations", "0", check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr
