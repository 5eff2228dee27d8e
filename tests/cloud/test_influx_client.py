"""The InfluxDB client against a real influxd: auth modes, errors sorted, gzip, chunked reads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import msgpack
import pytest

from cloud.influx import (
    FatalInfluxError,
    InfluxClient,
    InfluxConfig,
    RetryableInfluxError,
    WriteRejected,
    _json_decoder,
    _json_stream,
    _msgpack_decoder,
    _msgpack_stream,
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


def _msgpack_answer(influx: InfluxClient, q: str, chunk_size: int) -> bytes:
    """influxd's own chunked MessagePack answer to q, as bytes."""
    return b"".join(influx.query_bytes(q, "application/x-msgpack", chunk_size))


def test_query_rows_streams_chunked_msgpack_typed(influx: InfluxClient) -> None:
    """Every row of every series, typed, through chunks of 7 rows (series cut across chunks, chunk
    objects split across network reads), each series' rows in time order, nothing twice."""
    named = {i: f',r="p{i}"' for i in range(1, 500, 2)}
    lines = [
        f"rows_test,dev=d{i % 3} x={i / 4},n={i}i{named.get(i, '')}"
        f" {1_600_000_000_000_000_000 + i * 1_000_000}\n"
        for i in range(500)
    ]
    influx.write_lines("".join(lines).encode())
    q = "SELECT x, n, r FROM rows_test GROUP BY dev"
    got = list(influx.query_rows(q, tuple[int, float, int, str | None], chunk_size=7))
    assert 3 * (500 // 3 // 7) <= len(got) <= 3 * (500 // 3 // 7 + 1)
    assert all(len(values) <= 7 for _, values in got)
    rows = sorted((tags["dev"], *v) for tags, values in got for v in values)
    assert rows == sorted(
        (f"d{i % 3}", 1_600_000_000_000 + i, i / 4, i, f"p{i}" if i % 2 else None)
        for i in range(500)
    )
    for accept in ("application/json", "application/csv"):  # csv comes as text/csv
        assert b"d1" in b"".join(influx.query_bytes(q, accept, 7))
    answer = _msgpack_answer(influx, q, 7)
    one_byte_parts = list(
        _msgpack_stream(
            iter([answer[i : i + 1] for i in range(len(answer))]),
            _msgpack_decoder(tuple[int, float, int, str | None]),
        )
    )
    assert one_byte_parts == got
    # a server that answers chunked JSON (InfluxDB 3's v1 API has no MessagePack): the same rows
    row = tuple[int, float, int, str | None]
    as_json = list(influx.query_rows(q, row, chunk_size=7, accept="application/json"))
    assert as_json == got
    body = b"".join(influx.query_bytes(q, "application/json", 7))
    split = list(
        _json_stream(iter([body[i : i + 5] for i in range(0, len(body), 5)]), _json_decoder(row))
    )
    assert split == got
    with pytest.raises(RetryableInfluxError, match="ended early"):
        list(_json_stream(iter([body[: len(body) // 2]]), _json_decoder(row)))


def test_query_rows_refuses_bad_answers_with_one_line(influx: InfluxClient) -> None:
    """A cut answer (mid-object, or after a chunk that says more follows), bytes that are not
    MessagePack, rows of another shape and a query error: each one clear error, nothing yielded
    silently short."""
    influx.write_lines(
        "".join(
            f"cut_test,dev=d{i % 2} x={i}i {1_600_000_000_000_000_000 + i}\n" for i in range(60)
        ).encode()
    )
    q = "SELECT x FROM cut_test GROUP BY dev"
    row = tuple[int, int]
    answer = _msgpack_answer(influx, q, 10)
    assert len(list(_msgpack_stream(iter([answer]), _msgpack_decoder(row)))) == 6
    with pytest.raises(RetryableInfluxError, match="ended early"):
        list(_msgpack_stream(iter([answer[:-3]]), _msgpack_decoder(row)))
    split = msgpack.Unpacker()
    split.feed(answer)
    split.skip()
    boundary = split.tell()  # the end of the first chunk object (more follow)
    with pytest.raises(RetryableInfluxError, match="ended early"):
        list(_msgpack_stream(iter([answer[:boundary]]), _msgpack_decoder(row)))
    with pytest.raises(FatalInfluxError, match="larger than 1 MiB"):  # memory stays bounded
        huge = iter([b"\xdb\x00\x20\x00\x00"] + [b"x" * 65536] * 40)  # a 2 MiB string
        list(_msgpack_stream(huge, _msgpack_decoder(row), max_object=2**20))
    with pytest.raises(FatalInfluxError, match="not MessagePack"):
        list(_msgpack_stream(iter([b"\xc1" * 10]), _msgpack_decoder(row)))
    with pytest.raises(FatalInfluxError, match="not as expected"):
        list(influx.query_rows(q, tuple[int, str], chunk_size=10))
    with pytest.raises(FatalInfluxError, match="query error|error 400"):
        list(influx.query_rows("SELECT x FROM cut_test WHERE", row))


def test_query_rows_gzip_auth_and_unreachable(stack: LocalStack, influx: InfluxClient) -> None:
    """The streamed read (http.client, not httpx) speaks as the client does: a gzipped answer (asked
    off loopback, here forced) gives the same rows; wrong credentials are Fatal with the same
    line as any query; a server that is not there is Retryable."""
    influx.write_lines(
        "".join(
            f"gz_test,dev=d{i % 4} x={i}i {1_600_000_000_000_000_000 + i}\n" for i in range(3000)
        ).encode()
    )
    q, row = "SELECT x FROM gz_test GROUP BY dev", tuple[int, int]
    cfg = stack.influx_config()
    plain = list(influx.query_rows(q, row, chunk_size=100))
    with InfluxClient(InfluxConfig(**{**cfg.__dict__, "gzip": True})) as zipped:
        c = zipped.config
        asked = httpx.post(
            f"{c.url}/query",
            data={"q": q, "db": c.database, "chunked": "true"},
            headers={"Accept": "application/x-msgpack", "Accept-Encoding": "gzip"},
            auth=(c.username, c.password),
        )
        assert asked.headers.get("content-encoding") == "gzip"  # influxd does compress it
        assert list(zipped.query_rows(q, row, chunk_size=100)) == plain
    assert sum(len(v) for _, v in plain) == 3000
    with (
        InfluxClient(InfluxConfig(**{**cfg.__dict__, "password": "wrong"})) as bad,
        pytest.raises(FatalInfluxError, match="refused the credentials"),
    ):
        list(bad.query_rows(q, row))
    with (
        InfluxClient(InfluxConfig(url=f"http://127.0.0.1:{free_port()}")) as gone,
        pytest.raises(RetryableInfluxError, match="unreachable"),
    ):
        list(gone.query_rows(q, row))


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
        # The streamed read sends the token too; this gate drops Accept, as a v1-compatible server
        # that answers only JSON (InfluxDB 3) would: read as JSON lines, the same rows.
        rows = list(client.query_rows("SELECT x FROM token_test", tuple[int, int]))
        assert rows == [({}, [(1_600_000_000_000, 1)])]
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
