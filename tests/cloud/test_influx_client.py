"""The InfluxDB client against a real influxd: auth modes, errors sorted, gzip, chunked reads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from cloud.influx import (
    FatalInfluxError,
    InfluxClient,
    InfluxConfig,
    RetryableInfluxError,
    WriteRejected,
    error_for,
)
from devstack.services import free_port
from devstack.stack import LocalStack


def test_basic_auth_write_query_and_gzip(stack: LocalStack) -> None:
    body = "".join(
        f"client_test,k=v{i % 3} x={i}i {1_600_000_000_000_000_000 + i}\n" for i in range(3000)
    ).encode()
    assert len(body) > 4096  # goes gzip-compressed
    with InfluxClient(InfluxConfig(**{**stack.influx_config().__dict__, "gzip": True})) as client:
        assert client.gzip
        client.write_lines(body)
        series = client.query("SELECT count(x) FROM client_test")
    assert series[0].values[0][1] == 3000


@pytest.mark.parametrize(
    ("url", "setting", "expected"),
    [
        ("http://127.0.0.1:8086", None, False),
        ("http://localhost:8086", None, False),
        ("http://[::1]:8086", None, False),
        ("https://influx.example.com", None, True),
        ("http://10.1.2.3:8086", None, True),
        ("http://127.0.0.1:8086", True, True),
        ("https://influx.example.com", False, False),
    ],
)
def test_gzip_unless_the_server_is_on_this_host(
    url: str, setting: bool | None, expected: bool
) -> None:
    with InfluxClient(InfluxConfig(url=url, gzip=setting)) as client:
        assert client.gzip is expected


def test_chunked_query_streams_everything(influx: InfluxClient) -> None:
    influx.write_lines(
        "".join(
            f"chunk_test x={i}i {1_600_000_000_000_000_000 + i}\n" for i in range(2500)
        ).encode()
    )
    rows = sum(
        len(s.values) for s in influx.query_chunks("SELECT x FROM chunk_test", chunk_size=300)
    )
    assert rows == 2500


def test_wrong_password_is_fatal_with_a_clear_message(stack: LocalStack) -> None:
    cfg = stack.influx_config()
    with (
        InfluxClient(InfluxConfig(**{**cfg.__dict__, "password": "wrong"})) as bad,
        pytest.raises(FatalInfluxError, match="refused the credentials"),
    ):
        bad.query("SHOW DATABASES")


def test_token_header_reaches_the_server(stack: LocalStack) -> None:
    """influxd 1.6.7 does not take `Token` auth; the header path is exercised and the 401 classified."""
    cfg = stack.influx_config()
    with (
        InfluxClient(
            InfluxConfig(url=cfg.url, database=cfg.database, auth="token", token="abc")
        ) as client,
        pytest.raises(FatalInfluxError, match="401"),
    ):
        client.query("SHOW DATABASES")


def test_bad_line_is_a_rejected_batch(influx: InfluxClient) -> None:
    with pytest.raises(WriteRejected, match="rejected the batch"):
        influx.write_lines(b"bad line without fields\n")


def test_bad_query_is_fatal(influx: InfluxClient) -> None:
    with pytest.raises(FatalInfluxError, match="query error|error"):
        influx.query("SELEKT nothing")


def test_unreachable_server_is_retryable() -> None:
    with InfluxClient(InfluxConfig(url=f"http://127.0.0.1:{free_port()}", retries=1)) as client:
        with pytest.raises(RetryableInfluxError, match="unreachable"):
            client.write_lines(b"m x=1i 1\n")
        assert client.ping() is False


@pytest.fixture()
def token_proxy(stack: LocalStack) -> Iterator[str]:
    """A loopback proxy standing in for InfluxDB 2.x/3.x's token check: it admits `Token <t>`
    and forwards to the real influxd with its 1.x credentials; anything else gets 401."""
    cfg = stack.influx_config()
    upstream = httpx.Client(base_url=cfg.url, auth=(cfg.username, cfg.password))

    class Proxy(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            if self.headers.get("Authorization") != "Token s3cret":
                self.send_response(401)
                self.end_headers()
                self.wfile.write(b'{"error":"unauthorized access"}')
                return
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() in ("content-type", "content-encoding")
            }
            r = upstream.request(self.command, self.path, content=body, headers=headers)
            self.send_response(r.status_code)
            self.send_header("Content-Type", r.headers.get("content-type", "application/json"))
            self.end_headers()
            self.wfile.write(r.content)

        do_GET = do_POST = _forward

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    upstream.close()


def test_token_auth_end_to_end_through_a_v2_style_gate(token_proxy: str, stack: LocalStack) -> None:
    cfg = stack.influx_config()
    with InfluxClient(
        InfluxConfig(url=token_proxy, database=cfg.database, auth="token", token="s3cret")
    ) as client:
        client.write_lines(b"token_test x=1i 1600000000000000000\n")
        assert client.query("SELECT count(x) FROM token_test")[0].values[0][1] == 1
    with (
        InfluxClient(
            InfluxConfig(url=token_proxy, database=cfg.database, auth="token", token="nope")
        ) as client,
        pytest.raises(FatalInfluxError, match="401"),
    ):
        client.query("SHOW DATABASES")


@pytest.mark.parametrize(
    ("status", "path", "kind"),
    [
        (400, "/write", WriteRejected),
        (413, "/write", WriteRejected),
        (422, "/write", WriteRejected),
        (
            409,
            "/write",
            WriteRejected,
        ),  # any 4xx the data causes: isolate and quarantine, never retry as is
        (401, "/write", FatalInfluxError),
        (403, "/write", FatalInfluxError),
        (404, "/write", FatalInfluxError),
        (429, "/write", RetryableInfluxError),
        (500, "/write", RetryableInfluxError),
        (503, "/query", RetryableInfluxError),
        (400, "/query", FatalInfluxError),
    ],
)
def test_errors_are_sorted_by_who_is_at_fault(
    status: int, path: str, kind: type[Exception]
) -> None:
    err = error_for(status, path, "msg")
    assert type(err) is kind and str(status) in str(err)


def test_missing_database_is_fatal_not_poison(stack: LocalStack) -> None:
    """A 404 (no such database) is configuration, not data: the worker must not quarantine everything."""
    config = stack.influx_config()
    with (
        InfluxClient(InfluxConfig(**{**config.__dict__, "database": "no_such_db"})) as client,
        pytest.raises(FatalInfluxError) as err,
    ):
        client.write_lines(b"x v=1i 1\n")
    assert not isinstance(err.value, WriteRejected)
