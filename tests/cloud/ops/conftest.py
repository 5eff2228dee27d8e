"""A private influxd for the operations tests that move the clock (their own data, no neighbours)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloud.influx import InfluxClient
from tests.support import private_influx as support


@pytest.fixture(scope="module")
def private_influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxClient]:
    with support.private_influx(tmp_path_factory.mktemp("ops-influxd")) as client:
        yield client
