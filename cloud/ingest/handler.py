"""Turn received MQTT messages into one InfluxDB write: valid points, quarantine records, day markers.

Pure: no network. The worker calls `plan_batch` and writes the result in one request.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from cloud import measurements as m
from cloud.days import DAY_MS, date_of, day_number
from cloud.health.flags import screen
from cloud.ingest.options import DEFAULT_MAX_AGE_DAYS
from cloud.lineproto import (
    LineProtocolError,
    WasteHeads,
    line,
    ticket_lines,
    waste_line_heads,
    waste_lines,
    waste_lines_from,
)
from cloud.quarantine import QuarantineRecord, quarantine_lines
from cloud.redact import mask_digits, mask_reason, redact_entry, redact_payload
from cloud.registry import LiveRegistry, Registry, Site
from contract import (
    PayloadRejected,
    TopicError,
    decode_health,
    decode_status,
    decode_tickets,
    decode_waste,
)
from contract.decode import Decoded, load_json
from contract.errors import ContractError
from contract.fast import decode_waste_fast
from contract.models import (
    FUTURE_TOLERANCE_MS,
    HealthMeasurement,
    WasteReading,
    WeighbridgeTicket,
    ignored_fields,
)
from contract.models import now_ms as wall_now_ms
from contract.topics import Topic, parse

log = logging.getLogger(__name__)

__all__ = [
    "BatchPlanner",
    "Message",
    "Plan",
    "QuarantineRecord",
    "day_marker_lines",
    "quarantine_lines",
    "topic_of",
]

PAYLOAD_EXCERPT = 2048
MAX_STATUS_DEVICES = 64  # device_status points one status may write (only registered devices)


@dataclass(frozen=True, slots=True)
class Message:
    """One received MQTT message (mid is what the worker acknowledges)."""

    topic: str
    payload: bytes
    mid: int = 0
    dup: bool = False
    received_ns: int = 0
    connection: int = 0  # which broker connection delivered it (mids are only valid on that one)
    qos: int = 1  # 0: nothing to acknowledge


@dataclass
class Plan:
    """What one batch of messages becomes."""

    lines: list[str] = field(default_factory=list)
    health_lines: list[str] = field(default_factory=list)  # per-resident: the health database's
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    readings: int = 0
    measurements: int = 0
    statuses: int = 0
    days: Counter[tuple[int, str]] = field(
        default_factory=Counter
    )  # (Shanghai day, site) -> points
    ignored: Counter[str] = field(default_factory=Counter)  # fields v1 does not define, by name
    internal_errors: int = 0


HealthEncoder = Callable[[str, Sequence[HealthMeasurement]], list[str]]


def _line_heads(site: Site) -> WasteHeads | None:
    """Line heads of the site's active devices; None if the site or area cannot be a tag (never for
    a valid registry; the slow path then reports it as before)."""
    try:
        return waste_line_heads(
            site.id,
            site.area,
            {d.id: d.allowed_categories() for d in site.devices if not d.retired},
        )
    except LineProtocolError:
        return None


class BatchPlanner:
    """Decodes and validates messages against the registry; stateless between batches.

    Waste readings payloads that are valid as a whole (every entry valid, of a registered active
    device of the site and one of its categories, within the age horizon, not in the future, no
    field v1 does not define) take a fast path (msgspec, `_plan_readings_fast`); every other
    payload, and every planner built with `fast_path=False`, takes the pydantic path, which
    quarantines entry by entry with reasons. Both produce the same plan for the same message.

    No input raises out of `plan_batch`: whatever a gateway sends ends as points, dead letters
    with a reason, or (for a bug of ours) an `internal_error` dead letter. Everything a dead letter
    keeps of the message is redacted first (cloud/redact.py).
    """

    def __init__(
        self,
        registry: Registry | LiveRegistry,
        health_encoder: HealthEncoder | None = None,
        fast_path: bool = True,
        max_age_days: float = DEFAULT_MAX_AGE_DAYS,
    ) -> None:
        self._live = (
            registry if isinstance(registry, LiveRegistry) else LiveRegistry.fixed(registry)
        )
        self._fast_path = fast_path
        self._health_encoder = health_encoder
        self._max_age_ms = int(max_age_days * DAY_MS)
        self._version = 0
        # The planner thread plans batches, the committer re-plans a refused one: a reload must not
        # swap the indexes under a plan in progress (uncontended but for those rare re-plans).
        self._plan_lock = threading.Lock()
        self._refresh()

    def _refresh(self) -> None:
        """Rebuild the indexes when the registry was reloaded (a file change: `LiveRegistry`)."""
        version, registry = self._live.snapshot()
        if version == self._version:
            return
        self._version = version
        self._sites = registry.site_index()
        self._areas = frozenset(a.id for a in registry.areas)
        active = {
            sid: [d for d in site.devices if not d.retired] for sid, site in self._sites.items()
        }
        self._known = {sid: frozenset(d.id for d in devices) for sid, devices in active.items()}
        self._categories = {
            d.id: d.allowed_categories() for devices in active.values() for d in devices
        }
        self._types = {
            d.id: d.type.value for devices in active.values() for d in devices if d.type is not None
        }
        self._heads = (
            {sid: _line_heads(site) for sid, site in self._sites.items() if site.kind == "waste"}
            if self._fast_path
            else {}
        )

    def plan_batch(self, messages: Iterable[Message], now_ms: int | None = None) -> Plan:
        """Plan one write for these messages; never raises for any input."""
        with self._plan_lock:
            self._refresh()
            return self._plan_batch(messages, now_ms)

    def _plan_batch(self, messages: Iterable[Message], now_ms: int | None) -> Plan:
        plan = Plan()
        now = wall_now_ms() if now_ms is None else now_ms
        for msg in messages:
            mark = (
                len(plan.lines),
                len(plan.quarantine),
                plan.readings,
                plan.measurements,
                plan.statuses,
                Counter(plan.days),
                len(plan.health_lines),
            )
            try:
                self._plan_one(msg, plan, now)
            except TopicError as exc:
                plan.quarantine.append(
                    _dead_letter("unknown", "unknown", "bad_topic", str(exc), msg)
                )
            except PayloadRejected as exc:
                topic = topic_of(msg.topic)
                plan.quarantine.append(
                    _dead_letter(
                        topic.site,
                        topic.kind,
                        exc.code,
                        exc.detail,
                        msg,
                        entries=_count_entries(msg.payload),
                    )
                )
            except Exception as exc:  # noqa: BLE001 - the boundary that must survive any input
                _rollback(plan, mark)
                plan.internal_errors += 1
                topic = topic_of(msg.topic)
                log.error(
                    "internal error planning a message of %s: %s",
                    topic.site,
                    mask_digits("".join(traceback.format_exception(exc))[-4000:]),
                )
                plan.quarantine.append(
                    _dead_letter(
                        topic.site,
                        topic.kind,
                        "internal_error",
                        type(exc).__name__,
                        msg,
                        entries=_count_entries(msg.payload),
                    )
                )
        return plan

    def _plan_one(self, msg: Message, plan: Plan, now_ms: int) -> None:
        topic = parse(msg.topic)
        site = self._sites.get(topic.site)
        if site is None or site.retired:
            raise PayloadRejected("unknown_site", f"site {topic.site} is not in the registry")
        if site.topic_kind != topic.kind:
            raise PayloadRejected(
                "wrong_kind", f"site {topic.site} is a {site.kind} site, not {topic.kind}"
            )
        if topic.channel == "status":
            self._plan_status(msg, topic, plan)
            return
        if (topic.channel == "tickets") != (site.kind == "weighbridge"):
            raise PayloadRejected(
                "wrong_kind", f"site {topic.site} is a {site.kind} site: no {topic.channel}"
            )
        if topic.channel == "tickets":
            self._plan_tickets(msg, topic, plan, now_ms)
            return
        if topic.channel == "readings" and self._plan_readings_fast(
            msg.payload, site.id, plan, now_ms
        ):
            return
        decoded: Decoded[WasteReading] | Decoded[HealthMeasurement]
        if topic.channel == "readings":
            decoded = decode_waste(msg.payload, topic, now_ms)
            valid = [r for r in decoded.valid if self._entry_ok(topic, msg, r, plan, now_ms)]
            plan.lines.extend(waste_lines(site.id, site.area, valid))
            plan.readings += len(valid)
            plan.days.update((day_number(r.ts), site.id) for r in valid)
        else:
            if self._health_encoder is None:
                raise PayloadRejected(
                    "not_supported", "health ingestion is not enabled on this worker"
                )
            decoded = decode_health(msg.payload, topic, now_ms)
            kept = [x for x in decoded.valid if self._entry_ok(topic, msg, x, plan, now_ms)]
            plan.health_lines.extend(self._health_encoder(site.id, kept))
            plan.measurements += len(kept)
            plan.days.update(
                (day_number(x.ts), site.id) for x in kept
            )  # health_daily is recomputed for these days
        _set_aside(plan, topic, msg, decoded)

    def _plan_tickets(self, msg: Message, topic: Topic, plan: Plan, now_ms: int) -> None:
        """Weighbridge tickets: decoded with per-entry quarantine, checked against the registry
        (device of the site, source area known, within the age horizon), one point each."""
        decoded = decode_tickets(msg.payload, topic, now_ms)
        kept: list[WeighbridgeTicket] = []
        for t in decoded.valid:
            problem = self._entry_problem(topic.site, t.device, t.ts, "ticket", t.ticket, now_ms)
            if problem is None and t.source_area not in self._areas:
                problem = "unknown_area", f"source_area {t.source_area} is not in the registry"
            if _kept(plan, topic, msg, t, problem):
                kept.append(t)
        plan.lines.extend(ticket_lines(topic.site, kept))
        plan.readings += len(kept)
        # the aggregator recomputes the weighbridge days, reconciliation and targets of these days
        plan.days.update((day_number(t.ts), topic.site) for t in kept)
        _set_aside(plan, topic, msg, decoded)

    def _entry_problem(
        self, site: str, device: str, ts: int, label: str, number: int, now_ms: int
    ) -> tuple[str, str] | None:
        """The checks every kind of entry gets (readings, measurements, tickets): a registered
        active device of the site, within the age horizon; (code, reason) of the first failing."""
        if device not in self._known[site]:
            return "unknown_device", f"device {device} is not registered at {site}"
        if ts < now_ms - self._max_age_ms:
            return (
                "too_old",
                f"{device} {label} {number}: ts {ts} is older than the "
                f"{self._max_age_ms // DAY_MS}-day horizon",
            )
        return None

    def _entry_ok(
        self,
        topic: Topic,
        msg: Message,
        x: WasteReading | HealthMeasurement,
        plan: Plan,
        now_ms: int,
    ) -> bool:
        """Registry and age checks of one contract-valid entry; a failing entry becomes a dead letter."""
        problem = self._entry_problem(topic.site, x.device, x.ts, "seq", x.seq, now_ms)
        if problem is None:
            problem = self._content_problem(x)
        return _kept(plan, topic, msg, x, problem)

    def _content_problem(self, x: WasteReading | HealthMeasurement) -> tuple[str, str] | None:
        """A reading's category registered for its device; a measurement's instrument type the
        registered one, its values plausible."""
        if isinstance(x, WasteReading):
            if x.category.value not in self._categories[x.device]:
                return (
                    "category_mismatch",
                    f"{x.device} is not registered for {x.category.value}",
                )
            return None
        if self._types.get(x.device, x.type.value) != x.type.value:
            return (
                "type_mismatch",
                f"{x.device} is a {self._types[x.device]} instrument, not {x.type.value}",
            )
        if (reason := screen(x.type.value, x.values)[1]) is not None:
            return "implausible", f"{x.device} seq {x.seq}: {reason}"
        return None

    def _plan_readings_fast(self, payload: bytes, site_id: str, plan: Plan, now_ms: int) -> bool:
        """Plan a waste readings payload that needs no quarantine; False (plan untouched) otherwise.

        Same lines, count and days as the slow path would plan (checked against it by the property
        test in tests/cloud/ingest/test_ingest_fastpath.py). The line-head lookup is the device and category
        check: heads exist only for a registered device's registered categories.
        """
        heads = self._heads.get(site_id)
        if heads is None:
            return False
        batch = decode_waste_fast(payload)
        if batch is None or batch.site != site_id:
            return False
        readings = batch.readings
        try:
            lines = waste_lines_from(heads, readings)
        except (
            KeyError
        ):  # unknown, retired or another site's device, or not its category: slow path
            return False
        ts = [r.ts for r in readings]
        first, last = min(ts), max(ts)
        if last > now_ms + FUTURE_TOLERANCE_MS or first < now_ms - self._max_age_ms:
            return False
        if day_number(first) == day_number(last):  # the usual batch: one Shanghai day
            plan.days[day_number(first), site_id] += len(ts)
        else:
            plan.days.update((day_number(t), site_id) for t in ts)
        plan.lines.extend(lines)
        plan.readings += len(readings)
        return True

    def _plan_status(self, msg: Message, topic: Topic, plan: Plan) -> None:
        """A gateway status: one gateway_status point, and device_status points for its registered
        devices only (never a series per invented id), at most MAX_STATUS_DEVICES."""
        status = decode_status(msg.payload, topic)
        plan.ignored.update(ignored_fields(status))
        known = self._known[topic.site]
        mine = [d for d in status.devices if d.device in known][:MAX_STATUS_DEVICES]
        ok = sum(1 for d in mine if d.ok)
        plan.lines.append(
            line(
                m.GATEWAY_STATUS.name,
                {"site": topic.site, "kind": topic.kind},
                {
                    "online": status.state == "online",
                    "buffered": status.buffered,
                    "devices_ok": ok,
                    "devices": len(mine),
                },
                msg.received_ns,
            )
        )
        for d in mine:
            plan.lines.append(
                line(
                    m.DEVICE_STATUS.name,
                    {"site": topic.site, "device": d.device},
                    {"ok": d.ok, "fill_pct": d.fill_pct},
                    msg.received_ns,
                )
            )
        if len(mine) < len(status.devices):
            plan.ignored["devices[] not registered"] += len(status.devices) - len(mine)
        plan.statuses += 1


def _dead_letter(
    site: str, kind: str, code: str, reason: str, msg: Message, raw: object = None, entries: int = 1
) -> QuarantineRecord:
    """A dead letter keeping only what redaction allows: the entry (or the payload), reason, topic."""
    excerpt = redact_payload(msg.payload) if raw is None else redact_entry(raw)
    return QuarantineRecord(
        site, kind, code, mask_reason(reason)[:500], mask_digits(msg.topic[:300]), excerpt, entries
    )


def _kept(
    plan: Plan,
    topic: Topic,
    msg: Message,
    entry: WasteReading | HealthMeasurement | WeighbridgeTicket,
    problem: tuple[str, str] | None,
) -> bool:
    """True for an entry without a problem; otherwise it becomes a dead letter (code, reason)."""
    if problem is None:
        return True
    plan.quarantine.append(
        _dead_letter(
            topic.site, topic.kind, problem[0], problem[1], msg, raw=entry.model_dump(mode="json")
        )
    )
    return False


def _set_aside(
    plan: Plan,
    topic: Topic,
    msg: Message,
    decoded: Decoded[WasteReading] | Decoded[HealthMeasurement] | Decoded[WeighbridgeTicket],
) -> None:
    """What the decoder set aside: the fields v1 does not define counted, each rejected entry a
    dead letter."""
    plan.ignored.update(decoded.ignored)
    for rej in decoded.rejected:
        plan.quarantine.append(
            _dead_letter(
                topic.site,
                topic.kind,
                rej.code,
                f"entry {rej.index}: {rej.reason}",
                msg,
                raw=rej.raw,
            )
        )


def _rollback(
    plan: Plan, mark: tuple[int, int, int, int, int, Counter[tuple[int, str]], int]
) -> None:
    """Undo whatever a message that failed half-way added to the plan."""
    lines, quarantine, plan.readings, plan.measurements, plan.statuses, plan.days, health = mark
    del plan.lines[lines:]
    del plan.health_lines[health:]
    del plan.quarantine[quarantine:]


def day_marker_lines(days: Counter[tuple[int, str]], time_ns: int) -> list[str]:
    """Markers telling the aggregator which (Shanghai day, site) got new readings: one per pair.

    Series = the site (bounded: one per site, not per site and day); time = the write's millisecond
    plus the day number in nanoseconds, so two markers can only be one point when they name the same
    site, day and millisecond (the same news), whichever workers wrote them.
    """
    ms_ns = time_ns // 1_000_000 * 1_000_000
    return [
        line(
            m.DIRTY_SITE_DAY.name,
            {"site": site},
            {"day": date_of(d).isoformat(), "points": n},
            ms_ns + d,
        )
        for (d, site), n in sorted(days.items())
    ]


def topic_of(topic: str) -> Topic:
    """The topic parsed, or a placeholder naming site "unknown" (for dead letters and logs)."""
    try:
        return parse(topic)
    except TopicError:
        return Topic("waste", "unknown", "readings")


def _count_entries(payload: bytes) -> int:
    """How many entries a rejected payload held (1 when it is not a batch)."""
    try:
        doc = load_json(payload)
    except ContractError:
        return 1
    entries = (
        doc.get("readings") or doc.get("measurements") or doc.get("tickets")
        if isinstance(doc, dict)
        else None
    )
    return len(entries) if isinstance(entries, list) else 1
