"""The scale-based sorting indicator vs the inspection result per area (sorting_gap.py) against a
plain Python reference (hypothesis): random scale rows, checks inside and around the window,
several checks of one area, ties in time, areas the registry does not know."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.aggregate import encode
from cloud.aggregate.sorting_gap import area_checks, compare_sorting, compare_sorting_reference

LO, HI = 1_000, 2_000


@st.composite
def cases(draw: st.DrawFn) -> tuple[int, dict[int, bool], list[tuple[int, int, str, bool]]]:
    n_areas = draw(st.integers(1, 8))
    scale = draw(st.dictionaries(st.integers(0, n_areas - 1), st.booleans()))
    checks = draw(
        st.lists(
            st.tuples(
                st.integers(0, n_areas + 1),  # areas >= n_areas are not in the registry
                st.sampled_from([LO - 1, LO, LO + 1, 1_500, HI - 1, HI, HI + 5]),
                st.sampled_from([f"i-{k:020x}" for k in range(40)]),
                st.booleans(),
            ),
            max_size=30,
            unique_by=lambda c: c[2],  # an inspection id names one check
        )
    )
    return n_areas, scale, checks


@settings(max_examples=300, deadline=None)
@given(cases())
def test_compare_sorting_equals_the_reference(
    case: tuple[int, dict[int, bool], list[tuple[int, int, str, bool]]],
) -> None:
    n_areas, scale, checks = case
    areas = [f"A{i:02d}" for i in range(n_areas)]
    has = np.array([a in scale for a in range(n_areas)], dtype=np.bool_)
    meets = np.array([scale.get(a, False) for a in range(n_areas)], dtype=np.bool_)
    cols = area_checks(areas, [(f"A{a:02d}", t, i, p) for a, t, i, p in checks])
    got = compare_sorting(has, meets, cols, LO, HI)
    known = [c for c in checks if c[0] < n_areas]
    want = compare_sorting_reference(scale, known, n_areas, LO, HI)
    for a, w in enumerate(want):
        g = (
            bool(got.scale_row[a]),
            bool(got.scale_meets[a]),
            bool(got.inspected[a]),
            bool(got.passed[a]),
            int(got.latest_ms[a]),
            bool(got.disagree[a]),
        )
        assert g == w, (a, g, w)


def test_lines_say_agree_disagree_or_not_inspected() -> None:
    areas = ["A01", "A02", "A03", "A04"]
    has = np.array([True, True, False, True])
    meets = np.array([True, False, False, True])
    cols = area_checks(
        areas,
        [
            ("A01", 1_100, "i-01", True),  # meets, passed: agree
            ("A02", 1_100, "i-02", True),  # below the standard, passed: disagree
            ("A03", 1_200, "i-03", True),  # silent area (no row), passed: disagree
            ("A03", 1_100, "i-04", False),  # an earlier failing check of A03
            ("A09", 1_100, "i-05", False),  # not a registry area: left out
        ],
    )
    got = compare_sorting(has, meets, cols, LO, HI)
    lines = encode.sorting_comparison_lines(0, got, areas, range(4))
    rows = {ln.split(",area=")[1].split(" ")[0]: ln for ln in lines}
    status = [rows[a].split('status="')[1].split('"')[0] for a in areas]
    assert status == ["agree", "disagree", "disagree", "not_inspected"]
    assert "inspection_ms=1200i" in rows["A03"] and "scale_data=false" in rows["A03"]
    assert "inspection_passed" not in rows["A04"] and "scale_meets=true" in rows["A04"]
    assert all(ln.startswith("waste_sorting_comparison,area=") for ln in lines)
