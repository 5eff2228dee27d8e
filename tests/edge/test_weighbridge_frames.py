"""The XK3190 continuous-output decoder: manual examples, captured frames, garbled and partial input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.errors import FrameError
from edge.weighbridge.xk3190 import (
    Xk3190Framer,
    encode_eq,
    encode_tf0,
    frames_of,
    parse_eq,
    parse_tf0,
    xor_check,
)

KG, T = 1000, 1_000_000


def tf0(body: bytes) -> bytes:
    return b"\x02" + body + xor_check(body) + b"\x03"


@pytest.mark.parametrize(
    ("raw", "unit_g", "grams"),
    [
        # frames quoted from an A9 indicator's debug log in public code: checksum 1C / 13 check out
        (b"\x02+00326001C\x03", KG, 3_260_000),
        (b"\x02+003290013\x03", KG, 3_290_000),  # 003290, 0 decimals: 3290 kg
        (tf0(b"+0125403"), T, 12_540_000),  # 012540 with 3 decimals: 12.540 t
        (tf0(b"-0000200"), KG, -20_000),
        (tf0(b"+0523404"), T, 5_234_000),  # 052340 with 4 decimals: 5.2340 t
    ],
)
def test_tf0_frames(raw: bytes, unit_g: int, grams: int) -> None:
    assert parse_tf0(raw, unit_g) == grams


def test_tf0_checksum_is_upper_case_hex_of_bytes_2_to_9() -> None:
    # manual: nibble <= 9 -> +30h, > 9 -> +37h: 0x1C is sent as '1' 'C'
    assert xor_check(b"+0032600") == b"1C"
    assert encode_tf0(3_260_000, KG, 0) == b"\x02+00326001C\x03"


def test_eq_frames_from_the_manual() -> None:
    # A26 manual: 3.000 is sent as =000.3000, -1.00 as =00.1000-
    assert parse_eq(b"=000.3000", KG) == 3000
    assert parse_eq(b"=00.1000-", KG) == -1000
    assert encode_eq(3000, KG, 3) == b"=000.3000"
    assert encode_eq(-1000, KG, 2) == b"=00.1000-"
    assert parse_eq(b"=00052000", KG) == 25_000_000  # 0025000 reversed: 25000 kg, no point


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x02+003260\x03", "truncated"),
        (b"\x02+00326001C\x03\x03", "too_long"),
        (b"\x01+00326001C\x03", "bad_delimiter"),
        (b"\x02+00326001D\x03", "bad_checksum"),
        (b"\x02+00326001c\x03", "bad_checksum"),  # lower case is not what the manual sends
        (tf0(b" 0032600"), "bad_sign"),
        (tf0(b"+00A2600"), "bad_number"),
        (tf0(b"+0032605"), "bad_decimals"),
    ],
)
def test_bad_tf0_frames(raw: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as err:
        parse_tf0(raw, KG)
    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"=000.300", "truncated"),
        (b"=000.30001", "too_long"),
        (b"=000.300+", "bad_sign"),
        (b"=00..3000", "bad_number"),
        (b"=0A0.3000", "bad_number"),
        (b"=.0003000", "bad_number"),
    ],
)
def test_bad_eq_frames(raw: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as err:
        parse_eq(raw, KG)
    assert err.value.reason == reason


def test_sub_gram_values_are_refused() -> None:
    with pytest.raises(FrameError) as err:
        parse_tf0(tf0(b"+0000014"), KG)  # 0.0001 kg = 0.1 g
    assert err.value.reason == "sub_gram"


@given(st.integers(-999_999, 999_999), st.integers(0, 3), st.sampled_from([KG, T]))
def test_tf0_round_trip(counts: int, decimals: int, unit_g: int) -> None:
    grams = counts * unit_g // 10**decimals
    if grams * 10**decimals != counts * unit_g:
        return
    assert parse_tf0(encode_tf0(grams, unit_g, decimals), unit_g) == grams


@given(st.integers(-99_999, 99_999), st.integers(0, 3))
def test_eq_round_trip(counts: int, decimals: int) -> None:
    grams = counts * KG // 10**decimals
    if len(str(abs(counts))) + (1 if decimals else 0) > 7:
        return
    assert parse_eq(encode_eq(grams, KG, decimals), KG) == grams


@pytest.mark.parametrize("mode", ["tf0", "eq"])
def test_framer_resynchronises_after_garbled_and_partial_frames(mode: str) -> None:
    good = [1_000_000, 2_000_000, 3_000_000, 4_000_000]
    stream = frames_of(good, mode)  # type: ignore[arg-type]
    n = len(stream) // 4
    cut = stream[n // 2 :]  # starts mid-frame (the port was opened mid-frame)
    broken = stream[: n - 3] + stream[n:]  # frame 0 loses its tail: frame 1 must survive
    garbage = b"\xff\x00noise" + stream[2 * n :]
    framer = Xk3190Framer(mode=mode)  # type: ignore[arg-type]
    assert framer.feed(cut) == good[1:]
    assert framer.stats.resyncs == 1 and framer.stats.malformed_total == 0
    assert framer.feed(broken) == good[1:]
    assert framer.stats.malformed["truncated"] == 1
    assert framer.feed(garbage) == good[2:]
    assert framer.stats.malformed["garbage"] == 1
    assert framer.stats.frames == 3 + 3 + 2


def test_framer_byte_by_byte_equals_whole() -> None:
    stream = frames_of([5_000_000, -20_000, 0, 12_340_000], "tf0")
    framer = Xk3190Framer()
    got = [w for b in stream for w in framer.feed(bytes([b]))]
    assert got == [5_000_000, -20_000, 0, 12_340_000]


def test_framer_bad_checksum_is_counted_and_skipped() -> None:
    good = encode_tf0(7_000_000)
    bad = good[:9] + b"00" + good[11:]
    framer = Xk3190Framer()
    assert framer.feed(good + bad + good) == [7_000_000, 7_000_000]
    assert framer.stats.malformed == {"bad_checksum": 1}


@given(st.binary(max_size=400))
def test_framer_never_raises_and_stays_bounded(noise: bytes) -> None:
    for mode in ("tf0", "eq"):
        framer = Xk3190Framer(mode=mode)
        for i in range(0, len(noise), 7):
            framer.feed(noise[i : i + 7])
        assert len(framer._buf) < 12
        tail = framer.feed(frames_of([1_000_000, 1_000_000], mode))
        assert tail[-1:] == [1_000_000]
