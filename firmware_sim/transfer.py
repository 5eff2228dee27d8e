"""The demo's transfer station: trucks empty the stations' bins and are weighed on its weighbridge.

Every `round_ms` of simulated time (2 h), one truck per (area, category) collects what the
stations of that area accepted before the round's end (the fleet's ground truth), loses a small
share on the way (leachate from wet waste, spill), and is weighed: one ticket per load (a
recyclable load per sub-category, in fixed shares), closed 1 ms before the round's end so a
day's last round counts on that day. So station totals and tickets agree within the losses
(`LOSS_PPM`) and the readings that arrive after their round was collected (they go with the next).

`collect` and `round_tickets` are pure; `SimTransferStation` publishes the tickets as
`gumei.weighbridge.tickets.v1` with the fleet's gateway machinery (outbox, QoS 1, reconnects).
"""

from __future__ import annotations

import time
from collections import defaultdict

from cloud.registry import Registry, Site
from contract import WasteReading, encode
from contract.models import WeighbridgeTicket, WeighbridgeTickets
from contract.topics import weighbridge_tickets
from firmware_sim.fleet import GroundTruth, SimClock, SimGateway
from runtime.mqtt import MqttEndpoint

ROUND_MS = 2 * 3_600_000
LAG_MS = 5 * 60_000  # collect a round once the clock is this far past its end (late gateways)
LOSS_PPM = {"wet": 20_000, "dry": 5_000, "recyclable": 1_000, "hazardous": 0}  # 2 %, 0.5 %, 0.1 %
SUB_SHARES = (("paper", 40), ("plastic", 25), ("glass", 15), ("metal", 10), ("textile", 5))
DESTINATION = {
    "dry": "老港再生能源利用中心",
    "wet": "老港生物能源再利用中心",
    "recyclable": "闵行区再生资源集散场",
    "hazardous": "上海市危险废物处置中心",
}
PROVINCE_LETTERS = "ABCDEFGHJKLMN"


def collect(
    pending: list[WasteReading], end_ms: int, area_of_device: dict[str, str]
) -> tuple[dict[tuple[str, str], int], list[WasteReading]]:
    """Grams per (area, category) of the readings before end_ms, and the readings left."""
    bins: dict[tuple[str, str], int] = defaultdict(int)
    left = []
    for r in pending:
        if r.ts < end_ms:
            bins[area_of_device[r.device], r.category.value] += round(r.net_kg * 1000)
        else:
            left.append(r)
    return dict(bins), left


def plate_of(area: str, category: str) -> str:
    """The truck of an (area, category) round: a Shanghai plate, stable across rounds."""
    digits = "".join(c for c in area if c.isdigit()) or "0"
    letter = PROVINCE_LETTERS[("dry", "wet", "recyclable", "hazardous").index(category)]
    return f"沪{letter}{int(digits) % 100000:05d}"


def round_tickets(
    bins: dict[tuple[str, str], int], end_ms: int, device: str, first_ticket: int
) -> list[WeighbridgeTicket]:
    """The tickets of one collection round: net = collected grams less the category's loss
    (integer grams), a recyclable load split into sub-categories (the rest is "other")."""
    out: list[WeighbridgeTicket] = []
    for (area, category), grams in sorted(bins.items()):
        net = grams - grams * LOSS_PPM[category] // 1_000_000
        parts: list[tuple[str | None, int]] = [(None, net)]
        if category == "recyclable":
            shares = [(sub, net * pct // 100) for sub, pct in SUB_SHARES]
            parts = [*shares, ("other", net - sum(g for _, g in shares))]
        plate = plate_of(area, category)
        tare = 9_000_000 + 1_000 * sum(ord(c) for c in plate) % 500_000
        for sub, g in parts:
            if g <= 0:
                continue
            out.append(
                WeighbridgeTicket(
                    device=device,
                    ticket=first_ticket + len(out),
                    ts=end_ms - 1,
                    gross_ts=end_ms - 15 * 60_000,
                    plate=plate,
                    plate_source="card",
                    category=category,
                    subcategory=sub,
                    source_area=area,
                    destination=DESTINATION[category],
                    gross_g=tare + g,
                    tare_g=tare,
                    net_g=g,
                    tare_source="stored",
                )
            )
    return out


def area_of_devices(registry: Registry) -> dict[str, str]:
    """Scale device id -> its station's area."""
    return {d.id: s.area for s in registry.sites if s.kind == "waste" for d in s.devices}


class SimTransferStation(SimGateway):
    """The weighbridge gateway of the demo's transfer station, fed by the fleet's ground truth."""

    def __init__(
        self,
        site: Site,
        endpoint: MqttEndpoint,
        clock: SimClock,
        truth: GroundTruth,
        registry: Registry,
        seq_base: int,
    ) -> None:
        super().__init__(site, endpoint, clock, truth, seed=15, seq_base=seq_base)
        self.device = site.devices[0].id
        self.next_ticket = seq_base
        self.area_of = area_of_devices(registry)
        self.taken = 0  # how many of truth.readings are in pending or collected
        self.pending: list[WasteReading] = []
        self.round_end = (clock.now_ms() // ROUND_MS + 1) * ROUND_MS
        self.tickets: list[WeighbridgeTicket] = []  # every ticket made (the demo's truth)

    def topic(self) -> str:
        return weighbridge_tickets(self.site.id)

    def entries(self, payload: bytes) -> int:
        return len(WeighbridgeTickets.model_validate_json(payload).tickets)

    def accept(self) -> int:
        """Collect every round whose end (plus the lag) the clock has passed; queue its tickets."""
        made = 0
        now = self.clock.now_ms()
        while now >= self.round_end + LAG_MS:
            self.pending += self.truth.readings[self.taken :]
            self.taken = len(self.truth.readings)
            bins, self.pending = collect(self.pending, self.round_end, self.area_of)
            tickets = round_tickets(bins, self.round_end, self.device, self.next_ticket)
            self.next_ticket += len(tickets)
            self.round_end += ROUND_MS
            for i in range(0, len(tickets), 1000):
                batch = tickets[i : i + 1000]
                payload = encode(WeighbridgeTickets(site=self.site.id, tickets=batch))
                self.outbox.append((payload, time.monotonic()))
            self.tickets += tickets
            made += len(tickets)
        self.made += made
        return made

    def status_devices(self) -> list[str]:
        return [self.device]
