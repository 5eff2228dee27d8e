"""The rules' inputs, read from InfluxDB incrementally (never a rescan of every raw reading).

- Scales: only the sites the ingestion workers marked (`dirty_site_day`) since the evaluator's
  watermark are read, their last 2 days of readings; each scale's latest gross weight and fill
  rate are kept in `ops_observed` (one point per scale and reading time), which is what every pass
  reads for every scale. A station's last reading is the latest of its scales'.
- Station profiles (deposits per hour of the week) are learned once per Shanghai day from the last
  4 weeks of hourly counts (InfluxDB counts, groups of sites) and kept in `ops_profile`.
- Gateways: the latest status per site (`cloud/status.py`). Workers: `ingest_stats` of the stall
  window. Quarantine: the last 15 min and the 24 h before. Targets: the latest complete day.
Every time bound is explicit milliseconds from the injected clock, so tests can move time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from cloud import measurements as m
from cloud.days import DAY_MS, SHANGHAI_OFFSET_MS, day_number, day_start_ms
from cloud.influx import InfluxClient
from cloud.lineproto import line
from cloud.ops.derive import PROFILE_WEEKS, FillState, drift_fit, fill_state, weekly_profile
from cloud.ops.rules import (
    HOUR_MS,
    WEEK_HOURS,
    BinInputs,
    DriftInputs,
    FollowupInputs,
    GatewayInputs,
    Inputs,
    QuarantineInputs,
    SilenceInputs,
    TargetInputs,
    Thresholds,
    WorkerInputs,
)
from cloud.registry import Registry
from cloud.status import read_statuses

BIN_HORIZON_MS = 2 * DAY_MS  # a reading older than this says nothing about a bin's fill now
SILENCE_HORIZON_MS = 14 * DAY_MS  # a station unheard for longer counts as silent since then
SITE_GROUP = 50  # sites per query (a regex of ids)
TARGETS = (
    ("recyclable", "recyclable_met", "recyclable_tonnes"),
    ("dry", "dry_met", "dry_change_pct"),
    ("sorting", "sorting_met", "sorting_pct"),
)


def _groups(items: Sequence[str], size: int = SITE_GROUP) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def _site_regex(sites: Sequence[str]) -> str:
    # site ids match contract ID_PATTERN (letters, digits, _ and -): nothing to escape but '-'
    return "/^(" + "|".join(s.replace("-", "\\-") for s in sites) + ")$/"


def _rows(series: Any) -> Iterator[tuple[dict[str, str], dict[str, int], list[Any]]]:
    for s in series:
        idx = {c: i for i, c in enumerate(s.columns)}
        for v in s.values:
            yield s.tags, idx, v


def touched_sites(influx: InfluxClient, since_ms: int) -> set[str]:
    """Sites whose readings were written after since_ms (the ingestion workers' markers)."""
    q = f'SELECT last("points") FROM "{m.DIRTY_SITE_DAY.name}" WHERE time > {since_ms}ms GROUP BY "site"'
    return {s.tags.get("site", "") for s in influx.query(q)} - {""}


@dataclass
class Cache:
    """What a long-running evaluator keeps between passes so a pass costs what changed: every
    scale's fill state (loaded from `ops_observed` once, then updated by its own observations)
    and the day's station profiles. A fresh Cache (a one-shot run) loads both from InfluxDB."""

    scales: dict[str, FillState] | None = None
    profiles_day: int = -1
    profiles: dict[str, tuple[npt.NDArray[np.float64], float]] = field(default_factory=dict)
    drift_day: int = -1
    drift: DriftInputs | None = None


def observe_scales(
    influx: InfluxClient, registry: Registry, sites: set[str], now_ms: int, t: Thresholds
) -> dict[str, FillState]:
    """Read the touched stations' recent readings; store each scale's fill state; return them."""
    capacity = _capacities(registry, t)
    index = registry.site_index()  # once: registry.site() builds it on every call
    waste = sorted(s for s in sites if (x := index.get(s)) is not None and x.kind == "waste")
    lines = []
    states: dict[str, FillState] = {}
    for group in _groups(waste):
        q = (
            f'SELECT "gross_kg" FROM "{m.WASTE_READING.name}" WHERE "site" =~ {_site_regex(group)} '
            f'AND time > {now_ms - BIN_HORIZON_MS}ms AND time <= {now_ms}ms GROUP BY "site", "device"'
        )
        for s in influx.query(q):
            device = s.tags.get("device", "")
            if device not in capacity:
                continue
            pts = [(int(v[0]), float(v[1])) for v in s.values if v[1] is not None]
            if not pts:
                continue
            times = np.array([p[0] for p in pts], dtype=np.int64)
            gross = np.array([p[1] for p in pts], dtype=np.float64)
            state = fill_state(times, gross, capacity[device])
            if state is not None:
                states[device] = state
                lines.append(_observed_line(s.tags.get("site", ""), device, state))
    if lines:
        influx.write_lines(("\n".join(lines) + "\n").encode(), db=influx.records_db)
    return states


def _observed_line(site: str, device: str, st: FillState) -> str:
    return line(
        m.OPS_OBSERVED.name,
        {"site": site, "device": device},
        {"gross_kg": st.gross_kg, "rate_kg_h": st.rate_kg_h, "reading_ms": st.reading_ms},
        st.reading_ms * 1_000_000,
    )


def _capacities(registry: Registry, t: Thresholds) -> dict[str, float]:
    """Capacity (kg) of every active scale; the default for one the registry gives none."""
    return {
        d.id: float(d.capacity_kg if d.capacity_kg and d.capacity_kg > 0 else t.default_capacity_kg)
        for s in registry.sites
        if s.kind == "waste" and not s.retired
        for d in s.devices
        if not d.retired
    }


def load_scales(influx: InfluxClient, now_ms: int) -> dict[str, FillState]:
    """Every scale's latest stored fill state of the silence horizon (a cold start's one read)."""
    q = (
        f'SELECT last("gross_kg") AS "gross_kg", last("rate_kg_h") AS "rate_kg_h", '
        f'last("reading_ms") AS "reading_ms" FROM "{m.OPS_OBSERVED.name}" '
        f'WHERE time > {now_ms - SILENCE_HORIZON_MS}ms GROUP BY "device"'
    )
    out = {}
    for tags, idx, v in _rows(influx.query(q, db=influx.records_db)):
        out[tags.get("device", "")] = FillState(
            float(v[idx["gross_kg"]]), int(v[idx["reading_ms"]]), float(v[idx["rate_kg_h"]])
        )
    return out


def bins_of(
    registry: Registry, scales: dict[str, FillState], now_ms: int, t: Thresholds
) -> BinInputs:
    """The bin rules' inputs: every active scale with a fill state in the silence horizon."""
    capacity = _capacities(registry, t)
    floor = now_ms - SILENCE_HORIZON_MS
    rows = sorted((d, st) for d, st in scales.items() if d in capacity and st.reading_ms > floor)
    return BinInputs(
        [d for d, _ in rows],
        np.array([st.gross_kg for _, st in rows], dtype=np.float64),
        np.array([capacity[d] for d, _ in rows], dtype=np.float64),
        np.array([st.rate_kg_h for _, st in rows], dtype=np.float64),
        np.array([st.reading_ms for _, st in rows], dtype=np.int64),
    )


def read_profiles(
    influx: InfluxClient, sites: list[str], now_ms: int, cache: Cache | None = None
) -> dict[str, tuple[npt.NDArray[np.float64], float]]:
    """Each station's weekly profile as learned today; learned now (and stored) for those not yet.
    With a cache, InfluxDB is asked once a day (and for stations the cache does not hold)."""
    today = day_start_ms(int(day_number(now_ms)))
    if (
        cache is not None
        and cache.profiles_day == today
        and all(s in cache.profiles for s in sites)
    ):
        return cache.profiles
    out: dict[str, tuple[npt.NDArray[np.float64], float]] = {}
    q = (
        f'SELECT last("profile") AS "profile", last("weeks") AS "weeks" FROM "{m.OPS_PROFILE.name}" '
        f'WHERE time >= {today}ms GROUP BY "site"'
    )
    for tags, idx, v in _rows(influx.query(q, db=influx.records_db)):
        values = np.array([float(x) for x in str(v[idx["profile"]]).split(",")], dtype=np.float64)
        if len(values) == WEEK_HOURS:
            out[tags.get("site", "")] = (values, float(v[idx["weeks"]]))
    missing = [s for s in sites if s not in out]
    lines = []
    start = today - PROFILE_WEEKS * 7 * DAY_MS
    for group in _groups(missing):
        counts: dict[str, list[tuple[int, float]]] = defaultdict(list)
        q = (
            f'SELECT count("seq") FROM "{m.WASTE_READING.name}" WHERE "site" =~ {_site_regex(group)} '
            f'AND time >= {start}ms AND time < {today}ms GROUP BY time(1h), "site" fill(none)'
        )
        for tags, _, v in _rows(influx.query(q)):
            counts[tags.get("site", "")].append((int(v[0]), float(v[1] or 0)))
        for site in group:
            pts = counts.get(site, [])
            profile, weeks = weekly_profile(
                np.array([p[0] for p in pts], dtype=np.int64),
                np.array([p[1] for p in pts], dtype=np.float64),
                today,
            )
            out[site] = (profile, weeks)
            text = ",".join(f"{x:.4g}" for x in profile)
            lines.append(
                line(
                    m.OPS_PROFILE.name,
                    {"site": site},
                    {"weeks": weeks, "profile": text},
                    today * 1_000_000,
                )
            )
    if lines:
        influx.write_lines(("\n".join(lines) + "\n").encode(), db=influx.records_db)
    if cache is not None:
        cache.profiles_day, cache.profiles = today, out
    return out


def collection_grid(hours: tuple[int, ...]) -> tuple[int, int] | None:
    """InfluxQL's GROUP BY time(period, offset) in hours whose buckets start at the collections,
    when the collection hours are evenly spaced over the day; else None."""
    hs = sorted(set(hours))
    if not hs or 24 % len(hs):
        return None
    period = 24 // len(hs)
    if any(b - a != period for a, b in zip(hs, hs[1:], strict=False)):
        return None
    return period, (hs[0] - SHANGHAI_OFFSET_MS // HOUR_MS) % period


def read_drift(
    influx: InfluxClient, registry: Registry, now_ms: int, t: Thresholds, cache: Cache | None = None
) -> DriftInputs | None:
    """Each scale's empty-bin weight after each collection of the last drift_days (the gross
    before the first deposit of each collection period: first gross - first net, by influxd),
    fitted to a line (cloud/ops/derive.py drift_fit). Asked once per Shanghai day with a cache;
    None when the collection hours are not evenly spaced (no bucket grid)."""
    today = day_start_ms(int(day_number(now_ms)))
    if cache is not None and cache.drift_day == today:
        return cache.drift
    grid = collection_grid(t.collection_hours)
    if grid is None:
        return None
    period, offset = grid
    capacity = _capacities(registry, t)
    sites = sorted(s.id for s in registry.sites if s.kind == "waste" and not s.retired)
    start = now_ms - t.drift_days * DAY_MS
    points: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for group in _groups(sites):
        q = (
            f'SELECT first("gross_kg") AS "gross_kg", first("net_kg") AS "net_kg" '
            f'FROM "{m.WASTE_READING.name}" WHERE "site" =~ {_site_regex(group)} '
            f'AND "gross_kg" >= 0 AND time > {start}ms AND time <= {now_ms}ms '
            f'GROUP BY time({period}h, {offset}h), "device" fill(none)'
        )
        for tags, idx, v in _rows(influx.query(q)):
            g, n = v[idx["gross_kg"]], v[idx["net_kg"]]
            if g is not None and n is not None and tags.get("device", "") in capacity:
                points[tags["device"]].append((int(v[0]), float(g) - float(n)))
    devices = sorted(points)
    fits = [
        drift_fit(
            np.array([p[0] for p in points[d]], dtype=np.int64),
            np.array([p[1] for p in points[d]], dtype=np.float64),
        )
        for d in devices
    ]
    out = DriftInputs(
        devices,
        np.array([f.points for f in fits], dtype=np.int64),
        np.array([f.slope_kg_day for f in fits], dtype=np.float64),
        np.array([f.latest_kg for f in fits], dtype=np.float64),
    )
    if cache is not None:
        cache.drift_day, cache.drift = today, out
    return out


def read_silence(
    influx: InfluxClient,
    registry: Registry,
    bins: BinInputs,
    now_ms: int,
    cache: Cache | None = None,
) -> SilenceInputs:
    """Every active waste station's last reading (from its scales' states) and weekly profile."""
    sites = sorted(s.id for s in registry.sites if s.kind == "waste" and not s.retired)
    site_of = {d.id: s.id for s in registry.sites for d in s.devices}
    last: dict[str, int] = {}
    for device, ts in zip(bins.device, bins.reading_ms, strict=True):
        site = site_of.get(device, "")
        last[site] = max(last.get(site, 0), int(ts))
    profiles = read_profiles(influx, sites, now_ms, cache)
    floor = now_ms - SILENCE_HORIZON_MS
    return SilenceInputs(
        sites,
        np.array([max(last.get(s, floor), floor) for s in sites], dtype=np.int64),
        np.array([profiles[s][0] for s in sites], dtype=np.float64).reshape(len(sites), WEEK_HOURS),
        np.array([profiles[s][1] for s in sites], dtype=np.float64),
    )


def read_gateways(influx: InfluxClient, registry: Registry) -> GatewayInputs:
    """Every active site's latest gateway status."""
    rows = sorted(read_statuses(influx, registry), key=lambda g: g.site)
    return GatewayInputs(
        [g.site for g in rows],
        np.array([g.state == "offline" for g in rows], dtype=np.bool_),
        np.array([g.state != "unknown" for g in rows], dtype=np.bool_),
        np.array([g.changed_ms or 0 for g in rows], dtype=np.int64),
    )


def read_workers(influx: InfluxClient, now_ms: int, t: Thresholds) -> WorkerInputs:
    """Each worker's stats points within the stall window."""
    q = (
        f'SELECT "written_per_s", "queue_depth" FROM "{m.INGEST_STATS.name}" '
        f'WHERE time > {now_ms - t.stall_window_ms}ms AND time <= {now_ms}ms GROUP BY "worker"'
    )
    names, points, max_w, min_q, last_w, last_q = [], [], [], [], [], []
    for s in influx.query(q):
        vals = [(float(v[1] or 0), float(v[2] or 0)) for v in s.values]
        if not vals:
            continue
        names.append(s.tags.get("worker", ""))
        points.append(len(vals))
        max_w.append(max(w for w, _ in vals))
        min_q.append(min(d for _, d in vals))
        last_w.append(vals[-1][0])
        last_q.append(vals[-1][1])
    return WorkerInputs(
        names,
        np.array(points, dtype=np.int64),
        np.array(max_w, dtype=np.float64),
        np.array(min_q, dtype=np.float64),
        np.array(last_w, dtype=np.float64),
        np.array(last_q, dtype=np.float64),
    )


def read_quarantine(influx: InfluxClient, now_ms: int, t: Thresholds) -> QuarantineInputs:
    """Quarantined entries per site in the spike window and in the 24 h before it."""
    start = now_ms - t.spike_window_ms

    def sums(lo: int, hi: int) -> dict[str, float]:
        q = (
            f'SELECT sum("entries") FROM "{m.QUARANTINE.name}" WHERE time > {lo}ms '
            f'AND time <= {hi}ms GROUP BY "site"'
        )
        return {
            s.tags.get("site", ""): float(s.values[0][1] or 0) for s in influx.query(q) if s.values
        }

    recent, before = sums(start, now_ms), sums(start - DAY_MS, start)
    sites = sorted(set(recent) | set(before))
    return QuarantineInputs(
        sites,
        np.array([recent.get(s, 0.0) for s in sites], dtype=np.float64),
        np.array([before.get(s, 0.0) for s in sites], dtype=np.float64),
    )


def read_targets(influx: InfluxClient, now_ms: int) -> TargetInputs:
    """The three targets on the latest complete Shanghai day (yesterday)."""
    today = day_start_ms(int(day_number(now_ms)))
    q = f'SELECT * FROM "{m.WASTE_TARGETS.name}" WHERE time >= {today - DAY_MS}ms AND time < {today}ms'
    row: dict[str, Any] = {}
    for _, idx, v in _rows(influx.query(q)):
        row = {c: v[i] for c, i in idx.items()}
    known = [row.get(met) is not None for _, met, _ in TARGETS]
    return TargetInputs(
        [name for name, _, _ in TARGETS],
        np.array(known, dtype=np.bool_),
        np.array([bool(row.get(met)) for _, met, _ in TARGETS], dtype=np.bool_),
        np.array([float(row.get(val) or 0.0) for _, _, val in TARGETS], dtype=np.float64),
    )


def read_followups(influx: InfluxClient, now_ms: int) -> FollowupInputs:
    """The latest overdue count (all reasons) of today or yesterday, as the aggregator wrote it."""
    today = day_start_ms(int(day_number(now_ms)))
    q = (
        f'SELECT "followups", "suppressed" FROM "{m.HEALTH_FOLLOWUP_COUNTS.name}" '
        f"WHERE \"state\" = 'overdue' AND \"reason\" = 'all' AND time >= {today - DAY_MS}ms "
        f"AND time <= {now_ms}ms ORDER BY time DESC LIMIT 1"
    )
    for _, idx, v in _rows(influx.query(q)):
        count = v[idx["followups"]]
        if count is None or v[idx["suppressed"]]:
            return FollowupInputs(False, 0.0)
        return FollowupInputs(True, float(count))
    return FollowupInputs(False, 0.0)


def gather(
    influx: InfluxClient,
    registry: Registry,
    since_ms: int,
    now_ms: int,
    t: Thresholds,
    cache: Cache | None = None,
) -> tuple[Inputs, int]:
    """Every rule's inputs now, after observing the scales of stations touched since since_ms.
    Returns the inputs and how many scales were observed anew."""
    cache = cache if cache is not None else Cache()
    observed = observe_scales(influx, registry, touched_sites(influx, since_ms), now_ms, t)
    if cache.scales is None:
        cache.scales = load_scales(influx, now_ms)
    for device, st in observed.items():
        old = cache.scales.get(device)
        if old is None or st.reading_ms >= old.reading_ms:
            cache.scales[device] = st
    bins = bins_of(registry, cache.scales, now_ms, t)
    return (
        Inputs(
            now_ms,
            bins=bins,
            gateways=read_gateways(influx, registry),
            silence=read_silence(influx, registry, bins, now_ms, cache),
            workers=read_workers(influx, now_ms, t),
            quarantine=read_quarantine(influx, now_ms, t),
            targets=read_targets(influx, now_ms),
            followups=read_followups(influx, now_ms),
            drift=read_drift(influx, registry, now_ms, t, cache),
        ),
        len(observed),
    )
