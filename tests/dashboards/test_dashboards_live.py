"""Every dashboard against the live pipeline: readings, status and health measurements published over
MQTT with gateway credentials, ingested by the worker, aggregated by `gumei aggregate run`; each panel's
InfluxQL expanded (macros, template variables) and run on the session's InfluxDB; the key numbers
equal the API's answers over the same scope (the whole district, today in Asia/Shanghai), so whatever
other tests of the session wrote for today, panels and API read the same database at the same time."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud import measurements as m
from cloud.days import DAY_MS, date_of, day_number, day_start_ms
from cloud.influx import InfluxClient, Series
from contract import WasteBatch, WasteReading, encode
from contract.models import HealthBatch, HealthMeasurement, Status
from contract.topics import health_measurements, status, waste_readings
from dashboards import generate as gen
from dashboards import verify
from dashboards.macros import Raw, expand, parse_duration
from tests.support.common import count, gumei, publish, wait_until

# Sites no other test publishes for: area A20 (two stations) and A21 (one).
SITES = {"WS-2001": "A20", "WS-2002": "A20", "WS-2101": "A21"}
DEVICE = {"dry": "S1", "wet": "S2", "recyclable": "S3", "hazardous": "S4"}
KG = {"dry": 3.217, "wet": 5.5, "recyclable": 2.001, "hazardous": 0.25}
HUT = "HH-01"
FULL_KG = 230.0
DRY_BASELINE_T = 0.5
MINE = "/^(WS-2001|WS-2002|WS-2101)$/"


@dataclass(frozen=True)
class Scope:
    """Today (Shanghai) as the test saw it when publishing, and the expected tonnes of its own sites."""

    day: int
    published_ms: int
    grams: dict[tuple[str, str], int]  # (site, category) -> grams published today

    @property
    def date(self) -> str:
        return date_of(self.day).isoformat()

    def end_ms(self) -> int:
        """The dashboard's `now`: the current time, but never past the end of the test's day."""
        return min(int(time.time() * 1000), day_start_ms(self.day + 1) - 1)


def _readings(site: str, now: int, seq0: int) -> tuple[list[WasteReading], dict[str, int]]:
    start = max(day_start_ms(day_number(now)), now - 10 * 60_000)
    out: list[WasteReading] = []
    grams: defaultdict[str, int] = defaultdict(int)
    for k in range(3):  # three deposits per bin, within the last ten minutes of today
        for i, (category, kg) in enumerate(KG.items()):
            net = round(kg * (k + 1) + 0.001 * i, 3)
            ts = min(now, start + 1000 * (4 * k + i))
            resident = "r-" + hashlib.sha256(f"{site}/{k}".encode()).hexdigest()[:32]
            out.append(
                WasteReading(
                    device=f"{site}-{DEVICE[category]}",
                    seq=seq0 + 4 * k + i,
                    ts=ts,
                    category=category,
                    net_kg=net,
                    # WS-2002's dry bin ends over 90 % of its 240 kg: `gumei ops evaluate` opens bin_full
                    gross_kg=FULL_KG
                    if (site, category, k) == ("WS-2002", "dry", 2)
                    else net + 12.0,
                    resident=resident,
                )
            )
            grams[category] += round(net * 1000)
    return out, grams


def _status(site: str, now: int) -> Status:
    devices = [
        {"device": f"{site}-{suffix}", "ok": suffix != "S4", "fill_pct": 40.0 + 10 * j}
        for j, suffix in enumerate(DEVICE.values())
    ]
    return Status.model_validate(
        {
            "schema": "gumei.status.v1",
            "site": site,
            "state": "online",
            "ts": now,
            "buffered": 3,
            "devices": devices,
        }
    )


def _health(now: int, seq0: int) -> HealthBatch:
    """Six residents measure blood pressure and glucose, one of them temperature too: the hut total
    and one type are shown to operators (>= 5 residents), temperature (1) and its complement are not."""
    items = []
    for i in range(6):
        resident = "r-" + f"{i + 10:x}" * 32
        items.append(
            HealthMeasurement(
                device=f"{HUT}-BP",
                seq=seq0 + i,
                ts=now - 9000 + i,
                resident=resident,
                type="blood_pressure",
                values={
                    "systolic_mmhg": 152.0 if i == 0 else 118.0,
                    "diastolic_mmhg": 96.0 if i == 0 else 76.0,
                },
            )
        )
        items.append(
            HealthMeasurement(
                device=f"{HUT}-GLU",
                seq=seq0 + i,
                ts=now - 8000 + i,
                resident=resident,
                type="blood_glucose",
                values={"glucose_mmol_l": 5.4, "meal": "fasting"},
            )
        )
    items.append(
        HealthMeasurement(
            device=f"{HUT}-TEMP",
            seq=seq0,
            ts=now - 7000,
            resident="r-" + "a" * 32,
            type="body_temperature",
            values={"temperature_c": 36.6},
        )
    )
    return HealthBatch(site=HUT, measurements=items)


@pytest.fixture(scope="module")
def grafana_influx(stack) -> Iterator[InfluxClient]:
    """What Grafana's data source may read: the read-only Grafana user (main database only)."""
    with InfluxClient(stack.influx_config("grafana")) as client:
        yield client


