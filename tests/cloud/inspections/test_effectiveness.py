"""实效达标率: the vectorized rate equals the plain reference on any set of checks."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.inspections.effectiveness import Check, Rate, effectiveness, effectiveness_reference
from cloud.inspections.record import PLACE_KINDS

checks = st.lists(
    st.builds(
        Check,
        kind=st.sampled_from(PLACE_KINDS),
        place=st.sampled_from(["A01", "A02", "WS-0101", "U-001", "P-001", "X"]),
        time_ms=st.integers(0, 20),  # few times: many ties
        id=st.text("0123456789abcdef", min_size=1, max_size=4).map(lambda s: "i-" + s),
        passed=st.booleans(),
    ),
    max_size=60,
    unique_by=lambda c: c.id,  # an id is one point: ids are unique
)


@settings(max_examples=300, deadline=None)
@given(checks)
def test_vectorized_equals_reference(cs: list[Check]) -> None:
    assert effectiveness(cs) == effectiveness_reference(cs)
    assert effectiveness(list(reversed(cs))) == effectiveness(cs)  # storage order does not matter


def test_latest_check_of_a_place_counts_once() -> None:
    cs = [
        Check("area", "A01", 1, "i-1", False),
        Check("area", "A01", 5, "i-2", True),  # latest of A01: passed
        Check("site", "A01", 9, "i-3", False),  # another place (a site), residential too
        Check("unit", "U-001", 3, "i-4", True),
        Check("public_place", "P-001", 4, "i-5", True),
        Check("public_place", "P-001", 7, "i-6", False),  # latest of P-001: not passed
    ]
    r = effectiveness(cs)
    assert r["residential"] == Rate(2, 1) and r["residential"].pct == 50.0
    assert r["unit"] == Rate(1, 1) and r["public"] == Rate(1, 0)
    assert r["all"] == Rate(4, 2) and r["all"].pct == 50.0
    assert effectiveness([])["all"].pct is None  # no place inspected: no rate, not 0 %
