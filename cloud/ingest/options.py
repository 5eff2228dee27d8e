"""Tuning of one ingestion worker: the defaults, once (`cloud.settings.IngestSettings` refers to them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cloud.quarantine import DEFAULT_KEEP_DAYS

DEFAULT_MAX_AGE_DAYS = 90.0  # a replay after an outage is welcome; rewriting history is not


@dataclass(frozen=True)
class WorkerOptions:
    """Tuning of one worker: a batch is written when it holds batch_readings or batch_ms passed."""

    name: str = "ingest-1"
    group: str = "ingest"
    batch_readings: int = 10_000
    batch_ms: int = 200
    receive_maximum: int = 2000
    stats_interval_s: float = 5.0
    quarantine_keep_days: float = DEFAULT_KEEP_DAYS
    prune_interval_s: float = 3600.0
    max_backoff_s: float = 10.0
    qos0_inbox: int = 1000  # QoS 0 messages waiting at most (QoS 1 is bounded by receive_maximum)
    ready_file: Path | None = (
        None  # written after each granted subscription, removed on stop (cloud.ingest.ready)
    )