@pytest.fixture(scope="module")
def live(stack, ingest_worker, gateway, influx: InfluxClient) -> Scope:
    """Publish today's readings for SITES, a status per site, health measurements and one bad payload;
    wait until stored; aggregate with the CLI."""
    now = int(time.time() * 1000) - 1000
    today = day_number(now)
    seq0 = now * 100  # above anything an earlier run of the same sites used
    grams: dict[tuple[str, str], int] = {}
    clients = {site: gateway(site) for site in [*SITES, HUT]}
    for site in SITES:
        client = clients[site]
        readings, g = _readings(site, now, seq0)
        grams.update({(site, c): v for c, v in g.items()})
        publish(client, waste_readings(site), encode(WasteBatch(site=site, readings=readings)))
        publish(client, status("waste", site), encode(_status(site, now)))
    offline = Status.model_validate(
        {"schema": "gumei.status.v1", "site": "WS-2101", "state": "offline"}
    )
    publish(
        clients["WS-2101"], status("waste", "WS-2101"), encode(offline)
    )  # as its Last Will would, after its online
    publish(
        clients["WS-2001"], waste_readings("WS-2001"), b"not json at all"
    )  # a dead letter for the fleet panels
    # the hut's measurements are dated yesterday: today's HH-01 figures belong to test_health_e2e
    publish(clients[HUT], health_measurements(HUT), encode(_health(now - 86_400_000, seq0)))

    today_mine = f"site =~ {MINE} AND time >= {day_start_ms(today)}ms"
    n = 12 * len(SITES)
    wait_until(
        lambda: (
            count(influx, f"SELECT count(net_kg) FROM {m.WASTE_READING.name} WHERE {today_mine}")
            == n
        ),
        what=f"{n} readings stored",
    )
    wait_until(
        lambda: (
            count(influx, f"SELECT count(online) FROM {m.GATEWAY_STATUS.name} WHERE {today_mine}")
            >= len(SITES) + 1
        ),
        what="gateway status stored",
    )
    wait_until(
        lambda: (
            count(
                influx,
                f"SELECT count(seq) FROM {m.HEALTH_MEASUREMENT.name} WHERE site = '{HUT}' AND seq >= {seq0}",
                influx.health_db,
            )
            == 13
        ),
        what="health stored",
    )
    wait_until(
        lambda: (
            count(
                influx,
                f"SELECT count(entries) FROM {m.QUARANTINE.name} WHERE site = 'WS-2001' AND time >= {now}ms",
            )
            >= 1
        ),
        what="dead letter stored",
    )
    # a worker writes ingest_stats every 5 s; three points fall into two 10 s buckets (rate panels)
    wait_until(
        lambda: (
            count(
                influx,
                f"SELECT count(written) FROM {m.INGEST_STATS.name} WHERE time >= {now - 60_000}ms",
            )
            >= 3
        ),
        timeout=30,
        what="three ingest_stats points",
    )
    # The session's config has no dry-waste baseline and there is no year-earlier data, so the dry
    # change would be null; this run (only) gets a baseline through the environment, so the panel
    # and the API have a number to agree on.
    env = {
        **os.environ,
        "PYTHONWARNINGS": "ignore",
        "GUMEI_TARGETS__DRY_BASELINE_TONNES_PER_DAY": str(DRY_BASELINE_T),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gumei.cli",
            "aggregate",
            "run",
            "--config",
            str(stack.root / "cloud.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the operations evaluator, as a deployment runs it: the full bin opens an event (events panels)
    out = gumei("ops", "evaluate", "--config", str(stack.root / "cloud.toml"))
    assert "bin_full WS-2002-S1" in out.stdout or _bin_full_open(influx), out.stdout
    return Scope(today, now, grams)


def _bin_full_open(influx: InfluxClient) -> bool:
    """Whether bin_full on WS-2002-S1 is open (an evaluator of an earlier pass may have opened it)."""
    from cloud.ops import store

    eps = store.read_episodes(influx, "bin_full", "WS-2002-S1").get(("bin_full", "WS-2002-S1"), [])
    return bool(eps) and eps[-1].active


def _api(api_url: str, token: str, route: str, **params: str) -> Any:
    r = httpx.get(
        f"{api_url}/api/v1/waste/{route}",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()


def _queries(
    name: str, scope: Scope, end: int, last: str | None = None
) -> list[tuple[str, str, str]]:
    """Expanded queries over the dashboard's own range (e.g. now-30d), or the last `last` (e.g. "15m")."""
    doc = gen.load()[name]
    start = end - parse_duration(last or doc["time"]["from"].removeprefix("now-"))
    return verify.panel_queries(doc, VARIABLES.get(name, {}), start, end)


def _panel(name: str, title_part: str, scope: Scope, end: int) -> list[str]:
    found = [q for title, _, q in _queries(name, scope, end) if title_part in title]
    assert found, f"no panel {title_part!r} in {name}"
    return found


VARIABLES: dict[str, dict[str, Any]] = {
    "station": {"area": sorted(set(SITES.values())), "station": list(SITES)},
    "health-hut": {"hut": HUT},
}


# Over the fleet dashboard's 7-day range $__interval is 15m, and a rate (non_negative_derivative of the
# workers' cumulative counters) needs two 15-minute buckets of ingest_stats: a pipeline younger than
# that has none yet. test_fleet_panels_over_the_last_15_minutes checks these panels over a range
# where they have data.
NEEDS_TWO_BUCKETS = {("fleet", "写入速率 Ingestion rate")}
# Nothing is overdue on a pipeline minutes old (the bin_full event opened has 4 h).
NOTHING_OVERDUE = {("fleet", "逾期事件 Overdue events")}


def _empty_panels(influx: InfluxClient, queries: list[tuple[str, str, str]]) -> list[str]:
    empty = []
    for title, ref, query in queries:
        series = influx.query(query)  # an InfluxQL error raises InfluxError with influxd's message
        if not any(s.values for s in series):
            empty.append(f"{title} [{ref}]: {query}")
    return empty


@pytest.mark.parametrize("name", sorted(gen.BUILDERS))
def test_every_panel_query_runs_on_the_live_database(
    live: Scope, grafana_influx: InfluxClient, name: str
) -> None:
    queries = _queries(name, live, live.end_ms())
    assert len({title for title, _, _ in queries}) >= 4
    may_be_empty = {title for dash, title in NEEDS_TWO_BUCKETS | NOTHING_OVERDUE if dash == name}
    empty = _empty_panels(grafana_influx, [q for q in queries if q[0] not in may_be_empty])
    assert not empty, "panels without data on the live pipeline:\n" + "\n".join(empty)


def test_fleet_panels_over_the_last_15_minutes(live: Scope, grafana_influx: InfluxClient) -> None:
    """$__interval is 10s (the data source's minimum) over 15 minutes; three stats points (5 s apart)
    fall into at least two buckets, so the rate panels have a value."""
    queries = _queries("fleet", live, live.end_ms(), last="15m")
    assert all(
        "GROUP BY time(10s)" in q
        for title, _, q in queries
        if title in {t for _, t in NEEDS_TWO_BUCKETS}
    )
    overdue = {t for _, t in NOTHING_OVERDUE}
    empty = _empty_panels(grafana_influx, [q for q in queries if q[0] not in overdue])
    assert not empty, "fleet panels without data over 15 minutes:\n" + "\n".join(empty)


def test_variable_queries_offer_the_published_sites(live: Scope, influx: InfluxClient) -> None:
    end = live.end_ms()
    doc = gen.load()["station"]
    values = {}
    for name, query in verify.variable_queries(doc):
        expanded = expand(query, end - 7 * DAY_MS, end, {"area": Raw(".*")})
        values[name] = {str(row[1]) for s in influx.query(expanded) for row in s.values}
    assert set(SITES.values()) <= values["area"]
    assert set(SITES) <= values["station"]


def _by_category(series: list[Series]) -> dict[str, float]:
    return {s.tags["category"]: s.values[0][1] for s in series if s.values}


def test_todays_tonnes_per_category_equal_the_api(
    live: Scope, influx: InfluxClient, api_url: str, operator_token: str
) -> None:
    end = live.end_ms()
    (query,) = _panel("waste-overview", "Today's tonnes by category", live, end)
    panel = _by_category(influx.query(query))
    site_rows = _api(api_url, operator_token, "daily", start=live.date, end=live.date)["rows"]
    district = _api(
        api_url, operator_token, "daily", start=live.date, end=live.date, group="district"
    )["rows"]
    api: dict[str, float] = defaultdict(float)
    for r in site_rows:
        api[r["category"]] += r["tonnes"]
    assert set(panel) == set(api) == set(KG)
    assert panel == pytest.approx(api, abs=1e-9)
    assert panel == pytest.approx(
        {r["category"]: r["tonnes"] for r in district if r["category"] != "all"}, abs=1e-9
    )
    # this test's own sites are in the API exactly as published (to the gram)
    mine = {
        (r["site"], r["category"]): round(r["tonnes"] * 1_000_000)
        for r in site_rows
        if r["site"] in SITES
    }
    assert mine == live.grams
    assert all(r["area"] == SITES[r["site"]] for r in site_rows if r["site"] in SITES)

    (gauge,) = _panel("waste-overview", "Recyclables today", live, end)
    assert influx.query(gauge)[0].values[0][1] == pytest.approx(api["recyclable"], abs=1e-9)
    (trend,) = _panel("waste-overview", "Daily tonnes per category", live, end)
    today_bucket = {
        s.tags["category"]: v
        for s in influx.query(trend)
        for t, v in s.values
        if t == day_start_ms(live.day)
    }
    assert today_bucket == pytest.approx(api, abs=1e-9)


def test_station_panels_equal_the_api_for_the_published_sites(
    live: Scope, influx: InfluxClient, api_url: str, operator_token: str
) -> None:
    end = live.end_ms()
    (daily,) = _panel("station", "Daily tonnes", live, end)
    got = {
        s.tags["category"]: v
        for s in influx.query(daily)
        for t, v in s.values
        if t == day_start_ms(live.day)
    }
    expected: dict[str, float] = defaultdict(float)
    for r in _api(api_url, operator_token, "daily", start=live.date, end=live.date)["rows"]:
        if r["site"] in SITES:
            expected[r["category"]] += r["tonnes"]
    assert got == pytest.approx(expected, abs=1e-9)
    (deposits,) = _panel("station", "Deposits over time", live, end)
    assert sum(v for s in influx.query(deposits) for _, v in s.values) == 12 * len(SITES)


def test_target_panels_equal_the_api(
    live: Scope, influx: InfluxClient, api_url: str, operator_token: str
) -> None:
    end = live.end_ms()
    targets = _api(api_url, operator_token, "targets", date=live.date)
    district = _api(
        api_url, operator_token, "daily", start=live.date, end=live.date, group="district"
    )["rows"]
    recyclable = next(r["tonnes"] for r in district if r["category"] == "recyclable")
    assert targets["recyclables"]["tonnes"] == pytest.approx(recyclable, abs=1e-9)

    (sorting,) = _panel("waste-overview", "Sorting effectiveness", live, end)
    ((t, pct),) = influx.query(sorting)[0].values
    assert day_number(t) == live.day  # the newest target point is today's
    assert pct == pytest.approx(targets["sorting"]["pct"], abs=1e-9)

    # The per-day target panel: today's bucket carries today's values (or none where the API has none).
    (per_day,) = _panel("waste-overview", "Targets per day", live, end)
    (s,) = influx.query(per_day)
    row = dict(
        zip(s.columns, next(v for v in s.values if v[0] == day_start_ms(live.day)), strict=True)
    )
    assert row["sorting_pct"] == pytest.approx(targets["sorting"]["pct"], abs=1e-9)
    assert row["dry_change_pct"] == pytest.approx(targets["dry_waste"]["change_pct"], abs=1e-9)

    dry_api = targets["dry_waste"]
    assert (dry_api["reference"], dry_api["reference_tonnes_per_day"]) == (
        "baseline",
        DRY_BASELINE_T,
    )
    (dry,) = _panel("waste-overview", "Dry waste change", live, end)
    ((t, change),) = influx.query(dry)[0].values
    assert day_number(t) == live.day
    assert change == pytest.approx(dry_api["change_pct"], abs=1e-9)
    assert change == pytest.approx((dry_api["tonnes_per_day"] / DRY_BASELINE_T - 1) * 100, abs=1e-6)


def test_fleet_and_health_panels_see_the_published_messages(
    live: Scope, grafana_influx: InfluxClient
) -> None:
    end = live.end_ms()
    found_sites = {
        s.tags.get("site")
        for _, _, query in _queries("fleet", live, end)
        for s in grafana_influx.query(query)
    }
    assert set(SITES) <= found_sites, f"fleet panels miss {set(SITES) - found_sites}"
    health = {title: q for title, _, q in _queries("health-hut", live, end)}
    assert any(s.values for q in health.values() for s in grafana_influx.query(q))
    # the hut-day: total and blood pressure shown; temperature (1 resident) and glucose (its complement) not
    by_type = next(q for t, q in health.items() if "Measurements by type" in t)
    assert "blood_pressure" in {
        s.tags["type"] for s in grafana_influx.query(by_type) if any(v[1] for v in s.values)
    }
    hidden = next(q for t, q in health.items() if "Suppressed cells" in t)
    assert grafana_influx.query(hidden)[0].values[0][1] >= 2


def test_render_cli_draws_every_dashboard_from_the_live_database(
    live: Scope, stack, tmp_path: Path
) -> None:
    to = dt.datetime.fromtimestamp(
        live.end_ms() / 1000, dt.timezone(dt.timedelta(hours=8))
    ).strftime("%Y-%m-%dT%H:%M:%S")
    out = gumei(
        "dashboards",
        "render",
        "--config",
        str(stack.root / "cloud.toml"),
        "--out",
        str(tmp_path),
        "--var",
        "area=A20,A21",
        "--var",
        "station=WS-2001,WS-2002,WS-2101",
        "--var",
        f"hut={HUT}",
        "--to",
        to,
    )
    written = sorted(Path(line) for line in out.stdout.split())
    assert written == sorted(tmp_path / f"{n}.png" for n in gen.BUILDERS)
    assert all(
        p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 20_000 for p in written
    )


def test_reconciliation_panels_equal_the_api(
    live: Scope, influx: InfluxClient, api_url: str, operator_token: str
) -> None:
    """No weighbridge sees this test's areas: the scales' tonnes, as published, against nothing —
    the gap a silent weighbridge (or loads never ticketed) shows — in the panel and the API alike."""
    end = live.end_ms()
    (table,) = _panel("waste-overview", "Areas: scales vs weighbridge", live, end)
    panel = {
        s.tags["area"]: dict(zip(s.columns, s.values[0], strict=True))
        for s in influx.query(table)
        if s.values
    }
    rows = _api(
        api_url, operator_token, "reconciliation", start=live.date, end=live.date, category="all"
    )["rows"]
    api = {r["area"]: r for r in rows}
    for area in sorted(set(SITES.values())):
        grams = sum(g for (site, _), g in live.grams.items() if SITES[site] == area)
        assert api[area]["scale_g"] == grams
        assert api[area]["weighbridge_g"] == 0 and api[area]["diff_g"] == -grams
        assert api[area]["diff_pct"] == -100.0
        assert panel[area]["scale_tonnes"] == pytest.approx(grams / 1e6, abs=1e-9)
        assert panel[area]["diff_tonnes"] == pytest.approx(-grams / 1e6, abs=1e-9)
    (trend,) = _panel("waste-overview", "Weighbridge minus station scales", live, end)
    today = {
        s.tags["category"]: v
        for s in influx.query(trend)
        for t, v in s.values
        if t == day_start_ms(live.day)
    }
    district = {r["category"]: r["diff_tonnes"] for r in rows if r["area"] == "all"}
    assert set(today) <= set(KG)
    for cat, v in today.items():
        assert v == pytest.approx(
            next(
                r["diff_tonnes"]
                for r in _api(
                    api_url,
                    operator_token,
                    "reconciliation",
                    start=live.date,
                    end=live.date,
                    area="all",
                    category=cat,
                )["rows"]
            ),
            abs=1e-9,
        )
    assert set(today) == set(KG)  # every category of the district, today
    assert district["all"] == pytest.approx(sum(today.values()), abs=1e-6)


def test_sorting_comparison_panel_equals_the_api(
    live: Scope, influx: InfluxClient, api_url: str, operator_token: str
) -> None:
    """The per-area table of scale sorting standard vs inspection shows what the API answers."""
    (table,) = _panel("waste-overview", "scale sorting standard vs inspection", live, live.end_ms())
    panel = {
        s.tags["area"]: dict(zip(s.columns, s.values[0], strict=True))
        for s in influx.query(table)
        if s.values
    }
    rows = _api(api_url, operator_token, "sorting-comparison", start=live.date, end=live.date)
    api = {r["area"]: r for r in rows["rows"]}
    assert set(SITES.values()) <= set(api)
    for area in sorted(set(SITES.values())):
        assert api[area]["scale_data"] is True  # this test's stations published in the area
        for field in ("scale_meets", "inspected", "disagree", "status"):
            assert panel[area][field] == api[area][field], (area, field)
