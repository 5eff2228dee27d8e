"""What many tests share: the project folder, the CLI run as a user runs it, waiting, publishing and
reading InfluxDB back. Fixtures (the session's real services) are in tests/conftest.py."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import paho.mqtt.client as mqtt

from cloud.days import SHANGHAI
from cloud.influx import InfluxClient

T = TypeVar("T")
PROJECT = Path(__file__).resolve().parent.parent.parent


def wait_until(
    probe: Callable[[], T | None],
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Call probe until it returns something truthy, or fail the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}; last value {value!r}"
            )
        time.sleep(interval)


def wait_for_api(url: str) -> None:
    """Wait until an API process answers /healthz."""

    def up() -> bool:
        try:
            return httpx.get(url + "/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(up, what=f"API /healthz at {url}")


def gumei(
    *args: str, timeout: float = 120, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the gumei CLI as a user would (env: extra variables, e.g. LocalStack.admin_env())."""
    proc = subprocess.run(
        [sys.executable, "-m", "gumei.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
        cwd=PROJECT,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"gumei {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}"
        )
    return proc


def publish(client: mqtt.Client, topic: str, payload: bytes | str, qos: int = 1) -> None:
    """Publish and wait for the broker's PUBACK."""
    info = client.publish(topic, payload, qos=qos)
    info.wait_for_publish(timeout=10)
    assert info.is_published(), f"no PUBACK for {topic}"


def count(influx: InfluxClient, q: str, db: str | None = None) -> int:
    """The single number a COUNT/SUM query returns, or 0 (main database, or `db`)."""
    series = influx.query(q, db=db)
    return int(series[0].values[0][1]) if series and series[0].values else 0


def rows_of(influx: InfluxClient, q: str, db: str | None = None) -> list[dict[str, Any]]:
    """Query rows as dicts (tags merged in), from the main database or `db`."""
    out = []
    for s in influx.query(q, db=db):
        for v in s.values:
            out.append({**s.tags, **dict(zip(s.columns, v, strict=True))})
    return out


def ms(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, milli: int = 0) -> int:
    """Epoch ms of a Shanghai wall-clock time."""
    return int(dt.datetime(y, mo, d, h, mi, s, milli * 1000, tzinfo=SHANGHAI).timestamp() * 1000)
