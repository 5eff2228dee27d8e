"""A further API process on the shared stack's files, with its own settings (environment) and port."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devstack.services import free_port, stop_process
from devstack.stack import LocalStack
from tests.support.common import wait_for_api


@contextmanager
def api_process(
    stack: LocalStack,
    cloud_config: Path,
    name: str,
    env: dict[str, str] | None = None,
    *,
    any_host: bool = False,
) -> Iterator[str]:
    """`gumei api` as its own process (log: <root>/logs/<name>.log); yields its URL, stops it after.

    any_host binds 0.0.0.0, for tests whose requests carry client addresses other than loopback's.
    """
    port = free_port()
    args = ["api", "--config", str(cloud_config), "--port", str(port)]
    if any_host:
        args += ["--host", "0.0.0.0"]
    proc = stack.spawn(name, *args, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_api(url)
        yield url
    finally:
        stop_process(proc)
