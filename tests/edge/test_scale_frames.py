"""The strict A&D frame parser, against the simulator's encoder and hand-made bad frames."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.errors import FrameError
from edge.scales.ascii_frame import bcc, parse_frame
from edge.scales.sample import WeighMode
from firmware_sim.scales.ascii_indicator import encode_frame, format_weight


@pytest.mark.parametrize(
    ("raw", "status", "mode", "kg"),
    [
        (b"ST,GS,+0012.34kg\r\n", "ST", WeighMode.GROSS, 12.34),
        (b"US,NT,-0000.05kg\r\n", "US", WeighMode.NET, -0.05),
        (b"ST,TR,+0014.00kg\r", "ST", WeighMode.TARE, 14.0),
        (b"ST,GS,+0012340 g\r\n", "ST", WeighMode.GROSS, 12.34),
        (b"ST,GS,+01.2345 t\r\n", "ST", WeighMode.GROSS, 1234.5),
        (b"ST,GS,+0000000kg\r\n", "ST", WeighMode.GROSS, 0.0),
    ],
)
def test_valid_frames(raw: bytes, status: str, mode: WeighMode, kg: float) -> None:
    f = parse_frame(raw)
    assert (f.status, f.mode, f.weight_kg) == (status, mode, kg)


def test_overload_frames_have_no_weight() -> None:
    for raw in (b"OL,GS,+       kg\r\n", b"LO,GS,+    .  kg\r\n"):
        f = parse_frame(raw)
        assert f.status == "OL" and f.weight_kg is None
        s = f.to_sample(5)
        assert s.overload and not s.stable


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"ST,GS,+0012.34kg", "no_terminator"),
        (b"ST,GS,+0012.3\r\n", "truncated"),
        (b"ST,GS,+0012.34kgST,GS,+0012.34kg\r\n", "too_long"),
        (b"\x8f\x01ST,GS,+0012.34kg\r\n", "not_ascii"),
        (b"~#garbage!!\r\n", "garbage"),
        (b"ST;GS;+0012.34kg\r\n", "bad_separator"),
        (b"SX,GS,+0012.34kg\r\n", "bad_header1"),
        (b"ST,QQ,+0012.34kg\r\n", "bad_header2"),
        (b"ST,GS,+0012.34lb\r\n", "bad_unit"),
        (b"ST,GS,+0012.34KG\r\n", "bad_unit"),
        (b"ST,GS,+0012.34g \r\n", "bad_unit"),
        (b"ST,GS,*0012.34kg\r\n", "bad_sign"),
        (b"ST,GS,+00 2.34kg\r\n", "bad_number"),
        (b"ST,GS,+0O12.34kg\r\n", "bad_number"),
        (b"ST,GS,+0.12.34kg\r\n", "bad_number"),
        (b"ST,GS,+001234.kg\r\n", "bad_number"),
        (b"ST,GS,+       kg\r\n", "bad_number"),
    ],
)
def test_bad_frames_rejected_with_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as exc:
        parse_frame(raw)
    assert exc.value.reason == reason


def test_checksum_mode() -> None:
    good = encode_frame(12.34, True, checksum=True)
    assert good == b"ST,GS,+0012.34kg" + bcc(b"ST,GS,+0012.34kg") + b"\r\n"
    assert parse_frame(good, checksum=True).weight_kg == 12.34
    with pytest.raises(FrameError) as exc:
        parse_frame(b"ST,GS,+0012.34kg\r\n", checksum=True)
    assert exc.value.reason == "missing_checksum"
    corrupt = good[:10] + b"9" + good[11:]
    with pytest.raises(FrameError) as exc:
        parse_frame(corrupt, checksum=True)
    assert exc.value.reason == "bad_checksum"
    with pytest.raises(FrameError) as exc:
        parse_frame(good, checksum=False)
    assert exc.value.reason == "too_long"


@given(
    grams=st.integers(min_value=-999_999, max_value=999_999),
    stable=st.booleans(),
    mode=st.sampled_from(["GS", "NT", "TR"]),
    checksum=st.booleans(),
)
def test_encode_parse_roundtrip_exact_to_10g(
    grams: int, stable: bool, mode: str, checksum: bool
) -> None:
    kg = grams * 10 / 1000
    f = parse_frame(encode_frame(kg, stable, mode=mode, checksum=checksum), checksum=checksum)
    assert round(f.weight_kg * 1000) == grams * 10 if f.weight_kg is not None else False
    assert f.stable is stable and f.mode.value == mode


@given(st.binary(max_size=40))
def test_random_bytes_never_crash(raw: bytes) -> None:
    try:
        f = parse_frame(raw + b"\r\n")
    except FrameError as exc:
        assert exc.reason
    else:
        assert len(raw) == 16 and f.status in ("ST", "US", "OL")


def test_format_weight_is_sign_plus_seven_characters() -> None:
    assert format_weight(12.34) == b"+0012.34kg"
    assert format_weight(-0.5) == b"-0000.50kg"
    assert format_weight(12.34, "g", 0) == b"+0012340 g"
    with pytest.raises(ValueError):
        format_weight(12345.0)
