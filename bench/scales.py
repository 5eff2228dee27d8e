"""Accuracy of edge deposit detection against the scale simulator's ground truth."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from bench.report import Figure, Goal, Report
from edge.deposits import DepositDetector, DetectorParams, EventKind, ScaleEvent
from edge.errors import FrameError
from edge.scales.ascii_frame import parse_frame
from firmware_sim.scales.ascii_indicator import stream_bytes
from firmware_sim.scales.physics import PROFILES, PhysicsParams, ScaleModel, TrueDeposit

MATCH_WINDOW_MS = 120_000  # a deposit made during a disconnect is seen on reconnect
BLIND_AFTER_MS = 5_000  # a deposit right after reconnect merges with the ones made offline
MATCH_TOLERANCE_KG = 0.03  # three 10 g divisions: quantization of two levels plus drift
BENCH_START_MS = 1_764_198_000_000  # 2025-11-27 07:00 Asia/Shanghai, start of the morning peak


@dataclass(frozen=True, slots=True)
class Match:
    """Outcome of matching detected deposits to true ones for one scale."""

    found: int
    missed: int
    false_positives: int
    max_error_g: float
    abs_error_g: float


def match_deposits(truth: list[TrueDeposit], detected: list[ScaleEvent]) -> Match:
    """Greedy in-order matching by time window and weight tolerance."""
    j, found, max_err, abs_err = 0, 0, 0.0, 0.0
    used = [False] * len(detected)
    for d in truth:
        while j < len(detected) and detected[j].ts_ms < d.ts_ms:
            j += 1
        for k in range(j, len(detected)):
            e = detected[k]
            if e.ts_ms > d.ts_ms + MATCH_WINDOW_MS:
                break
            if not used[k] and abs(e.delta_kg - d.net_kg) <= MATCH_TOLERANCE_KG:
                used[k] = True
                found += 1
                err = abs(e.delta_kg - d.net_kg) * 1000
                max_err, abs_err = max(max_err, err), abs_err + err
                break
    return Match(found, len(truth) - found, used.count(False), max_err, abs_err)


def _while_disconnected(ts_ms: int, gaps: list[tuple[int, int]]) -> bool:
    """True when a deposit started while the line was down (or just before it came back)."""
    return any(start <= ts_ms <= end + BLIND_AFTER_MS for start, end in gaps)


def run_scale(
    category: str,
    hours: float,
    seed: int,
    physics: PhysicsParams | None = None,
    params: DetectorParams | None = None,
) -> dict:
    """Simulate one scale, parse its frames, detect, and compare with the truth."""
    model = ScaleModel(category, seed, BENCH_START_MS, physics or PhysicsParams())
    det = DepositDetector(params or DetectorParams())
    rejected: Counter[str] = Counter()
    events: Counter[str] = Counter()
    found: list[ScaleEvent] = []
    frames = 0
    for ts, raw in stream_bytes(model.run(hours), seed=seed):
        frames += 1
        try:
            frame = parse_frame(raw)
        except FrameError as exc:
            rejected[exc.reason] += 1
            continue
        ev = det.feed(frame.to_sample(ts))
        if ev is not None:
            events[ev.kind.value] += 1
            if ev.kind is EventKind.DEPOSIT:
                found.append(ev)
    m = match_deposits(model.deposits, found)
    blind = [d for d in model.deposits if _while_disconnected(d.ts_ms, model.disconnects)]
    m_seen = match_deposits([d for d in model.deposits if d not in blind], found)
    true_kg = sum(d.net_kg for d in model.deposits)
    det_kg = sum(e.delta_kg for e in found)
    return {
        "category": category,
        "frames": frames,
        "rejected_frames": dict(rejected),
        "glitches_injected": model.glitches,
        "disconnects": len(model.disconnects),
        "emptyings": len(model.emptyings),
        "events": dict(events),
        "true_deposits": len(model.deposits),
        "found": m.found,
        "missed": m.missed,
        "made_while_disconnected": len(blind),
        "observable": len(model.deposits) - len(blind),
        "observable_found": m_seen.found,
        "false_positives": m.false_positives,
        "true_kg": round(true_kg, 3),
        "detected_kg": round(det_kg, 3),
        "max_error_g": round(m.max_error_g, 1),
        "mean_abs_error_g": round(m.abs_error_g / m.found, 2) if m.found else 0.0,
    }


def run_accuracy_bench(hours: float, seed: int) -> dict:
    """Run one scale per category for `hours` simulated hours; totals and per-scale results."""
    t0 = time.perf_counter()
    scales = [run_scale(cat, hours, seed * 10 + i) for i, cat in enumerate(PROFILES)]
    true_n = sum(s["true_deposits"] for s in scales)
    found = sum(s["found"] for s in scales)
    true_kg = sum(s["true_kg"] for s in scales)
    det_kg = sum(s["detected_kg"] for s in scales)
    recall = found / true_n if true_n else 1.0
    seen_n = sum(s["observable"] for s in scales)
    seen_found = sum(s["observable_found"] for s in scales)
    seen_recall = seen_found / seen_n if seen_n else 1.0
    weight_err = abs(det_kg - true_kg) / true_kg if true_kg else 0.0
    return {
        "hours": hours,
        "seed": seed,
        "scales": scales,
        "true_deposits": true_n,
        "found": found,
        "false_positives": sum(s["false_positives"] for s in scales),
        "recall": round(recall, 5),
        "observable_deposits": seen_n,
        "observable_recall": round(seen_recall, 5),
        "true_kg": round(true_kg, 3),
        "detected_kg": round(det_kg, 3),
        "weight_error_pct": round(weight_err * 100, 4),
        "frames": sum(s["frames"] for s in scales),
        "rejected_frames": sum(sum(s["rejected_frames"].values()) for s in scales),
        "passed": seen_recall >= RECALL_GOAL and weight_err < WEIGHT_ERROR_GOAL,
        "elapsed_s": round(time.perf_counter() - t0, 2),
    }


RECALL_GOAL = 0.99  # share of observable deposits found (docs/scales.md §5)
WEIGHT_ERROR_GOAL = 0.005  # total weight error, as a fraction of the true weight


def accuracy_report(r: dict) -> Report:
    """`run_accuracy_bench`'s result in the benchmarks' one report format: a line per scale, the
    totals, and the two goals (`passed` is their conjunction)."""
    notes = [
        f"  {s['category']:<11} true {s['true_deposits']:>5}  found {s['found']:>5}  "
        f"false+ {s['false_positives']:>3}  true {s['true_kg']:>9.3f} kg  "
        f"detected {s['detected_kg']:>9.3f} kg"
        for s in r["scales"]
    ]
    notes.append(
        f"{r['hours']} h, seed {r['seed']}: {r['frames']} frames ({r['rejected_frames']} rejected), "
        f"deposits {r['found']}/{r['true_deposits']}, false positives {r['false_positives']}, "
        f"weight {r['detected_kg']} / {r['true_kg']} kg, {r['elapsed_s']} s"
    )
    return Report(
        figures=[
            Figure(
                "frames decoded",
                "frames/s",
                r["frames"] / r["elapsed_s"] if r["elapsed_s"] else 0.0,
                r["elapsed_s"],
            )
        ],
        notes=notes,
        goals=[
            Goal("observable deposits found", r["observable_recall"], RECALL_GOAL, "min", "%"),
            Goal(
                "total weight error (|detected - true| / true)",
                r["weight_error_pct"] / 100,
                WEIGHT_ERROR_GOAL,
                "max",
                "%",
            ),
        ],
    )
