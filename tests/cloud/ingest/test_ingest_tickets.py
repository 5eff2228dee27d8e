"""The planner on weighbridge tickets (no services): exact integer lines, idempotent point identity,
registry checks, wrong kinds both ways, and no input that makes it raise."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud import registry as r
from cloud.days import day_number
from cloud.ingest.handler import BatchPlanner, Message
from contract.models import TICKETS_SCHEMA

NOW = 1_764_201_600_000
WB = "WB-01"


@pytest.fixture(scope="module")
def planner() -> BatchPlanner:
    reg = r.add_device(r.add_site(r.load(), WB, "A07", "地磅", 31.15, 121.40), f"{WB}-B1", "serial")
    return BatchPlanner(reg)


def ticket(n: int = 7, **change: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "device": f"{WB}-B1",
        "ticket": n,
        "ts": NOW - 1000,
        "gross_ts": NOW - 600_000,
        "plate": "沪A12345",
        "category": "recyclable",
        "subcategory": "textile",
        "source_area": "A07",
        "gross_g": 15_000_001,
        "tare_g": 9_000_000,
        "net_g": 6_000_001,
        "tare_source": "weighed",
    }
    return {**doc, **change}


def msg(*tickets: dict[str, object], site: str = WB, channel: str = "tickets") -> Message:
    body = {"schema": TICKETS_SCHEMA, "site": site, "tickets": list(tickets)}
    return Message(
        f"gumei/v1/waste/{site}/{channel}", json.dumps(body, ensure_ascii=False).encode()
    )


def test_a_ticket_is_one_exact_point_and_a_redelivery_the_same_point(
    planner: BatchPlanner,
) -> None:
    plan = planner.plan_batch([msg(ticket()), msg(ticket())], now_ms=NOW)
    assert plan.quarantine == [] and plan.readings == 2
    first, again = plan.lines
    assert first == again
    assert first.startswith(
        "weighbridge_ticket,category=recyclable,device=WB-01-B1,site=WB-01,"
        "source_area=A07,subcategory=textile "
    )
    assert (
        "net_g=6000001i" in first and "gross_g=15000001i" in first and 'plate="沪A12345"' in first
    )
    assert first.endswith(f" {(NOW - 1000) * 1_000_000 + 7}")
    dry = planner.plan_batch([msg(ticket(8, category="dry", subcategory=None))], now_ms=NOW)
    assert "subcategory" not in dry.lines[0]
    # one day marker per (day, weighbridge): the aggregator recomputes that day's official figures
    assert dry.days == {(day_number(NOW - 1000), "WB-01"): 1}


def test_registry_checks_and_wrong_kinds(planner: BatchPlanner) -> None:
    plan = planner.plan_batch(
        [
            msg(ticket(1), ticket(2, source_area="A77"), ticket(3, device=f"{WB}-B2")),
            msg(ticket(4, device="WS-0101-S1"), site="WS-0101"),  # a station posting tickets
            msg(ticket(5), channel="readings"),  # a weighbridge posting "readings"
            msg(ticket(6, ts=NOW - 100 * 86_400_000, gross_ts=0)),
        ],
        now_ms=NOW,
    )
    assert plan.readings == 1
    assert [q.code for q in plan.quarantine] == [
        "unknown_area",
        "unknown_device",
        "wrong_kind",
        "wrong_kind",
        "too_old",
    ]


json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
fields = st.fixed_dictionaries(
    {}, optional={k: json_value | st.just(v) for k, v in ticket().items()}
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(fields, min_size=1, max_size=4), st.binary(max_size=64))
def test_any_ticket_payload_ends_as_points_or_dead_letters(
    planner: BatchPlanner, entries: list[dict[str, object]], noise: bytes
) -> None:
    messages = [
        Message(
            f"gumei/v1/waste/{WB}/tickets",
            json.dumps(
                {"schema": TICKETS_SCHEMA, "site": WB, "tickets": entries}, default=str
            ).encode(),
        ),
        Message(f"gumei/v1/waste/{WB}/tickets", noise),
    ]
    plan = planner.plan_batch(messages, now_ms=NOW)
    assert plan.internal_errors == 0
    assert plan.readings + sum(q.entries for q in plan.quarantine) >= 1
    for line in plan.lines:
        assert line.startswith("weighbridge_ticket,") and "\n" not in line
