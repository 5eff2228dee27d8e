"""A private influxd of a test module's own (its data, its clock), and sample operations events."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cloud.influx import InfluxClient, InfluxConfig
from cloud.ops.lifecycle import Change, State, change_for
from cloud.ops.rules import BY_NAME
from cloud.ops.store import change_line
from devstack.services import Influxd

HOUR = 3_600_000


@contextmanager
def private_influx(root: Path) -> Iterator[InfluxClient]:
    """influxd under root (the project's databases made, devstack.services.Influxd), a client as
    its administrator; stopped afterwards."""
    server = Influxd(root)
    server.start()
    client = InfluxClient(
        InfluxConfig(
            url=server.url, auth="basic", username=server.username, password=server.password
        )
    )
    try:
        yield client
    finally:
        client.close()
        server.stop()


def sample_events(now: int) -> list[str]:
    """Operations events as the evaluator and the API store them (records database): a major
    gateway event opened 5 h before now (overdue: 4 h allowed), a bin event acknowledged in time,
    and a gateway event resolved."""
    gw, full = BY_NAME["gateway_offline"], BY_NAME["bin_full"]
    changes: list[tuple[Change, State]] = [
        (change_for(gw, "WS-0201", "open", now - 5 * HOUR, 11.0), "open"),
        (change_for(full, "WS-0101-S1", "open", now - HOUR, 93.5), "open"),
        (
            change_for(
                full,
                "WS-0101-S1",
                "acknowledge",
                now - HOUR + 60_000,
                93.5,
                by="tok",
                opened_ms=now - HOUR,
            ),
            "acknowledged",
        ),
        (change_for(gw, "WS-0102", "open", now - 9 * HOUR), "open"),
        (
            change_for(gw, "WS-0102", "resolve", now - 8 * HOUR, opened_ms=now - 9 * HOUR),
            "resolved",
        ),
    ]
    return [change_line(c, state) for c, state in changes]
