"""scale_drift: the empty-bin weight after each collection creeping up (zero/tare drift), at its
boundaries; the empty weights and their line (pure); the reader on a real influxd agreeing with
the pure definition."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from cloud import measurements as m
from cloud import registry as registry_mod
from cloud.days import DAY_MS, day_start_ms, number_of
from cloud.influx import InfluxClient
from cloud.lineproto import line
from cloud.ops.derive import drift_fit, empty_weights
from cloud.ops.inputs import collection_grid, read_drift
from cloud.ops.rules import (
    BY_NAME,
    HOUR_MS,
    DriftInputs,
    Inputs,
    Thresholds,
    collection_number,
)

T = Thresholds()
DAY = number_of(dt.date(2025, 3, 5))
NOW = day_start_ms(DAY) + 10 * HOUR_MS  # Wednesday 10:00 Shanghai


def _judge(points: int, slope: float, latest: float) -> tuple[bool, bool]:
    check = BY_NAME["scale_drift"].evaluate
    assert check is not None
    v = check(
        Inputs(
            NOW,
            drift=DriftInputs(
                ["WS-0101-S1"],
                np.array([points], dtype=np.int64),
                np.array([slope]),
                np.array([latest]),
            ),
        ),
        T,
    )
    assert v is not None and v.subjects == ["WS-0101-S1"]
    assert v.value[0] == latest
    return bool(v.firing[0]), bool(v.clear[0])


@pytest.mark.parametrize(
    ("points", "slope", "latest", "firing", "clear"),
    [
        (6, 0.5, 2.0, True, False),  # at every bar: opens
        (5, 0.5, 2.0, False, False),  # one collection short: no verdict
        (6, 0.4999, 2.0, False, False),  # rising a hair too slowly: keep
        (6, 0.5, 1.999, False, False),  # not yet 2 kg: keep (hysteresis band 1-2 kg)
        (6, 3.0, 1.0, False, False),  # exactly 1 kg: not cleared
        (6, 3.0, 0.999, False, True),  # below 1 kg: resolves (re-zeroed)
        (6, 0.0, 5.0, False, True),  # no longer rising: resolves
        (6, -0.1, 5.0, False, True),
        (14, 1.0, 7.0, True, False),
    ],
)
def test_scale_drift_boundaries(points, slope, latest, firing, clear):
    assert _judge(points, slope, latest) == (firing, clear)


def test_collection_numbers_change_at_six_and_eighteen_shanghai():
    d0 = day_start_ms(DAY)
    times = np.array(
        [d0 + 6 * HOUR_MS - 1, d0 + 6 * HOUR_MS, d0 + 18 * HOUR_MS - 1, d0 + 18 * HOUR_MS],
        dtype=np.int64,
    )
    n = collection_number(times, (6, 18))
    assert np.diff(n).tolist() == [1, 0, 1]
    assert collection_grid((6, 18)) == (12, 10)  # 06:00 and 18:00 Shanghai = 22:00, 10:00 UTC
    assert collection_grid((18, 6)) == (12, 10)
    assert collection_grid((0, 8, 16)) == (8, 0)
    assert collection_grid((6, 17)) is None  # uneven: no bucket grid, the rule is skipped


def test_empty_weights_are_the_gross_before_each_periods_first_deposit():
    d0 = day_start_ms(DAY)
    h = HOUR_MS
    times = np.array([d0 + 7 * h, d0 + 8 * h, d0 + 19 * h, d0 + 20 * h, d0 + DAY_MS + 7 * h])
    gross = np.array([1.5, 3.0, 2.2, 9.0, 2.9])
    net = np.array([1.0, 1.5, 1.2, 6.8, 0.4])
    t, w = empty_weights(times.astype(np.int64), gross, net, (6, 18))
    assert t.tolist() == [d0 + 7 * h, d0 + 19 * h, d0 + DAY_MS + 7 * h]
    assert w.tolist() == pytest.approx([0.5, 1.0, 2.5])
    empty_t, empty_w = empty_weights(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), (6,))
    assert len(empty_t) == len(empty_w) == 0


def test_drift_fit_is_the_least_squares_line_at_the_latest_point():
    half_day = DAY_MS // 2
    times = np.arange(8, dtype=np.int64) * half_day
    creeping = np.asarray(0.25 + 0.4 * np.arange(8), dtype=np.float64)  # 0.8 kg/day
    f = drift_fit(times, creeping)
    assert f.points == 8
    assert f.slope_kg_day == pytest.approx(0.8) and f.latest_kg == pytest.approx(3.05)
    noisy = np.array([0.1, -0.1, 0.1, -0.1, 0.1, -0.1])
    assert abs(drift_fit(times[:6], noisy).slope_kg_day) < 0.2
    assert drift_fit(times[:1], noisy[:1]).slope_kg_day == 0.0
    assert drift_fit(times[:0], noisy[:0]).points == 0


def test_read_drift_on_influxd_agrees_with_the_pure_definition(
    private_influx: InfluxClient,
) -> None:
    """One creeping scale and one steady scale, a week of readings; a scale without gross_kg is
    not judged at all."""
    reg = registry_mod.load()
    station = next(s for s in reg.sites if s.kind == "waste" and not s.retired)
    creeping, steady, net_only = [d.id for d in station.devices if d.category][:3]
    now = day_start_ms(DAY) + 10 * HOUR_MS
    lines: list[str] = []
    raw: dict[str, list[tuple[int, float, float]]] = {creeping: [], steady: []}
    for k in range(14):  # 14 collections: 7 days of twice-daily emptying
        collected = day_start_ms(DAY - 7) + 6 * HOUR_MS + k * 12 * HOUR_MS
        for i, dev in enumerate((creeping, steady, net_only)):
            empty = 0.3 * k if dev == creeping else 0.2
            gross = empty
            for j in range(3):  # three deposits per period
                ts = collected + (1 + j) * HOUR_MS + i * 1000
                net = 1.25
                gross += net
                fields: dict[str, float | int] = {"net_kg": net, "seq": k * 10 + j}
                if dev != net_only:
                    fields["gross_kg"] = round(gross, 3)
                    raw[dev].append((ts, round(gross, 3), net))
                lines.append(
                    line(
                        m.WASTE_READING.name,
                        {"site": station.id, "device": dev, "category": "wet"},
                        fields,
                        ts * 1_000_000,
                    )
                )
    private_influx.write_lines(("\n".join(lines) + "\n").encode())
    got = read_drift(private_influx, reg, now, T)
    assert got is not None
    assert creeping in got.device and steady in got.device and net_only not in got.device
    for dev in (creeping, steady):
        pts = raw[dev]
        pts = [p for p in pts if p[0] > now - T.drift_days * DAY_MS]
        t, w = empty_weights(
            np.array([p[0] for p in pts], dtype=np.int64),
            np.array([p[1] for p in pts]),
            np.array([p[2] for p in pts]),
            T.collection_hours,
        )
        want = drift_fit(t, w)
        i = got.device.index(dev)
        assert got.points[i] == want.points
        assert got.slope_kg_day[i] == pytest.approx(want.slope_kg_day, abs=1e-6)
        assert got.latest_kg[i] == pytest.approx(want.latest_kg, abs=1e-6)
    check = BY_NAME["scale_drift"].evaluate
    assert check is not None
    v = check(Inputs(now, drift=got), T)
    assert v is not None
    firing = {d for d, f in zip(v.subjects, v.firing, strict=True) if f}
    assert firing == {creeping}  # 0.6 kg/day, ~3.9 kg at the latest collection
    assert v.clear[got.device.index(steady)]  # flat: cleared
