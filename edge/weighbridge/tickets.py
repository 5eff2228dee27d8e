"""Ticket formation at a weighbridge: operator entries + truck weighings -> tickets or aborts.

Pure and small (no I/O, no clock: every input carries its time). `WeighStation` joins what the
operator (or an IC card) says about the truck on the bridge with the bridge's stable weight; a
truck that leaves gives one *weighing*. `TicketBook` pairs weighings per plate: the first is the
gross (loaded truck), the next lighter one the tare, and the ticket's net is gross - tare in
integer grams. With `tare = "stored"` (a truck whose empty weight is on file) the gross weighing
closes the ticket at once. Everything that does not end in a ticket is an `Aborted` with a reason
(the gateway logs and counts it): the truck left before the weight was stable, no plate was
entered, the tare never came, the "tare" was not lighter than the gross.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

from contract.models import (
    ID_PATTERN,
    PLACE_PATTERN,
    PLATE_PATTERN,
    Category,
    Subcategory,
    WeighbridgeTicket,
)
from edge.weighbridge.stable import Left, StableDetector, StableParams

TareMode = Literal["weigh", "stored"]


class OperatorEntry(BaseModel):
    """What the operator types (or an IC card stands for) about the next truck to be weighed.

    For the tare weighing of a truck whose gross is open the plate is enough; a weighing that
    opens a ticket (a gross) needs the category and the source area."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    plate: Annotated[str, StringConstraints(pattern=PLATE_PATTERN)]
    plate_source: Literal["operator", "card"] = "operator"
    category: Category | None = None
    subcategory: Subcategory | None = None
    source_area: Annotated[str, StringConstraints(pattern=ID_PATTERN)] | None = None
    destination: Annotated[str, StringConstraints(pattern=PLACE_PATTERN)] | None = None
    tare: TareMode = "weigh"

    @model_validator(mode="after")
    def _subcategory(self) -> OperatorEntry:
        if (self.category == Category.RECYCLABLE) != (self.subcategory is not None):
            raise ValueError("subcategory is required for recyclable and only for recyclable")
        return self


@dataclass(frozen=True, slots=True)
class Weighing:
    """One truck stood still on the bridge: its plate's entry, the stable weight, when."""

    entry: OperatorEntry
    grams: int
    ts_ms: int


@dataclass(frozen=True, slots=True)
class TicketDraft:
    """A ticket without its number (the durable queue assigns it with the device)."""

    gross: Weighing
    tare_g: int
    ts_ms: int
    tare_source: Literal["weighed", "stored"]

    @property
    def net_g(self) -> int:
        """Net weight, exact."""
        return self.gross.grams - self.tare_g

    def ticket(self, device: str, number: int) -> WeighbridgeTicket:
        """The contract entry (validates: a draft that breaks the contract raises ValidationError)."""
        e = self.gross.entry
        if e.category is None or e.source_area is None:  # TicketBook never opens such a gross
            raise ValueError("a ticket's gross entry needs a category and a source area")
        return WeighbridgeTicket(
            device=device,
            ticket=number,
            ts=self.ts_ms,
            gross_ts=self.gross.ts_ms,
            plate=e.plate,
            plate_source=e.plate_source,
            category=e.category,
            subcategory=e.subcategory,
            source_area=e.source_area,
            destination=e.destination,
            gross_g=self.gross.grams,
            tare_g=self.tare_g,
            net_g=self.net_g,
            tare_source=self.tare_source,
        )


@dataclass(frozen=True, slots=True)
class Aborted:
    """A weighing or a pending gross that ends without a ticket, and why."""

    reason: str
    ts_ms: int
    plate: str | None = None
    grams: int | None = None


@dataclass(frozen=True, slots=True)
class GrossRecorded:
    """A loaded truck was weighed; its ticket waits for the tare."""

    weighing: Weighing


Outcome = TicketDraft | Aborted | GrossRecorded


