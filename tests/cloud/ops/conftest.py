"""A private influxd for the operations tests that move the clock (their own data, no neighbours)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloud.influx import InfluxClient, InfluxConfig
from devstack.services import Influxd


@pytest.fixture(scope="module")
def private_influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxClient]:
    server = Influxd(tmp_path_factory.mktemp("ops-influxd"))
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
