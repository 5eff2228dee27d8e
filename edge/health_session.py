"""Resident sessions at a health hut: a card tap opens one; measurements inside it carry the pseudonym."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from contract.models import HealthMeasurement, now_ms
from contract.pseudonym import pseudonymize
from edge.errors import ConfigError, FrameError

CARD_TAP_UUID = "6a0e0001-7c2b-4e8f-9d3a-67756d656931"
"""Project-private characteristic the hut's card reader notifies: the card number in ASCII."""
DEFAULT_TIMEOUT_S = 300.0
CLOCK_SKEW_MS = 120_000  # a device clock may run this far behind the gateway's


def decode_card_tap(data: bytes) -> str:
    """Card number of a card-reader notification (ASCII digits and letters); FrameError when malformed."""
    try:
        card = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise FrameError("bad_card", "card number is not ASCII") from None
    if not 4 <= len(card) <= 32 or not card.isalnum():
        raise FrameError("bad_card", f"card number of {len(card)} characters or with symbols")
    return card


@dataclass(frozen=True, slots=True)
class Session:
    """One open resident session: who (pseudonym only) and since when (gateway epoch ms)."""

    resident: str
    opened_ms: int
    last_ms: int


class SessionTracker:
    """The hut's one resident session, opened by a card tap and closed by timeout or an explicit end.

    The raw card number is turned into the contract pseudonym at once and never kept. Each
    measurement attributed to a session extends it; the timeout counts from the last activity.
    A measurement whose device timestamp predates the session (e.g. replayed from the
    instrument's memory) is not attributed to it. `clock` returns epoch ms (injectable for tests).

    Threading: all methods are safe to call from any thread (one lock guards the session).
    """

    def __init__(
        self,
        district_key: bytes,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if not district_key:
            raise ConfigError("district key is empty")
        if timeout_s <= 0:
            raise ConfigError("session timeout must be positive")
        self._key = district_key
        self._timeout_ms = int(timeout_s * 1000)
        self._clock = clock
        self._session: Session | None = None
        self._lock = threading.Lock()

    def tap(self, card_number: str) -> str:
        """Open (or restart) a session for a card; return the resident pseudonym."""
        try:
            resident = pseudonymize(self._key, card_number)
        except ValueError as exc:
            raise FrameError("bad_card", str(exc)) from None
        now = self._clock()
        with self._lock:
            self._session = Session(resident, now, now)
        return resident

    def end(self) -> None:
        """Close the current session (resident walked away, staff pressed end)."""
        with self._lock:
            self._session = None

    def current(self) -> Session | None:
        """The open session, or None when there is none or it has timed out."""
        now = self._clock()
        with self._lock:
            return self._live(now)

    def resident_for(self, measured_ms: int | None = None) -> str | None:
        """Pseudonym to attach to a measurement arriving now (extending the session), or None."""
        now = self._clock()
        with self._lock:
            session = self._live(now)
            if session is None:
                return None
            if measured_ms is not None and measured_ms < session.opened_ms - CLOCK_SKEW_MS:
                return None
            self._session = Session(session.resident, session.opened_ms, now)
            return session.resident

    def measurement(
        self, device: str, seq: int, ts: int, type_: str, values: dict[str, float | str]
    ) -> HealthMeasurement:
        """A contract measurement carrying the session's pseudonym when one is open, else none."""
        return HealthMeasurement.model_validate(
            {
                "device": device,
                "seq": seq,
                "ts": ts,
                "resident": self.resident_for(ts),
                "type": type_,
                "values": values,
            }
        )

    def _live(self, now: int) -> Session | None:
        session = self._session
        if session is not None and now - session.last_ms >= self._timeout_ms:
            self._session = session = None
        return session
