"""Resident pseudonyms: raw card numbers never leave the gateway."""

from __future__ import annotations

import hashlib
import hmac


def pseudonymize(district_key: bytes, card_number: str) -> str:
    """Return "r-" + the first 32 hex digits of HMAC-SHA256(key, card number)."""
    if not district_key:
        raise ValueError("district key is empty")
    card = card_number.strip()
    if not card:
        raise ValueError("card number is empty")
    digest = hmac.new(district_key, card.encode("utf-8"), hashlib.sha256).hexdigest()
    return "r-" + digest[:32]
