"""Pruning on a real influxd: old resolved episodes go, the latest and active ones stay; the
evaluator's own measurements are cut to what a pass still reads."""

from __future__ import annotations

from cloud import measurements as m
from cloud.influx import InfluxClient
from cloud.lineproto import line
from cloud.ops import store
from cloud.ops.housekeeping import event_cutoffs, prune
from cloud.ops.lifecycle import Change, State, change_for
from cloud.ops.rules import BY_NAME, DAY_MS

NOW = 1_760_000_000_000
RULE = BY_NAME["gateway_offline"]


def _episode(subject: str, opened: int, resolved: int | None) -> list[tuple[Change, State]]:
    out: list[tuple[Change, State]] = [(change_for(RULE, subject, "open", opened), "open")]
    if resolved is not None:
        out.append((change_for(RULE, subject, "resolve", resolved, opened_ms=opened), "resolved"))
    return out


def test_prune_keeps_what_is_active_recent_or_latest(private_influx: InfluxClient) -> None:
    influx = private_influx
    d = DAY_MS
    store.write_changes(
        influx,
        [
            *_episode("HK-X", NOW - 200 * d, NOW - 199 * d),  # old: goes
            *_episode("HK-X", NOW - 10 * d, NOW - 9 * d),  # resolved within 90 days: stays
            *_episode("HK-X", NOW - d, None),  # active: stays
            *_episode("HK-Y", NOW - 300 * d, NOW - 299 * d),  # old but the latest: stays
            *_episode("HK-Z", NOW - 200 * d, NOW - 199 * d),  # goes
            *_episode("HK-Z", NOW - 150 * d, NOW - 100 * d),  # old but the latest: stays
        ],
    )
    old_state = line(
        m.OPS_OBSERVED.name,
        {"site": "HK", "device": "HK-S1"},
        {"gross_kg": 1.0},
        (NOW - 40 * d) * 10**6,
    )
    new_state = line(
        m.OPS_OBSERVED.name, {"site": "HK", "device": "HK-S2"}, {"gross_kg": 2.0}, (NOW - d) * 10**6
    )
    influx.write_lines((old_state + "\n" + new_state + "\n").encode(), db=influx.records_db)
    episodes = {k: v for k, v in store.read_episodes(influx).items() if k[1].startswith("HK-")}
    assert event_cutoffs(episodes, NOW) == {
        (RULE.name, "HK-X"): NOW - 10 * d,
        (RULE.name, "HK-Z"): NOW - 150 * d,
    }
    assert prune(influx, episodes, NOW) == 2
    after = {
        k[1]: [e.opened_ms for e in v]
        for k, v in store.read_episodes(influx).items()
        if k[1].startswith("HK-")
    }
    assert after == {
        "HK-X": [NOW - 10 * d, NOW - d],
        "HK-Y": [NOW - 300 * d],
        "HK-Z": [NOW - 150 * d],
    }
    devices = {
        s.tags["device"]
        for s in influx.query(
            f'SELECT "gross_kg" FROM "{m.OPS_OBSERVED.name}" WHERE "site" = \'HK\' GROUP BY "device"',
            db=influx.records_db,
        )
    }
    assert devices == {"HK-S2"}
    # idempotent: again, nothing more goes
    assert (
        prune(
            influx,
            {k: v for k, v in store.read_episodes(influx).items() if k[1].startswith("HK-")},
            NOW,
        )
        == 0
    )
