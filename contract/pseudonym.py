"""Resident pseudonyms: raw card numbers never leave the gateway."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
from pathlib import Path

MIN_KEY_BYTES = 16
CARD_PATTERN = re.compile(r"^[0-9A-Za-z]{4,32}$")  # printed card numbers and RFID UIDs in hex


class DistrictKeyError(ValueError):
    """The district key file cannot be used (unreadable, exposed, not hex, too short)."""


def load_district_key(path: str | Path) -> bytes:
    """Read the district key (hex) from its secret file; refuse weak or exposed keys. Used by the
    gateway (edge/card.py) and the health staff's tool (staff/), the two holders of the key."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
        text = p.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise DistrictKeyError(f"district key file {p}: {exc}") from exc
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise DistrictKeyError(f"district key file {p} is readable by others; chmod 600 it")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise DistrictKeyError(f"district key file {p} must hold hex digits only") from None
    if len(key) < MIN_KEY_BYTES:
        raise DistrictKeyError(
            f"district key in {p} is {len(key)} bytes; at least {MIN_KEY_BYTES} needed"
        )
    return key


def pseudonymize(district_key: bytes, card_number: str) -> str:
    """Return "r-" + the first 32 hex digits of HMAC-SHA256(key, card number)."""
    if not district_key:
        raise ValueError("district key is empty")
    card = card_number.strip()
    if not card:
        raise ValueError("card number is empty")
    digest = hmac.new(district_key, card.encode("utf-8"), hashlib.sha256).hexdigest()
    return "r-" + digest[:32]
