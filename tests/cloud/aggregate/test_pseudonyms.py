"""Pseudonym coding (cloud/aggregate/pseudonyms.py): equal codes exactly for equal strings, -1
for none, and the table gives each string back — whatever the strings are (the contract's form,
upper case, other lengths, non-ASCII, empty), batch by batch."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.aggregate.pseudonyms import PseudonymCoder, parse_canonical

canonical = st.integers(0, 2**128 - 1).map(lambda v: f"r-{v:032x}")
few_canonical = st.sampled_from([f"r-{v:032x}" for v in (0, 1, 2**64, 2**64 + 1, 2**128 - 1)])
odd = st.one_of(
    st.just(""),
    canonical.map(str.upper),
    canonical.map(lambda x: x[:-1]),
    canonical.map(lambda x: x + "0"),
    canonical.map(lambda x: x[:-1] + "é"),
    canonical.map(lambda x: "R" + x[1:]),
    canonical.map(lambda x: x[:10] + "g" + x[11:]),
    st.text(max_size=40),
)
pseudonym = st.one_of(st.none(), canonical, few_canonical, odd)
batches = st.lists(st.lists(pseudonym, max_size=30), max_size=6)


@settings(max_examples=300, deadline=None)
@given(batches)
def test_codes_identify_the_strings(batches: list[list[str | None]]) -> None:
    coder = PseudonymCoder()
    for b in batches:
        coder.add(tuple(b))
    codes, table = coder.codes()
    flat = [x for b in batches for x in b]
    assert codes.tolist() == [-1 if x is None else codes[i] for i, x in enumerate(flat)]
    assert [table[c] if c >= 0 else None for c in codes.tolist()] == flat
    assert len(table) == len({x for x in flat if x is not None}) == len(set(table))


def test_a_canonical_pseudonym_is_its_128_bits() -> None:
    names = ["r-" + "0" * 31 + "1", "r-" + "f" * 32, "r-0123456789abcdef0123456789abcdef"]
    parsed = parse_canonical(names)
    assert parsed is not None
    hi, lo = parsed
    assert [(int(h) << 64) | int(x) for h, x in zip(hi, lo, strict=True)] == [
        int(n[2:], 16) for n in names
    ]
    for bad in (["r-" + "F" * 32], ["r-" + "0" * 31], ["x-" + "0" * 32], ["r-" + "0" * 31 + "é"]):
        assert parse_canonical(bad) is None
    # 32 + 36 characters are 2 × 34, yet neither has the form: each length is checked
    assert parse_canonical(["r-" + "0" * 30, "ab" + "r-" + "0" * 32]) is None


def test_the_same_pseudonym_in_a_canonical_and_a_mixed_batch_is_one_code() -> None:
    coder = PseudonymCoder()
    a = "r-" + "ab" * 16
    coder.add((a, None, a))
    coder.add(("R-" + "AB" * 16, a, ""))  # a mixed batch: coded one by one
    codes, table = coder.codes()
    assert codes.tolist()[:4] == [codes[0], -1, codes[0], codes[3]] and codes[4] == codes[0]
    assert len({codes[0], codes[3], codes[5]}) == 3 and table[codes[0]] == a
