"""Resident card taps: pseudonyms per the contract, keys from a private file, no raw numbers kept."""

from __future__ import annotations

import hashlib
import hmac
import pickle
from pathlib import Path

import pytest

from contract.pseudonym import pseudonymize
from edge.card import CardPseudonymizer, TapWindow, load_district_key
from edge.errors import ConfigError, EdgeError

KEY = bytes.fromhex("00112233445566778899aabbccddeeff0123456789abcdef")
CARD = "3100012345678901"


def test_pseudonym_is_contract_hmac() -> None:
    expected = "r-" + hmac.new(KEY, CARD.encode(), hashlib.sha256).hexdigest()[:32]
    p = CardPseudonymizer(KEY)
    assert p.pseudonym(CARD) == expected == pseudonymize(KEY, CARD)
    assert p.pseudonym(f"  {CARD}\n") == expected
    assert CardPseudonymizer(KEY[::-1]).pseudonym(CARD) != expected


@pytest.mark.parametrize("bad", ["", "12", "3100-0123", "卡号12345", "x" * 33])
def test_malformed_cards_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        CardPseudonymizer(KEY).pseudonym(bad)


def test_key_never_shown_and_short_keys_refused() -> None:
    p = CardPseudonymizer(KEY)
    assert KEY.hex() not in repr(p) and "hidden" in repr(p)
    with pytest.raises(ConfigError):
        CardPseudonymizer(b"short")


def test_key_file_must_be_private_hex_and_long(tmp_path: Path) -> None:
    f = tmp_path / "district.key"
    f.write_text(KEY.hex() + "\n")
    f.chmod(0o600)
    assert load_district_key(f) == KEY
    f.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        load_district_key(f)
    f.chmod(0o600)
    for text, match in (("not hex!", "hex"), ("abcd", "at least"), ("", "at least")):
        f.write_text(text)
        with pytest.raises(ConfigError, match=match):
            load_district_key(f)
    with pytest.raises(EdgeError):
        load_district_key(tmp_path / "missing.key")


def test_tap_window_pairs_tap_with_next_deposit_once() -> None:
    w = TapWindow(CardPseudonymizer(KEY), window_ms=60_000)
    r = w.tap(1_000, CARD)
    assert r == pseudonymize(KEY, CARD)
    assert w.claim(500) is None  # a deposit before the tap is not the resident's
    assert w.claim(30_000) == r
    assert w.claim(31_000) is None  # used once
    w.tap(100_000, CARD)
    assert w.claim(161_000) is None  # too old
    assert w.tap(1, "??") is None and w.rejected == 1


def test_raw_card_number_is_not_kept_anywhere() -> None:
    w = TapWindow(CardPseudonymizer(KEY))
    w.tap(1_000, CARD)
    blob = pickle.dumps([t for t in w._taps]) + repr(w.__dict__).encode()
    assert CARD.encode() not in blob
