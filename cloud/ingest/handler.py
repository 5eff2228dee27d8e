"""Turn received MQTT messages into one InfluxDB write: valid points, quarantine records, day markers.

Pure: no network. The worker calls `plan_batch` and writes the result in one request.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from cloud import measurements as m
from cloud.days import date_of, day_number
from cloud.health.flags import screen
from cloud.lineproto import (
    LineProtocolError,
    WasteHeads,
    line,
    waste_line_heads,
    waste_lines,
    waste_lines_from,
)
from cloud.quarantine import QuarantineRecord, quarantine_lines
from cloud.registry import Registry, Site
from contract import PayloadRejected, TopicError, decode_health, decode_status, decode_waste
from contract.fast import decode_waste_fast
from contract.models import FUTURE_TOLERANCE_MS
from contract.models import now_ms as wall_now_ms
from contract.topics import Topic, parse

__all__ = ["BatchPlanner", "Message", "Plan", "QuarantineRecord", "day_marker_lines", "quarantine_lines"]

PAYLOAD_EXCERPT = 2048


@dataclass(frozen=True, slots=True)
class Message:
    """One received MQTT message (mid is what the worker acknowledges)."""

    topic: str
    payload: bytes
    mid: int = 0
    dup: bool = False
    received_ns: int = 0
    connection: int = 0  # which broker connection delivered it (mids are only valid on that one)


@dataclass
class Plan:
    """What one batch of messages becomes."""

    lines: list[str] = field(default_factory=list)
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    readings: int = 0
    measurements: int = 0
    statuses: int = 0
    days: Counter[int] = field(default_factory=Counter)


HealthEncoder = Callable[[str, Sequence[object]], list[str]]


def _excerpt(payload: bytes | str) -> str:
    text = payload if isinstance(payload, str) else payload[:PAYLOAD_EXCERPT].decode("utf-8", "replace")
    return text[:PAYLOAD_EXCERPT]


def _line_heads(site: Site) -> WasteHeads | None:
    """Line heads of the site's active devices; None if the site or area cannot be a tag (never for
    a valid registry; the slow path then reports it as before)."""
    try:
        return waste_line_heads(site.id, site.area, (d.id for d in site.devices if not d.retired))
    except LineProtocolError:
        return None


class BatchPlanner:
    """Decodes and validates messages against the registry; stateless between batches.

    Waste readings payloads that are valid as a whole (every entry valid, of a registered active
    device of the site, not in the future) take a fast path (msgspec, `_plan_readings_fast`); every
    other payload, and every planner built with `fast_path=False`, takes the pydantic path, which
    quarantines entry by entry with reasons. Both produce the same plan for the same message.
    """

    def __init__(self, registry: Registry, health_encoder: HealthEncoder | None = None, fast_path: bool = True) -> None:
        self._sites = registry.site_index()
        self._known = {sid: frozenset(d.id for d in site.devices if not d.retired) for sid, site in self._sites.items()}
        self._health_encoder = health_encoder
        self._heads = {sid: _line_heads(site) for sid, site in self._sites.items() if site.kind == "waste"} if fast_path else {}

    def plan_batch(self, messages: Iterable[Message], now_ms: int | None = None) -> Plan:
        """Plan one write for these messages; never raises for bad input."""
        plan = Plan()
        for msg in messages:
            try:
                self._plan_one(msg, plan, now_ms)
            except TopicError as exc:
                plan.quarantine.append(QuarantineRecord("unknown", "unknown", "bad_topic", str(exc), msg.topic[:200], _excerpt(msg.payload)))
            except PayloadRejected as exc:
                topic = _safe_parse(msg.topic)
                plan.quarantine.append(
                    QuarantineRecord(topic.site, topic.kind, exc.code, exc.detail, msg.topic, _excerpt(msg.payload), _count_entries(msg.payload))
                )
        return plan

    def _plan_one(self, msg: Message, plan: Plan, now_ms: int | None) -> None:
        topic = parse(msg.topic)
        site = self._sites.get(topic.site)
        if site is None or site.retired:
            raise PayloadRejected("unknown_site", f"site {topic.site} is not in the registry")
        if site.kind != topic.kind:
            raise PayloadRejected("wrong_kind", f"site {topic.site} is a {site.kind} site, not {topic.kind}")
        if topic.channel == "status":
            self._plan_status(msg, topic, plan)
            return
        if topic.channel == "readings" and self._plan_readings_fast(msg.payload, site.id, plan, now_ms):
            return
        known = self._known[site.id]
        if topic.channel == "readings":
            decoded = decode_waste(msg.payload, topic, now_ms)
            valid = []
            for r in decoded.valid:
                if r.device not in known:
                    plan.quarantine.append(self._entry_record(topic, msg, "unknown_device", f"device {r.device} is not registered at {site.id}", r.model_dump_json()))
                else:
                    valid.append(r)
            plan.lines.extend(waste_lines(site.id, site.area, valid))
            plan.readings += len(valid)
            plan.days.update(day_number(r.ts) for r in valid)
        else:
            if self._health_encoder is None:
                raise PayloadRejected("not_supported", "health ingestion is not enabled on this worker")
            decoded = decode_health(msg.payload, topic, now_ms)  # type: ignore[assignment]
            valid = []
            for x in decoded.valid:
                if x.device not in known:
                    plan.quarantine.append(self._entry_record(topic, msg, "unknown_device", f"device {x.device} is not registered at {site.id}", x.model_dump_json()))
                elif (reason := screen(x.type.value, x.values)[1]) is not None:  # type: ignore[union-attr]
                    plan.quarantine.append(self._entry_record(topic, msg, "implausible", f"{x.device} seq {x.seq}: {reason}", x.model_dump_json()))
                else:
                    valid.append(x)
            plan.lines.extend(self._health_encoder(site.id, valid))
            plan.measurements += len(valid)
            plan.days.update(day_number(x.ts) for x in valid)  # health_daily is recomputed for these days
        for rej in decoded.rejected:
            plan.quarantine.append(self._entry_record(topic, msg, rej.code, f"entry {rej.index}: {rej.reason}", json.dumps(rej.raw, default=str)))

    def _plan_readings_fast(self, payload: bytes, site_id: str, plan: Plan, now_ms: int | None) -> bool:
        """Plan a waste readings payload that needs no quarantine; False (plan untouched) otherwise.

        Same lines, count and days as the slow path would plan (checked against it by the property
        test in tests/test_ingest_fastpath.py). The line-head lookup is the device check.
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
        except KeyError:  # unknown, retired or another site's device: the slow path quarantines it
            return False
        ts = [r.ts for r in readings]
        first, last = min(ts), max(ts)
        if last > (wall_now_ms() if now_ms is None else now_ms) + FUTURE_TOLERANCE_MS:
            return False
        if day_number(first) == day_number(last):  # the usual batch: one Shanghai day
            plan.days[day_number(first)] += len(ts)
        else:
            plan.days.update(day_number(t) for t in ts)
        plan.lines.extend(lines)
        plan.readings += len(readings)
        return True

    @staticmethod
    def _entry_record(topic: Topic, msg: Message, code: str, reason: str, raw: str) -> QuarantineRecord:
        return QuarantineRecord(topic.site, topic.kind, code, reason, msg.topic, _excerpt(raw))

    @staticmethod
    def _plan_status(msg: Message, topic: Topic, plan: Plan) -> None:
        status = decode_status(msg.payload, topic)
        ok = sum(1 for d in status.devices if d.ok)
        plan.lines.append(
            line(
                m.GATEWAY_STATUS.name,
                {"site": topic.site, "kind": topic.kind},
                {"online": status.state == "online", "buffered": status.buffered, "devices_ok": ok, "devices": len(status.devices)},
                msg.received_ns,
            )
        )
        for d in status.devices:
            if d.device.startswith(topic.site + "-"):
                plan.lines.append(
                    line(m.DEVICE_STATUS.name, {"site": topic.site, "device": d.device}, {"ok": d.ok, "fill_pct": d.fill_pct}, msg.received_ns)
                )
        plan.statuses += 1


def day_marker_lines(days: Counter[int], time_ns: int) -> list[str]:
    """Markers telling the aggregator which Shanghai days got new readings."""
    return [line(m.DIRTY_DAY.name, {"day": date_of(d).isoformat()}, {"points": n}, time_ns) for d, n in sorted(days.items())]


def _safe_parse(topic: str) -> Topic:
    try:
        return parse(topic)
    except TopicError:
        return Topic("waste", "unknown", "readings")


def _count_entries(payload: bytes) -> int:
    try:
        doc = json.loads(payload)
        entries = doc.get("readings") or doc.get("measurements") if isinstance(doc, dict) else None
        return len(entries) if isinstance(entries, list) else 1
    except (ValueError, UnicodeDecodeError):
        return 1
