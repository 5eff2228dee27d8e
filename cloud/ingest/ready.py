"""A worker's readiness signal: a small JSON file, written atomically after each granted subscription.

Waiters (tests, benchmarks, the load test, a supervisor) read this file instead of the worker's log
text, so rewording a log line cannot hang them. The file holds the worker's pid (a file left by a
killed process is told apart from a new one's) and how many subscriptions this process has had
granted (1 after start, one more after every reconnect). The worker removes it when it stops.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Ready:
    """What the ready file says: which process, and its granted subscriptions so far."""

    pid: int
    subscriptions: int


def write_ready(path: Path, ready: Ready) -> None:
    """Replace the ready file atomically (a reader sees the old or the new content, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(ready)) + "\n")
    tmp.replace(path)


def read_ready(path: Path) -> Ready | None:
    """The ready file's content, or None while there is none."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return Ready(pid=int(doc["pid"]), subscriptions=int(doc["subscriptions"]))


def remove_ready(path: Path) -> None:
    """Remove the ready file (the worker is stopping)."""
    path.unlink(missing_ok=True)
