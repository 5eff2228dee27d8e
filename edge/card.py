"""Resident card taps: card number -> pseudonym at once; the raw number is never kept."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

from contract import pseudonym
from contract.pseudonym import CARD_PATTERN, MIN_KEY_BYTES, pseudonymize
from edge.errors import ConfigError

TAP_WINDOW_MS = 60_000  # a tap names the resident of the next deposit within a minute


def load_district_key(path: str | Path) -> bytes:
    """Read the district key (hex) from the gateway's secret file; refuse weak or exposed keys
    (contract.pseudonym.load_district_key, as a ConfigError)."""
    try:
        return pseudonym.load_district_key(path)
    except pseudonym.DistrictKeyError as exc:
        raise ConfigError(str(exc)) from exc.__cause__


class CardPseudonymizer:
    """Turns a card number into the contract pseudonym; holds the key, never the card."""

    __slots__ = ("_key",)

    def __init__(self, district_key: bytes) -> None:
        if len(district_key) < MIN_KEY_BYTES:
            raise ConfigError(f"district key must be at least {MIN_KEY_BYTES} bytes")
        self._key = district_key

    def __repr__(self) -> str:
        return "CardPseudonymizer(<key hidden>)"

    def pseudonym(self, card_number: str) -> str:
        """`r-` + 32 hex digits of HMAC-SHA256(key, card); ValueError for a malformed card."""
        card = card_number.strip()
        if not CARD_PATTERN.match(card):
            raise ValueError("card number must be 4 to 32 letters or digits")
        return pseudonymize(self._key, card)


@dataclass(frozen=True, slots=True)
class Tap:
    """A card tap as kept by the gateway: time and pseudonym only."""

    ts_ms: int
    resident: str


class TapWindow:
    """Pairs card taps with the next deposit on the same scale within a time window."""

    def __init__(self, pseudonymizer: CardPseudonymizer, window_ms: int = TAP_WINDOW_MS) -> None:
        self._pseudo = pseudonymizer
        self.window_ms = window_ms
        self._taps: deque[Tap] = deque(maxlen=8)
        self.rejected = 0

    def tap(self, ts_ms: int, card_number: str) -> str | None:
        """Record a tap; returns the pseudonym, or None for an unreadable card (counted)."""
        try:
            resident = self._pseudo.pseudonym(card_number)
        except ValueError:
            self.rejected += 1
            return None
        self._taps.append(Tap(ts_ms, resident))
        return resident

    def claim(self, deposit_ts_ms: int) -> str | None:
        """The resident of a deposit: the latest tap not older than the window, used once."""
        while self._taps and self._taps[0].ts_ms < deposit_ts_ms - self.window_ms:
            self._taps.popleft()
        best: Tap | None = None
        for t in self._taps:
            if t.ts_ms <= deposit_ts_ms:
                best = t
        if best is None:
            return None
        self._taps.remove(best)
        return best.resident
