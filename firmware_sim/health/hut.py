"""A simulated smart health hut: a card reader and five instruments, each a loopback peripheral."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from edge.health_session import CARD_TAP_UUID
from firmware_sim.health.instruments import INSTRUMENTS, Expected, Instrument
from firmware_sim.health.peripheral import PeripheralServer
from firmware_sim.health.residents import Resident, Truth, measure


@dataclass(frozen=True, slots=True)
class Sent:
    """One notification a simulated device sent, with what it should decode to."""

    device: str
    uuid: str
    data: bytes
    expected: Expected | None  # set on the last frame of a good measurement
    malformed: str | None = None  # the reason a malformed frame should be rejected with


@dataclass(slots=True)
class Visit:
    """Everything one resident's visit sent."""

    resident: Resident | None
    truth: Truth
    sent: list[Sent] = field(default_factory=list)

    def frames_for(self, device: str) -> list[Sent]:
        """The notifications one device sent in this visit."""
        return [s for s in self.sent if s.device == device]


class HealthHutSim:
    """Card reader `{site}-CARD` plus instruments `{site}-BP`, `-BC` (scale with body composition), `-TEMP`, `-GLU`, `-SPO2`.

    Lifecycle: construct (binds ports) -> start() -> visit()... -> close(); also a context manager.
    Threading: drive visits from one thread.
    """

    def __init__(self, site: str = "HH-01", seed: int = 1, malformed_rate: float = 0.0) -> None:
        self.site = site
        self.card_reader = f"{site}-CARD"
        self._rng = random.Random(seed)
        self.malformed_rate = malformed_rate
        self._glucose_seq = 0
        self.instruments: dict[str, Instrument] = {f"{site}-{i.suffix}": i for i in INSTRUMENTS}
        self.servers = {d: PeripheralServer(d) for d in [self.card_reader, *self.instruments]}

    def start(self) -> Self:
        """Start every peripheral."""
        for server in self.servers.values():
            server.start()
        return self

    def endpoints(self) -> dict[str, tuple[str, int]]:
        """Device id -> (host, port) to connect a SocketTransport to."""
        return {device: server.address for device, server in self.servers.items()}

    def wait_connected(self, timeout: float = 5.0) -> bool:
        """True once a gateway is connected to every device."""
        return all(server.wait_connected(timeout) for server in self.servers.values())

    def tap(self, card: str) -> Sent:
        """A resident taps a card on the reader."""
        self.servers[self.card_reader].notify(CARD_TAP_UUID, card.encode("ascii"))
        return Sent(self.card_reader, CARD_TAP_UUID, card.encode("ascii"), None)

    def visit(
        self, resident: Resident | None, when: dt.datetime, truth: Truth | None = None
    ) -> Visit:
        """One visit: tap (unless anonymous), then every instrument measures once, maybe malformed."""
        truth = truth or measure(resident or _WALK_IN, self._rng)
        visit = Visit(resident, truth)
        if resident is not None:
            visit.sent.append(self.tap(resident.card))
        for device, instrument in self.instruments.items():
            if self._rng.random() < self.malformed_rate:
                (uuid, data), reason = instrument.malformed(truth, when, self._rng)
                self.servers[device].notify(uuid, data)
                visit.sent.append(Sent(device, uuid, data, None, reason))
                continue
            self._glucose_seq += 1
            frames = instrument.frames(truth, when, self._glucose_seq)
            for i, (uuid, data) in enumerate(frames):
                self.servers[device].notify(uuid, data)
                last = i == len(frames) - 1
                visit.sent.append(
                    Sent(device, uuid, data, instrument.expected(truth) if last else None)
                )
        return visit

    def close(self) -> None:
        """Stop every peripheral."""
        for server in self.servers.values():
            server.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_WALK_IN = Resident("anonymous", 45, "F", 160.0, 58.0, False, False, False)
