"""Names of every InfluxDB measurement, tag and field the pipeline writes.

Dashboards and tests take names from here, so a rename breaks a test, not a panel.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Measurement:
    """One InfluxDB measurement: its name, tag keys and field keys (with line-protocol types)."""

    name: str
    tags: tuple[str, ...]
    fields: dict[str, str]  # field -> "float" | "integer" | "string" | "boolean"


WASTE_READING = Measurement(
    "waste_reading",
    tags=("site", "area", "device", "category"),
    fields={"net_kg": "float", "gross_kg": "float", "seq": "integer", "resident": "string"},
)
"""One deposit. Point time = ts ms * 1e6 + seq mod 1e6 ns: (device, seq) is the identity."""

WASTE_DAILY = Measurement(
    "waste_daily",
    tags=("site", "area", "category"),
    fields={"tonnes": "float", "net_g": "integer", "net_mg": "integer", "deposits": "integer"},
)
"""Daily tonnage per (Asia/Shanghai day, site, category); time = that day's midnight. net_mg keeps
the exact milligrams, so roll-ups summed from these rows are exact."""

WASTE_AREA_DAILY = Measurement(
    "waste_area_daily",
    tags=("area", "category"),
    fields={
        "tonnes": "float",
        "net_g": "integer",
        "net_mg": "integer",
        "deposits": "integer",
        "residents": "integer",
        "meets_standard": "boolean",
    },
)
"""Roll-up per (Shanghai day, area, category), deduplicated like waste_daily; residents = distinct
resident pseudonyms that deposited. area "all" is the whole district, category "all" every category;
meets_standard (the sorting standard, on an area's "all" row) is what the sorting target counts."""

WASTE_TARGETS = Measurement(
    "waste_targets",
    tags=(),
    fields={
        "recyclable_tonnes": "float",
        "recyclable_goal_tonnes": "float",
        "recyclable_met": "boolean",
        "dry_tonnes_per_day_30d": "float",
        "dry_reference_tonnes_per_day": "float",
        "dry_reference": "string",
        "dry_change_pct": "float",
        "dry_goal_change_pct": "float",
        "dry_met": "boolean",
        "sorting_areas_meeting": "integer",
        "sorting_areas": "integer",
        "sorting_pct": "float",
        "sorting_goal_pct": "float",
        "sorting_met": "boolean",
        # issue 15: which source each headline figure used, and the scale indicator beside it
        "recyclable_source": "string",  # weighbridge | station_scales
        "recyclable_g": "integer",  # exact grams of the weighbridge figure
        "recyclable_scale_tonnes": "float",
        "recyclable_paper_tonnes": "float",  # weighbridge sub-categories (contract Subcategory)
        "recyclable_plastic_tonnes": "float",
        "recyclable_metal_tonnes": "float",
        "recyclable_glass_tonnes": "float",
        "recyclable_textile_tonnes": "float",
        "recyclable_other_tonnes": "float",
        "dry_source": "string",
        "dry_disposal_g": "integer",  # the day's dry disposal (weighbridge), exact grams
        "dry_scale_tonnes_per_day_30d": "float",
        "dry_scale_change_pct": "float",
        "sorting_source": "string",  # station_scales (proxy) | inspections
        "weighbridge_tickets": "integer",
    },
)
"""The plan's three targets for one Shanghai day (time = that day's midnight); see docs/aggregation.md.
Fields that cannot be computed (no reference for the dry trend) are left out of the point."""

WEIGHBRIDGE_TICKET = Measurement(
    "weighbridge_ticket",
    tags=("site", "device", "source_area", "category", "subcategory"),
    fields={
        "ticket": "integer",
        "net_g": "integer",
        "gross_g": "integer",
        "tare_g": "integer",
        "gross_ts": "integer",
        "tare_source": "string",
        "plate": "string",
        "plate_source": "string",
        "destination": "string",
    },
)
"""One weighbridge ticket (gumei.weighbridge.tickets.v1), exact integer grams. Point time = ts ms *
1e6 + ticket mod 1e6 ns: (device, ticket) is the identity, a redelivery overwrites the same point.
subcategory only on recyclable tickets; source_area is a registry area (where the load comes from),
site the weighbridge. Marked like readings (dirty_site_day with the weighbridge's site), so the
aggregator recomputes weighbridge_daily, the reconciliation and the targets of that day."""

WEIGHBRIDGE_DAILY = Measurement(
    "weighbridge_daily",
    tags=("area", "category", "subcategory"),
    fields={"tonnes": "float", "net_g": "integer", "loads": "integer", "tickets": "integer"},
)
"""Weighbridge tonnage per (Shanghai day of the ticket's close, source area, category,
subcategory), each load counted once at its first weighbridge (cloud/aggregate/official.py):
net_g exact grams and loads of the counted tickets, tickets = every distinct stored ticket
(re-weighings included). area "all" = district, category "all" = every category, subcategory
"all" except on the recyclable sub-category rows. Time = that day's midnight."""

WASTE_RECONCILIATION = Measurement(
    "waste_reconciliation",
    tags=("area", "category"),
    fields={
        "scale_g": "integer",
        "scale_tonnes": "float",
        "weighbridge_g": "integer",
        "weighbridge_tonnes": "float",
        "diff_g": "integer",
        "diff_tonnes": "float",
        "diff_pct": "float",
    },
)
"""Station scales vs weighbridge per (Shanghai day, area, category): the scales' grams of the
area's stations, the weighbridge's grams of loads from that source area, diff = weighbridge −
scale (tonnes and % of the scale figure; diff_pct left out where the scales weighed nothing).
area "all" = district, category "all" = every category. Time = that day's midnight."""

WASTE_SORTING_COMPARISON = Measurement(
    "waste_sorting_comparison",
    tags=("area",),
    fields={
        "scale_data": "boolean",
        "scale_meets": "boolean",
        "inspected": "boolean",
        "inspection_passed": "boolean",
        "inspection_ms": "integer",
        "disagree": "boolean",
        "status": "string",
    },
)
"""The scale-based sorting indicator vs the inspection result per (Shanghai day, area): whether
the area's day meets the weight-based sorting standard (scale_meets; false without a
waste_area_daily row, scale_data false), its latest inspection of place kind "area" in the
inspection window (inspected; inspection_passed and inspection_ms only when inspected), and
whether they disagree. status = "agree" | "disagree" | "not_inspected". Written by the
aggregator with waste_reconciliation (cloud/aggregate/sorting_gap.py). Time = that day's midnight."""

INSPECTION = Measurement(
    "inspection",
    tags=("place_type", "place_kind", "place", "area"),
    fields={
        "id": "string",
        "score": "integer",
        "pass_score": "integer",
        "passed": "boolean",
        "labelled": "boolean",
        "containers": "integer",
        "containers_pure": "integer",
        "container_detail": "string",
        "guidance": "boolean",
        "clean": "boolean",
        "records": "boolean",
        "notes": "string",
        "photo": "string",
        "by": "string",
    },
)
"""One on-site inspection (五有 check) of a place, written by the API for the inspector role
(docs/inspections.md). Point time = the check's ms * 1e6 + a number from its id (< 1e6 ns), so two
checks of one place in the same millisecond stay two points. place_type residential|unit|public,
place_kind site|area|unit|public_place; passed (达标) is derived from score >= pass_score and the five
items; container_detail e.g. "wet:1,dry:0" (1 = judged >= 85 % pure); photo = the sha256 of the
photo file (the file lives in the inspections.photo_dir folder, not in InfluxDB); by = the token's name."""

HEALTH_MEASUREMENT = Measurement(
    "health_measurement",
    tags=("site", "device", "type"),
    fields={
        "seq": "integer",
        "resident": "string",
        "abnormal": "boolean",
        "flag": "string",
        "tier": "string",  # normal | recheck | refer | urgent (cloud/health/triage.py)
        # plus one float field per contract value key, e.g. systolic_mmhg
    },
)

HEALTH_DAILY = Measurement(
    "health_daily",
    tags=("site", "type"),
    fields={
        "visits": "integer",
        "measurements": "integer",
        "anonymous": "integer",
        "abnormal": "integer",
        "abnormal_rate": "float",
        "residents": "integer",
        "suppressed": "boolean",
    },
)
"""Aggregate statistics per (Asia/Shanghai day, hut, measurement type); type "all" is the whole hut
and alone carries visits (distinct resident pseudonyms) and anonymous (no card tap); time = that
day's midnight; residents (type rows) = distinct residents of that type. Exact in the health
database; in the main database (operators, Grafana) a cell of fewer than k residents, or its
complement, has only suppressed=true (docs/health.md)."""

HEALTH_FOLLOWUP = Measurement(
    "health_followup",
    tags=("resident", "reason", "event", "device"),
    fields={
        "tier": "string",
        "code": "string",
        "type": "string",
        "seq": "integer",
        "followup": "string",
        "outcome": "string",
        "by": "string",
    },
)
"""The family-doctor follow-ups as events (health database only), one point per event; the worklist
is their fold (cloud/health/followups.py). event "raised": a refer/urgent reading, written by the
aggregator's health pass at the reading's own point time with its device tag, so reprocessing
rewrites the same point (tier, code, type, seq). event "contacted"/"closed": a health-staff action
through the API at the request's time (followup = the follow-up's id, outcome when closed, by =
the token's name); no free text, so no name can be stored."""

HEALTH_FOLLOWUP_COUNTS = Measurement(
    "health_followup_counts",
    tags=("state", "reason"),
    fields={"followups": "integer", "suppressed": "boolean", "hidden": "integer"},
)
"""How many follow-ups are open (not closed, overdue and contacted included), overdue (open past
their due day) and closed this Shanghai week, per reason ("all" = every reason), as of the
aggregator's last run on that day (time = the day's midnight). Main database, for operators and
Grafana: a cell of fewer than k distinct residents (or its complement) has only suppressed=true and
hidden=1 (an integer, so a panel can show that a day's figure exists but is hidden); shown cells
have hidden=0."""

GATEWAY_STATUS = Measurement(
    "gateway_status",
    tags=("site", "kind"),
    fields={
        "online": "boolean",
        "buffered": "integer",
        "devices_ok": "integer",
        "devices": "integer",
    },
)

DEVICE_STATUS = Measurement(
    "device_status",
    tags=("site", "device"),
    fields={"ok": "boolean", "fill_pct": "float"},
)

QUARANTINE = Measurement(
    "quarantine",
    tags=("site", "kind", "code", "worker"),
    fields={"reason": "string", "topic": "string", "payload": "string", "entries": "integer"},
)
"""Dead letters: a whole payload (entries = how many it held) or one entry, with its reason."""

DIRTY_SITE_DAY = Measurement(
    "dirty_site_day",
    tags=("site",),
    fields={"day": "string", "points": "integer"},
)
"""Marks a (site, Shanghai day) touched by newly written readings or measurements (day = ISO date);
the aggregator recomputes only those. Written by the ingestion worker in the same request as the
points it marks, after them; time = the write's millisecond + the day number in ns (unique per
site, day and millisecond)."""

DIRTY_DAY = Measurement(
    "dirty_day",
    tags=("day",),
    fields={"points": "integer"},
)
"""The former whole-day marker (workers before dirty_site_day). Still read, so a worker of the
previous version during a rolling upgrade loses nothing: such a day is recomputed whole."""

AGGREGATOR_STATE = Measurement(
    "aggregator_state",
    tags=(),
    fields={"watermark_ms": "integer", "residents_watermark_ms": "integer", "days": "integer"},
)
"""Where the incremental aggregator got to: markers before watermark_ms are done (site, area and
district tonnage, targets), before residents_watermark_ms the district's distinct residents."""

INGEST_STATS = Measurement(
    "ingest_stats",
    tags=("worker",),
    fields={
        "received": "integer",
        "entries": "integer",
        "written": "integer",
        "quarantined": "integer",
        "redelivered": "integer",
        "stale": "integer",
        "write_errors": "integer",
        "rejected_batches": "integer",
        "queue_depth": "integer",
        "batch_latency_ms": "float",
        "max_batch_latency_ms": "float",
        "entries_per_s": "float",
        "written_per_s": "float",
    },
)
"""Self-monitoring of one ingestion worker, every few seconds: counters are monotonic per process
(received = messages, entries = readings in, written, quarantined entries, redelivered messages,
stale = received on a dropped connection and left to redelivery), plus queue depth, the last and
the worst batch latency of the interval, and rates over the interval."""

OPS_EVENT = Measurement(
    "ops_event",
    tags=("rule", "subject"),
    fields={
        "action": "string",
        "state": "string",
        "severity": "string",
        "audience": "string",
        "deadline_ms": "integer",
        "value": "float",
        "by": "string",
        "note": "string",
    },
)
"""One state change of an operations event (docs/operations.md): an append-only log per (rule,
subject); the event's state is the fold of its changes, where a change that does not apply (a
second open, an acknowledge of a resolved event) is a no-op, so any number of evaluators writing the
same change agree. state = the state after the change (what Grafana reads); time = the change's ms."""

OPS_OBSERVED = Measurement(
    "ops_observed",
    tags=("site", "device"),
    fields={"gross_kg": "float", "rate_kg_h": "float", "reading_ms": "integer"},
)
"""What the operations evaluator last saw of one scale: its latest gross weight and fill rate; time =
that reading's time, so rewriting it is idempotent and the latest point per device is the state."""

OPS_PROFILE = Measurement(
    "ops_profile",
    tags=("site",),
    fields={"weeks": "float", "profile": "string"},
)
"""A station's usual deposits per hour of the week (Monday 00:00 Shanghai first; 168 comma-separated
means over its last weeks of history); time = the Shanghai day it was learned (one point a day)."""

OPS_DELIVERY = Measurement(
    "ops_delivery",
    tags=("subscriber", "outcome"),
    fields={
        "key": "string",
        "status": "integer",
        "error": "string",
        "latency_ms": "float",
        "event_ms": "integer",
    },
)
"""The delivery log: one point per attempt to send one notice (key = its idempotency key) to one
subscriber; outcome delivered | failed | rejected. What is delivered or rejected is never sent again."""

OPS_STATE = Measurement(
    "ops_state",
    tags=(),
    fields={"watermark_ms": "integer", "subjects": "integer"},
)
"""Where the operations evaluator got to: dirty_site_day markers before watermark_ms are seen."""

ALL = (
    WASTE_READING,
    WASTE_DAILY,
    WASTE_AREA_DAILY,
    WASTE_TARGETS,
    WEIGHBRIDGE_TICKET,
    INSPECTION,
    WEIGHBRIDGE_DAILY,
    WASTE_RECONCILIATION,
    WASTE_SORTING_COMPARISON,
    HEALTH_MEASUREMENT,
    HEALTH_DAILY,
    HEALTH_FOLLOWUP,
    HEALTH_FOLLOWUP_COUNTS,
    GATEWAY_STATUS,
    DEVICE_STATUS,
    QUARANTINE,
    DIRTY_SITE_DAY,
    DIRTY_DAY,
    AGGREGATOR_STATE,
    INGEST_STATS,
    OPS_EVENT,
    OPS_OBSERVED,
    OPS_PROFILE,
    OPS_DELIVERY,
    OPS_STATE,
)
