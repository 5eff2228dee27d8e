"""Session-scoped real services: Mosquitto, influxd, an ingestion worker and the API, on free ports."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pluggy
import pytest

from broker.dynsec import worker_name
from cloud import registry as registry_mod
from cloud.influx import InfluxClient
from devstack.services import free_port
from devstack.stack import LocalStack
from runtime.mqtt import make_client
from tests.support.common import wait_for_api

# Tests replay fixed historic days (2021-2025), each test its own, so none shares a day with another;
# the workers they spawn accept readings that old. The default 90-day horizon (too_old) is what
# tests/system/test_hostile_gateway.py runs, with GUMEI_INGEST__MAX_AGE_DAYS unset for its worker.
HISTORY_DAYS = "3650"
os.environ["GUMEI_INGEST__MAX_AGE_DAYS"] = HISTORY_DAYS


@pytest.fixture(scope="session")
def registry() -> registry_mod.Registry:
    """The project's default site registry."""
    return registry_mod.load()


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, registry: registry_mod.Registry
) -> Iterator[LocalStack]:
    """A real Mosquitto and influxd for the whole session."""
    s = LocalStack(tmp_path_factory.mktemp("stack"), registry)
    s.start()
    _STACKS.append(s)
    yield s
    s.stop()


_STACKS: list[LocalStack] = []


@pytest.fixture(scope="session")
def cloud_config(stack: LocalStack) -> Path:
    """The cloud TOML config pointing at the session's stack."""
    return stack.write_cloud_config(registry_mod.DEFAULT_PATH, extra=f"api_port = {free_port()}")


@pytest.fixture(scope="session")
def influx(stack: LocalStack) -> Iterator[InfluxClient]:
    """A client of the session's influxd."""
    with InfluxClient(stack.influx_config()) as client:
        yield client


@pytest.fixture(scope="session")
def ingest_worker(stack: LocalStack, cloud_config: Path) -> subprocess.Popen[bytes]:
    """One ingestion worker process (identity ingest-1), subscribed."""
    proc = stack.spawn("ingest", "ingest", "--config", str(cloud_config), "--name", worker_name(1))
    stack.wait_ready(worker_name(1), proc)
    return proc


@pytest.fixture(scope="session")
def api_url(stack: LocalStack, cloud_config: Path) -> str:
    """The API served by uvicorn in its own process."""
    port = free_port()
    stack.spawn("api", "api", "--config", str(cloud_config), "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    wait_for_api(url)
    return url


@pytest.fixture(scope="session")
def operator_token(stack: LocalStack) -> str:
    """A bearer token with the operator role."""
    return stack.tokens().create("test operator", "operator")


@pytest.fixture(scope="module")
def gateway(stack: LocalStack) -> Iterator[Callable[[str], mqtt.Client]]:
    """Connected MQTT clients with a gateway's own identity (client id = site id; disconnected afterwards)."""
    clients: list[mqtt.Client] = []

    def connect(site: str) -> mqtt.Client:
        client = make_client(stack.endpoint(site), site)
        ep = stack.endpoint(site)
        client.connect(ep.host, ep.port)
        client.loop_start()
        clients.append(client)
        return client

    yield connect
    for c in clients:
        c.disconnect()
        c.loop_stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pluggy.Result[pytest.TestReport], None]:
    """Attach the services' and processes' logs to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and _STACKS:
        for s in _STACKS:
            for log in sorted(s.root.rglob("*.log")):
                text = log.read_text(errors="replace").splitlines()[-40:]
                report.sections.append((f"log {log.relative_to(s.root)}", "\n".join(text)))
