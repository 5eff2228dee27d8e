"""Soak: a million stored readings over three days, aggregated from InfluxDB in chunks, equal the
in-memory NumPy result to the gram (run with -m soak)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from bench.aggregate import make_readings
from cloud.aggregate.runner import Aggregator
from cloud.aggregate.tonnage import daily_totals, mg_to_grams
from cloud.days import date_of
from contract import CATEGORIES
from tests.support.common import rows_of


@pytest.mark.soak
def test_million_readings_from_the_store(influx, registry) -> None:
    waste = [s for s in registry.sites if s.kind == "waste"]
    r = make_readings(1_000_000, days=3, sites=len(waste), seed=11)
    ts = r.ts_ms - 400 * 86_400_000  # days of their own (2025-08), away from other tests
    for i in range(0, len(r), 100_000):
        j = min(len(r), i + 100_000)
        lines = [
            f"waste_reading,area={waste[s].area},category={CATEGORIES[c]},device={waste[s].id}-S{c + 1},site={waste[s].id} "
            f"net_kg={mg / 1e6!r},seq={q}i {t * 1_000_000 + q % 1_000_000}"
            for t, s, c, q, mg in zip(
                ts[i:j].tolist(),
                r.site[i:j].tolist(),
                r.category[i:j].tolist(),
                r.seq[i:j].tolist(),
                r.net_mg[i:j].tolist(),
                strict=True,
            )
        ]
        influx.write_lines(("\n".join(lines) + "\n").encode())
    site_of = {s.id: i for i, s in enumerate(registry.sites)}
    expected_r = type(r)(
        ts_ms=ts,
        site=np.array([site_of[w.id] for w in waste])[r.site],
        category=r.category,
        device=r.device,
        seq=r.seq,
        net_mg=r.net_mg,
    )
    exp = daily_totals(expected_r, len(registry.sites), 4)
    first, last = date_of(int(exp.day.min())), date_of(int(exp.day.max()))
    result = Aggregator(influx, registry, chunk_size=20_000).backfill(first, last)
    assert result.readings == len(r)
    rows = rows_of(
        influx,
        f"SELECT net_g, deposits FROM waste_daily WHERE time >= '{first}T00:00:00+08:00' "
        f"AND time < '{last + dt.timedelta(days=1)}T00:00:00+08:00' GROUP BY site, category",
    )
    assert sum(x["deposits"] for x in rows) == len(r)
    assert sorted(x["net_g"] for x in rows) == sorted(mg_to_grams(int(v)) for v in exp.net_mg)
