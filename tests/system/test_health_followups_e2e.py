"""Follow-ups end to end on the real pipeline: simulated visits on four days (instruments -> socket
frames -> edge decoding and card sessions -> durable queue -> MQTT as HH-01 -> ingestion worker ->
InfluxDB) -> the aggregator's health pass -> the expected tiers, one follow-up per resident and
reason, overdue after the due day (clock injected), k-suppressed counts, the API's worklist.

Its own historic days (2021-03-08..11) and a fresh district key: no other test's hut-days,
residents or follow-ups are touched (the dashboards' live fixtures use yesterday and today)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import random
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from cloud import measurements as m
from cloud.aggregate.runner import Aggregator
from cloud.health.followups import FollowUp
from cloud.health.triage import triage
from cloud.health.worklist import health_pass, update_counts, worklist
from cloud.influx import InfluxClient
from cloud.registry import Registry
from contract import pseudonymize
from contract.days import day_start_ms, number_of
from devstack.stack import LocalStack
from edge.ble.transport import SocketTransport
from edge.health_session import SessionTracker
from edge.hut import HutAgent, HutStats
from edge.publisher import Publisher
from edge.queue import DurableQueue
from firmware_sim.health import HealthHutSim, Truth, make_residents, measure
from tests.support.common import count, wait_until

SITE = "HH-01"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
DAYS = [dt.date(2021, 3, 8) + dt.timedelta(days=i) for i in range(4)]


def healthy(t: Truth) -> Truth:
    """A visit with every value normal (the simulator's draw may be anything)."""
    height = t.height_cm
    weight = round(22.0 * (height / 100) ** 2 * 200) / 200
    return dataclasses.replace(
        t,
        systolic=118,
        diastolic=76,
        mean_arterial=90.0,
        weight_kg=weight,
        bmi=round(weight / (height / 100) ** 2, 1),
        temperature_c=36.6,
        glucose_mmol_l=5.2,
        meal="fasting",
        spo2=97,
    )


@dataclasses.dataclass
class Run:
    """What was sent (pseudonym -> [(day, type, values)]) and who is who."""

    sent: dict[str, list[tuple[dt.date, str, dict[str, Any]]]]
    who: dict[str, str]  # "a".."d" -> pseudonym


@pytest.fixture(scope="module")
def run(
    stack: LocalStack,
    ingest_worker: Any,
    influx: InfluxClient,
    registry: Registry,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Run]:
    key = os.urandom(16)
    rng = random.Random(14)
    people = make_residents(4, seed=14)
    who = {name: pseudonymize(key, p.card) for name, p in zip("abcd", people, strict=True)}
    plan: dict[int, list[tuple[int, Truth]]] = {i: [] for i in range(len(DAYS))}

    def visit(day: int, person: int, **changes: Any) -> None:
        plan[day].append(
            (person, dataclasses.replace(healthy(measure(people[person], rng)), **changes))
        )

    # a: raised home BP on 3 different days -> suspected hypertension (refer) on the third
    for d in range(3):
        visit(d, 0, systolic=150, diastolic=88, mean_arterial=108.7)
    # b: 190/100 -> urgent at once; a raised reading later joins the same follow-up
    visit(1, 1, systolic=190, diastolic=100, mean_arterial=130.0)
    visit(3, 1, systolic=150, diastolic=86, mean_arterial=107.3)
    # c: random 9.0 is never judged by the fasting cut-off; fasting 7.5 refers
    visit(0, 2, glucose_mmol_l=9.0, meal="random")
    visit(2, 2, glucose_mmol_l=7.5, meal="fasting")
    # d: two raised BP days only, and everything else normal: no follow-up
    visit(0, 3, systolic=140, diastolic=80, mean_arterial=100.0)
    visit(3, 3, systolic=138, diastolic=82, mean_arterial=100.7)

    clock = [0]  # the gateway's clock, set to each simulated visit (sessions are timed by it)
    # The queue's clock starts every device's seq at 1000: tests/dashboards/test_dashboards_live.py
    # counts HH-01 points with seq >= now x 100, and a queue on the real clock starts at now x 1000.
    queue = DurableQueue.open(
        tmp_path_factory.mktemp("hut-followups") / "queue.db", clock=lambda: 1
    )
    publisher = Publisher(stack.endpoint(SITE), SITE, "health", queue)
    publisher.start()
    sent: dict[str, list[tuple[dt.date, str, dict[str, Any]]]] = {p: [] for p in who.values()}
    with HealthHutSim(SITE, seed=14) as hut:
        sources = {d: SocketTransport(*addr) for d, addr in hut.endpoints().items()}
        agent = HutAgent(
            sources,
            hut.card_reader,
            SessionTracker(key, timeout_s=600, clock=lambda: clock[0]),
            queue.put,
            publisher.notify,
        )
        agent.start()
        assert hut.wait_connected()
        notified = 0

        def handled(n: int) -> Callable[[HutStats], bool]:
            return lambda s: s.notifications >= n

        for d, visits in plan.items():
            for k, (person, truth) in enumerate(visits):
                when = dt.datetime.combine(DAYS[d], dt.time(9, 10 * k))
                clock[0] = int(when.replace(tzinfo=SHANGHAI).timestamp() * 1000)
                hut.tap(people[person].card)
                notified += 1
                assert agent.wait_for(handled(notified), 10)
                v = hut.visit(None, when, truth)
                notified += len(v.sent)
                assert agent.wait_for(handled(notified), 10)
                agent.flush()
                agent.tracker.end()
                for s in v.sent:
                    if s.expected is not None:
                        sent[who["abcd"[person]]].append((DAYS[d], *s.expected))
        agent.stop()
    try:
        total = sum(len(x) for x in sent.values())
        wait_until(
            lambda: len(queue) == 0 and publisher.stats.entries_acked >= total, what="delivery"
        )
    finally:
        publisher.stop()
        queue.close()
    lo, hi = day_start_ms(number_of(DAYS[0])), day_start_ms(number_of(DAYS[-1]) + 1)
    wait_until(
        lambda: (
            count(
                influx,
                f"SELECT count(seq) FROM {m.HEALTH_MEASUREMENT.name} WHERE time >= {lo}ms AND time < {hi}ms",
                influx.health_db,
            )
            >= total
        ),
        what="the measurements in InfluxDB",
    )
    with InfluxClient(stack.influx_config("aggregate")) as agg:
        Aggregator(agg, registry).run_incremental()  # the markers of these days: the health pass
    yield Run(sent, who)


def _mine(influx: InfluxClient, run: Run) -> dict[tuple[str, str], FollowUp]:
    return {(f.resident, f.reason): f for f in worklist(influx) if f.resident in run.who.values()}


def test_stored_tiers_are_the_triage_of_what_was_measured(run: Run, influx: InfluxClient) -> None:
    lo, hi = day_start_ms(number_of(DAYS[0])), day_start_ms(number_of(DAYS[-1]) + 1)
    q = f'SELECT "resident", "tier", "flag" FROM {m.HEALTH_MEASUREMENT.name} WHERE time >= {lo}ms AND time < {hi}ms GROUP BY "type"'
    stored: dict[str, list[tuple[str, str]]] = {}
    for s in influx.query(q, db=influx.health_db):
        for _, resident, tier, _flag in s.values:
            if resident in run.sent:
                stored.setdefault(resident, []).append((s.tags["type"], tier))
    for resident, sent in run.sent.items():
        want = sorted((t, triage(t, values).tier) for _, t, values in sent)
        assert sorted(stored[resident]) == want
    a_bp = [tier for t, tier in stored[run.who["a"]] if t == "blood_pressure"]
    assert a_bp == ["recheck"] * 3  # one reading never refers: the 3-day rule does (below)
    assert ("blood_pressure", "urgent") in stored[run.who["b"]]
    assert sorted(tier for t, tier in stored[run.who["c"]] if t == "blood_glucose") == [
        "normal",
        "refer",
    ]


def test_one_followup_per_resident_and_reason(run: Run, influx: InfluxClient) -> None:
    got = _mine(influx, run)
    a, b, c = run.who["a"], run.who["b"], run.who["c"]
    assert set(got) == {(a, "hypertension"), (b, "hypertension"), (c, "hyperglycaemia")}
    assert (got[(a, "hypertension")].tier, got[(a, "hypertension")].codes) == (
        "refer",
        ["suspected_hypertension"],
    )
    assert got[(a, "hypertension")].due == DAYS[2] + dt.timedelta(days=14)
    urgent = got[(b, "hypertension")]
    assert (urgent.tier, urgent.due, urgent.readings) == (
        "urgent",
        DAYS[1],
        2,
    )  # the later reading joined
    assert got[(c, "hyperglycaemia")].due == DAYS[2] + dt.timedelta(days=14)


def test_overdue_after_the_due_day_with_an_injected_clock(run: Run, influx: InfluxClient) -> None:
    got = _mine(influx, run)
    a, b = run.who["a"], run.who["b"]
    status = lambda key, day: got[key].status(day)  # noqa: E731
    assert status((b, "hypertension"), DAYS[1]) == "open"  # urgent: due the same day
    assert status((b, "hypertension"), DAYS[2]) == "overdue"
    due = DAYS[2] + dt.timedelta(days=14)
    assert status((a, "hypertension"), due) == "open"
    assert status((a, "hypertension"), due + dt.timedelta(days=1)) == "overdue"


def test_reprocessing_writes_the_same_points(
    run: Run, influx: InfluxClient, stack: LocalStack
) -> None:
    q = f'SELECT count("tier") FROM {m.HEALTH_FOLLOWUP.name} WHERE ' + " OR ".join(
        f"\"resident\" = '{p}'" for p in run.who.values()
    )
    before = count(influx, q, influx.health_db)
    with InfluxClient(stack.influx_config("aggregate")) as agg:
        health_pass(agg, [number_of(d) for d in DAYS], DAYS[-1])
        health_pass(agg, [number_of(d) for d in DAYS], DAYS[-1])
    assert count(influx, q, influx.health_db) == before > 0
    assert set(_mine(influx, run)) == {
        (run.who["a"], "hypertension"),
        (run.who["b"], "hypertension"),
        (run.who["c"], "hyperglycaemia"),
    }


def test_counts_are_k_suppressed_for_operators(
    run: Run, influx: InfluxClient, stack: LocalStack, api_url: str, operator_token: str
) -> None:
    with InfluxClient(stack.influx_config("aggregate")) as agg:
        update_counts(
            agg, DAYS[-1], k=5
        )  # the clock set to the last visit day: these 3 residents only
    r = httpx.get(
        api_url + "/api/v1/health/followup-counts",
        params={"start": DAYS[-1].isoformat(), "end": DAYS[-1].isoformat()},
        headers={"Authorization": f"Bearer {operator_token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    rows = {(x["state"], x["reason"]): x for x in r.json()["rows"]}
    assert rows[("open", "all")] == {
        "date": DAYS[-1].isoformat(),
        "state": "open",
        "reason": "all",
        "followups": None,
        "suppressed": True,
    }
    assert rows[("closed_week", "all")]["followups"] == 0  # no follow-up closed: a shown zero
    with InfluxClient(stack.influx_config("aggregate")) as agg:
        update_counts(agg, DAYS[-1], k=1)  # exact: 3 open, 1 of them overdue (b's urgent)
    r = httpx.get(
        api_url + "/api/v1/health/followup-counts",
        params={"start": DAYS[-1].isoformat(), "end": DAYS[-1].isoformat()},
        headers={"Authorization": f"Bearer {operator_token}"},
        timeout=30,
    )
    rows = {(x["state"], x["reason"]): x for x in r.json()["rows"]}
    assert rows[("open", "all")]["followups"] == 3 and rows[("overdue", "all")]["followups"] == 1
    assert rows[("open", "hypertension")]["followups"] == 2


def test_the_health_api_lists_them_overdue_today(run: Run, api_url: str, stack: LocalStack) -> None:
    token = stack.tokens().create("follow-up e2e", "health")
    r = httpx.get(
        api_url + "/api/v1/health/followups",
        params={"status": "all"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    mine = [f for f in r.json()["followups"] if f["resident"] in run.who.values()]
    assert len(mine) == 3 and all(
        f["status"] == "overdue" for f in mine
    )  # 2021's due days, today's clock