@dataclass
class TicketBook:
    """Pairs weighings per plate into tickets. `stored_tares` (plate -> grams) is the truck's empty
    weight on file: set from the config and refreshed by every weighed tare."""

    tare_timeout_ms: int = 4 * 3600 * 1000
    stored_tares: dict[str, int] = field(default_factory=dict)
    open: dict[str, Weighing] = field(default_factory=dict)  # plate -> gross awaiting its tare

    def weighed(self, w: Weighing) -> list[Outcome]:
        """The outcome of one weighing."""
        plate = w.entry.plate
        gross = self.open.pop(plate, None)
        if gross is not None:
            if w.grams < gross.grams:
                self.stored_tares[plate] = w.grams
                return [TicketDraft(gross, w.grams, w.ts_ms, "weighed")]
            # heavier or equal: not a tare; the earlier gross is given up, this one may wait instead
            return [Aborted("tare_not_lighter", w.ts_ms, plate, gross.grams), *self.weighed(w)]
        if w.entry.category is None or w.entry.source_area is None:
            return [Aborted("entry_incomplete", w.ts_ms, plate, w.grams)]
        if w.entry.tare == "stored":
            tare = self.stored_tares.get(plate)
            if tare is None:
                return [Aborted("no_stored_tare", w.ts_ms, plate, w.grams)]
            if w.grams <= tare:
                return [Aborted("not_heavier_than_tare", w.ts_ms, plate, w.grams)]
            return [TicketDraft(w, tare, w.ts_ms, "stored")]
        self.open[plate] = w
        return [GrossRecorded(w)]

    def expire(self, now_ms: int) -> list[Outcome]:
        """Grosses whose tare did not come within tare_timeout_ms."""
        late = [p for p, w in self.open.items() if now_ms - w.ts_ms > self.tare_timeout_ms]
        return [Aborted("tare_timeout", now_ms, p, self.open.pop(p).grams) for p in sorted(late)]


class WeighStation:
    """The bridge and its operator: entries and weights in, outcomes out (pure).

    An operator entry names the truck that is on the bridge or comes onto it next; a later entry
    replaces an earlier one (a correction), and an entry no truck used within `entry_timeout_ms`
    is dropped. A truck's weighing is complete when it leaves: its last stable weight with the
    entry made for it.
    """

    def __init__(
        self,
        params: StableParams | None = None,
        book: TicketBook | None = None,
        entry_timeout_ms: int = 15 * 60 * 1000,
    ) -> None:
        self.detector = StableDetector(params)
        self.book = book or TicketBook()
        self.entry_timeout_ms = entry_timeout_ms
        self._entry: tuple[int, OperatorEntry] | None = None

    def enter(self, ts_ms: int, entry: OperatorEntry) -> None:
        """The operator's (or card's) entry for the truck on the bridge or the next one."""
        self._entry = (ts_ms, entry)

    def feed(self, ts_ms: int, grams: int) -> list[Outcome]:
        """One weight from the indicator; outcomes of a truck that left, expired grosses."""
        out: list[Outcome] = []
        for ev in self.detector.feed(ts_ms, grams):
            if isinstance(ev, Left):
                out += self._left(ev)
        return out

    def tick(self, now_ms: int) -> list[Outcome]:
        """Time passing without weights: expired grosses and stale entries."""
        if (
            self._entry is not None
            and not self.detector.occupied
            and now_ms - self._entry[0] > self.entry_timeout_ms
        ):
            ts, e = self._entry
            self._entry = None
            return [Aborted("entry_unused", now_ms, e.plate), *self.book.expire(now_ms)]
        return list(self.book.expire(now_ms))

    def interrupted(self, ts_ms: int) -> list[Outcome]:
        """The indicator link was lost: a truck on the bridge cannot be weighed reliably."""
        was = self.detector.occupied
        self.detector.reset()
        return [Aborted("link_lost", ts_ms)] if was else []

    def _left(self, ev: Left) -> list[Outcome]:
        entry = self._entry
        if ev.grams is None:
            return [Aborted("left_before_stable", ev.ts_ms, entry[1].plate if entry else None)]
        if entry is None:
            return [Aborted("no_plate", ev.ts_ms, None, ev.grams)]
        self._entry = None
        stable_ms = ev.stable_ms if ev.stable_ms is not None else ev.ts_ms
        return self.book.weighed(Weighing(entry[1], ev.grams, stable_ms))
