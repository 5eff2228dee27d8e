"""encode.site_lines writes exactly the lines the generic `line` writes (it formats each series
key and day once instead of per row)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud import measurements as m
from cloud.aggregate.encode import site_lines
from cloud.aggregate.tonnage import DailyTotals, mg_to_grams, mg_to_tonnes
from cloud.days import day_start_ms
from cloud.lineproto import line
from contract import CATEGORIES

SITES = ["WS-0101", "WS 02,a=b", "站-3", "WS-0404"]  # names that need escaping too
AREA = {"WS-0101": "A01", "WS 02,a=b": "A 02", "站-3": "A03", "WS-0404": "A01"}

rows = st.lists(
    st.tuples(
        st.integers(20_000, 20_010),  # day
        st.integers(0, len(SITES) - 1),
        st.integers(0, len(CATEGORIES) - 1),
        st.integers(-(10**15), 10**15),  # net_mg, negative too (a correction)
        st.integers(1, 10**6),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(rows)
def test_site_lines_equal_the_generic_lines(data: list[tuple[int, int, int, int, int]]) -> None:
    cols = [np.array([r[k] for r in data], dtype=np.int64) for k in range(5)]
    t = DailyTotals(*cols)
    want = [
        line(
            m.WASTE_DAILY.name,
            {"site": SITES[s], "area": AREA[SITES[s]], "category": CATEGORIES[c]},
            {"tonnes": mg_to_tonnes(mg), "net_g": mg_to_grams(mg), "net_mg": mg, "deposits": n},
            day_start_ms(d) * 1_000_000,
        )
        for d, s, c, mg, n in data
    ]
    assert site_lines(t, SITES, AREA) == want
