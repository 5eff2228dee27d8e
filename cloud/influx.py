"""The one module that speaks InfluxDB's v1-compatible HTTP API (/write, /query, /ping).

Works with influxd 1.x (user/password), and InfluxDB 2.x/3.x through their v1
compatibility endpoints (token auth, bucket = database).
"""

from __future__ import annotations

import base64
import functools
import gzip
import http.client
import ipaddress
import json
import logging
import ssl
import time
import urllib.parse
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Self

import httpx
import msgpack
import msgspec

from runtime.backoff import Backoff

log = logging.getLogger(__name__)
# One chunked answer object (chunk_size rows of one series) must fit; 50,000 rows are ~3 MB.
_MAX_ANSWER_OBJECT = 64 * 1024 * 1024


class InfluxError(RuntimeError):
    """Base of every InfluxDB failure."""


class RetryableInfluxError(InfluxError):
    """The server is down, slow or overloaded: the same request may succeed later."""


class FatalInfluxError(InfluxError):
    """The request itself is wrong (bad credentials, bad query): retrying will not help."""


class WriteRejected(FatalInfluxError):
    """A 4xx on /write other than 401/403/404/429: some line of the batch is malformed, conflicts in
    type, is too large or outside retention (a poison batch)."""


@dataclass(frozen=True)
class InfluxConfig:
    """Where InfluxDB is and how to authenticate.

    auth: "basic" sends user/password (1.x; 3.x accepts any user with the token as password);
    "token" sends `Authorization: Token <token>` (2.x/3.x v1 compatibility API).
    """

    url: str = "http://127.0.0.1:8086"
    database: str = "gumei"
    health_database: str = "gumei_health"  # per-resident health data (docs/security.md)
    # what people enter through the API that is not per-resident (inspections): the API writes
    # here, never into `database`, whose tonnage it can only read (docs/security.md)
    records_database: str = "gumei_records"
    auth: Literal["none", "basic", "token"] = "none"
    username: str = ""
    password: str = ""
    token: str = ""
    retention_policy: str = ""
    timeout_s: float = 30.0
    retries: int = 5
    gzip: bool | None = None  # None: compress writes over 4 KiB unless the server is on this host


def quote(value: str) -> str:
    """A string literal for InfluxQL: backslashes and single quotes escaped, in single quotes
    (callers validate ids; this keeps any text inert)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def is_loopback(url: str) -> bool:
    """True when the URL's host is this machine (localhost, 127.0.0.0/8, ::1)."""
    host = (httpx.URL(url).host or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Series:
    """One result series of an InfluxQL query."""

    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list[Any]]


class InfluxClient:
    """HTTP client with connection reuse, gzip (off for a server on this host), and retries with back-off.

    Thread-safe (httpx.Client is); create one per process and close() it at the end.
    """

    def __init__(self, config: InfluxConfig) -> None:
        self.config = config
        # Compressing costs CPU on both ends (~0.2 µs a reading here) and saves nothing on loopback.
        self.gzip = (not is_loopback(config.url)) if config.gzip is None else config.gzip
        headers = {"User-Agent": "gumei-iot"}
        if (
            not self.gzip
        ):  # nor gzipped answers: on loopback they cost influxd and us CPU for nothing
            headers["Accept-Encoding"] = "identity"
        auth: httpx.BasicAuth | None = None
        if config.auth == "token":
            headers["Authorization"] = f"Token {config.token}"
        elif config.auth == "basic":
            auth = httpx.BasicAuth(config.username, config.password)
        self._http = httpx.Client(
            base_url=config.url.rstrip("/"),
            headers=headers,
            auth=auth,
            timeout=config.timeout_s,
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- low level -----------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, classified: 2xx returned; 5xx/transport raise Retryable; others Fatal."""
        try:
            r = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise RetryableInfluxError(f"InfluxDB at {self.config.url} unreachable: {exc}") from exc
        if r.status_code < 300:
            return r
        raise error_for(r.status_code, path, _error_text(r))

    def _with_retries(
        self, method: str, path: str, retries: int | None = None, **kwargs: Any
    ) -> httpx.Response:
        attempts = self.config.retries if retries is None else retries
        backoff = Backoff(0.2, 10.0)
        for attempt in range(attempts + 1):
            try:
                return self._send(method, path, **kwargs)
            except RetryableInfluxError as exc:
                if attempt == attempts:
                    raise
                log.warning("retrying in %.1fs: %s", backoff.step, exc)
                time.sleep(backoff.next_delay())
        raise AssertionError("unreachable")

    # -- API -------------------------------------------------------------------------

    def ping(self) -> bool:
        """True when the server answers /ping."""
        try:
            self._send("GET", "/ping")
        except InfluxError:
            return False
        return True

    def write_lines(
        self, body: bytes, precision: str = "ns", retries: int | None = None, db: str | None = None
    ) -> None:
        """POST line protocol (to `db`, default the main database); raise WriteRejected for a poison
        batch, Retryable after the retries run out."""
        if not body:
            return
        params = {"db": db or self.config.database, "precision": precision}
        if self.config.retention_policy:
            params["rp"] = self.config.retention_policy
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip and len(body) > 4096:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self._with_retries(
            "POST", "/write", retries=retries, params=params, content=body, headers=headers
        )

    def query(self, q: str, retries: int | None = None, db: str | None = None) -> list[Series]:
        """Run InfluxQL (times as epoch ms) in `db` (default the main database); return every series of every statement."""
        r = self._with_retries(
            "POST",
            "/query",
            retries=retries,
            data={"q": q, "db": db or self.config.database, "epoch": "ms"},
        )
        return list(_series_of(r.json()))

    def _chunked_form(self, q: str, chunk_size: int, db: str | None) -> dict[str, str]:
        """The /query form of a chunked answer with epoch-millisecond times."""
        return {
            "q": q,
            "db": db or self.config.database,
            "epoch": "ms",
            "chunked": "true",
            "chunk_size": str(chunk_size),
        }

    def query_chunks(
        self, q: str, chunk_size: int = 50_000, db: str | None = None
    ) -> Iterator[Series]:
        """Stream a large result in chunks of at most chunk_size rows (bounded memory)."""
        data = self._chunked_form(q, chunk_size, db)
        try:
            with self._http.stream("POST", "/query", data=data) as r:
                if r.status_code >= 300:
                    r.read()
                    raise FatalInfluxError(f"InfluxDB error {r.status_code}: {_error_text(r)}")
                for line in r.iter_lines():
                    if line.strip():
                        yield from _series_of(json.loads(line))
        except httpx.TransportError as exc:
            raise RetryableInfluxError(f"InfluxDB at {self.config.url} unreachable: {exc}") from exc

    def query_rows(
        self,
        q: str,
        row: Any,
        chunk_size: int = 50_000,
        db: str | None = None,
        accept: str = "application/x-msgpack",
    ) -> Iterator[tuple[dict[str, str], list[Any]]]:
        """Stream a large result as (tags, rows) per series chunk, each row decoded by msgspec as
        `row` (e.g. tuple[int, float, int, str | None] for time and three selected fields): the
        fast path for exports. Asked in chunked MessagePack, the format influxd 1.x produces
        fastest: one answer object per chunk of at most chunk_size rows of one series, back to back
        in one stream. msgpack's streaming Unpacker finds where each object ends (skip, no Python
        objects built), msgspec decodes it typed; only the current chunk is held. A server that
        answers chunked JSON instead (InfluxDB 3's v1 API serves JSON and CSV only) is read as
        JSON lines, decoded the same way: slower, never refused."""
        data = self._chunked_form(q, chunk_size, db)
        with self._stream_post("/query", data, accept, also=("application/json",)) as (
            kind,
            parts,
        ):
            if _subtype(kind) == _subtype("application/json"):
                yield from _json_stream(parts, _json_decoder(row))
            else:
                yield from _msgpack_stream(parts, _msgpack_decoder(row))

    def query_bytes(
        self, q: str, accept: str, chunk_size: int = 50_000, db: str | None = None
    ) -> Iterator[bytes]:
        """The raw body of a chunked answer in the format `accept` names (application/json,
        application/csv, application/x-msgpack), as it arrives in large reads (see _stream_post);
        an answer in another format is refused."""
        data = self._chunked_form(q, chunk_size, db)
        with self._stream_post("/query", data, accept) as (_, parts):
            yield from parts

    @contextmanager
    def _stream_post(
        self, path: str, form: dict[str, str], accept: str, also: tuple[str, ...] = ()
    ) -> Iterator[tuple[str, Iterator[bytes]]]:
        """POST a form and stream the answer's body in large reads, through the standard library's
        http.client: for a long chunked answer (influxd writes HTTP chunks of a few KB) it costs
        the client a third of httpx's CPU, which a backfill shares with influxd. Same server,
        credentials, timeout and TLS as the httpx client; gzip asked only where the client asks it.
        Non-2xx answers raise as error_for classifies them; a broken connection is Retryable."""
        url = httpx.URL(self.config.url)
        cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        kwargs: dict[str, Any] = {"timeout": self.config.timeout_s}
        if url.scheme == "https":
            kwargs["context"] = ssl.create_default_context()
        conn = cls(url.host, url.port, **kwargs)
        headers = {
            k: v
            for k, v in self._http.headers.items()
            if k.lower() in ("user-agent", "authorization")
        }
        headers["Accept-Encoding"] = "gzip" if self.gzip else "identity"
        c = self.config
        if c.auth == "basic":
            token = base64.b64encode(f"{c.username}:{c.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        headers |= {"Accept": accept, "Content-Type": "application/x-www-form-urlencoded"}
        target = url.path.rstrip("/") + path
        unreachable = f"InfluxDB at {c.url} unreachable"
        try:
            try:
                conn.request("POST", target, urllib.parse.urlencode(form).encode(), headers)
                answer = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise RetryableInfluxError(f"{unreachable}: {exc}") from exc
            if answer.status >= 300:
                text = answer.read(64 * 1024).decode("utf-8", "replace")
                raise error_for(answer.status, path, _error_message(text))
            kind = (answer.getheader("Content-Type") or "none")[:100]
            # influxd answers application/csv as text/csv; `also`: formats the caller reads too
            if _subtype(kind) not in {_subtype(a) for a in (accept, *also)}:
                raise FatalInfluxError(
                    f"InfluxDB answered {kind}, not {accept}: this read needs a server that "
                    "serves it (InfluxDB 1.x does)"
                )
            encoding = (answer.getheader("Content-Encoding") or "identity").lower()
            if encoding not in ("identity", "gzip"):
                raise FatalInfluxError(
                    f"InfluxDB answered in an encoding not asked for: {encoding}"
                )
            yield kind, _body_parts(answer, encoding == "gzip", unreachable)
        finally:
            conn.close()

    def execute(self, q: str, db: str | None = None) -> None:
        """Run a statement that returns no rows (CREATE, DROP, ...)."""
        self.query(q, db=db)

    @property
    def health_db(self) -> str:
        """The database of per-resident health data."""
        return self.config.health_database

    @property
    def records_db(self) -> str:
        """The database of records people enter through the API (inspections)."""
        return self.config.records_database


def error_for(status: int, path: str, message: str) -> InfluxError:
    """The error a non-2xx answer means: who is at fault decides whether a retry can help.

    5xx and 429: the server (retry). 401/403: the credentials; 404: the database or bucket does
    not exist (configuration: fatal, the worker holds its messages and retries slowly). Any other
    4xx on /write (400 malformed or type conflict, 413 too large, 422 outside retention on
    2.x/3.x, ...): the data, so the caller isolates and quarantines it, never retries it as it is.
    """
    if status >= 500 or status == 429:
        return RetryableInfluxError(f"InfluxDB error {status}: {message}")
    if status in (401, 403):
        return FatalInfluxError(f"InfluxDB refused the credentials ({status}): {message}")
    if path == "/write" and status != 404:
        return WriteRejected(f"InfluxDB rejected the batch ({status}): {message}")
    return FatalInfluxError(f"InfluxDB error {status}: {message}")


def _error_text(r: httpx.Response) -> str:
    try:
        return str(r.json().get("error", r.text))[:300]
    except ValueError:
        return r.text[:300]


def _subtype(content_type: str) -> str:
    """ "msgpack" of "application/x-msgpack", "csv" of "text/csv; charset=utf-8"."""
    return content_type.split(";")[0].split("/")[-1].strip().lower().removeprefix("x-")


def _error_message(text: str) -> str:
    """The "error" of a JSON error answer, else the text (both cut short)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return text[:300]
    return str(doc.get("error", text) if isinstance(doc, dict) else text)[:300]


def _body_parts(
    answer: http.client.HTTPResponse, gzipped: bool, unreachable: str, size: int = 256 * 1024
) -> Iterator[bytes]:
    """An answer's body in reads of up to `size` bytes (gunzipped if it came gzipped)."""
    inflate = zlib.decompressobj(wbits=31) if gzipped else None
    while True:
        try:
            part = answer.read(size)
        except (OSError, http.client.HTTPException) as exc:
            raise RetryableInfluxError(f"{unreachable}: {exc}") from exc
        if not part:
            break
        if inflate is None:
            yield part
            continue
        try:
            yield inflate.decompress(part)
        except zlib.error as exc:
            raise FatalInfluxError(f"InfluxDB answer is not valid gzip: {exc}") from exc
    if inflate is not None and not inflate.eof:
        raise RetryableInfluxError(f"{unreachable}: the gzipped answer ended early")


def _msgpack_stream(
    parts: Iterator[bytes],
    decoder: msgspec.msgpack.Decoder[Any],
    max_object: int = _MAX_ANSWER_OBJECT,
) -> Iterator[tuple[dict[str, str], list[Any]]]:
    """(tags, rows) of every series of a stream of MessagePack answer objects (chunked /query),
    each object decoded as soon as its last byte arrives. An answer whose last object still says
    more follows (`partial`), or that ends inside an object, was cut short: refused, never used.
    One object larger than max_object bytes is refused (memory stays bounded)."""
    split = msgpack.Unpacker(max_buffer_size=max_object)
    buf = bytearray()
    done = 0  # stream offset of buf[0]
    more = False
    for part in parts:
        try:
            split.feed(part)
        except msgpack.BufferFull as exc:
            raise FatalInfluxError(
                f"InfluxDB answer object larger than {max_object / 2**20:.0f} MiB: ask for less"
            ) from exc
        buf += part
        start = 0
        while True:
            try:
                split.skip()
            except msgpack.OutOfData:
                break
            except (msgpack.UnpackException, ValueError) as exc:
                raise FatalInfluxError(f"InfluxDB answer is not MessagePack: {exc}") from exc
            end = split.tell() - done
            try:
                doc = decoder.decode(buf[start:end])
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise FatalInfluxError(f"InfluxDB answer not as expected: {exc}") from exc
            more = any(res.partial for res in doc.results)
            yield from _typed_series(doc)
            start = end
        del buf[:start]
        done += start
    if buf or more:
        raise RetryableInfluxError("InfluxDB answer ended early (connection cut mid-answer)")


def _json_stream(
    parts: Iterator[bytes],
    decoder: msgspec.json.Decoder[Any],
    max_object: int = _MAX_ANSWER_OBJECT,
) -> Iterator[tuple[dict[str, str], list[Any]]]:
    """(tags, rows) of every series of a chunked JSON answer: one answer object per line. The
    same refusals as _msgpack_stream: a cut answer, a line over max_object bytes."""
    buf = bytearray()
    more = False
    for part in parts:
        buf += part
        start = 0
        while (end := buf.find(b"\n", start)) >= 0:
            if end > start:
                try:
                    doc = decoder.decode(buf[start:end])
                except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                    raise FatalInfluxError(f"InfluxDB answer not as expected: {exc}") from exc
                more = any(res.partial for res in doc.results)
                yield from _typed_series(doc)
            start = end + 1
        del buf[:start]
        if len(buf) > max_object:
            raise FatalInfluxError(
                f"InfluxDB answer object larger than {max_object / 2**20:.0f} MiB: ask for less"
            )
    if buf.strip():
        try:
            doc = decoder.decode(bytes(buf))
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise RetryableInfluxError(
                "InfluxDB answer ended early (connection cut mid-answer)"
            ) from exc
        more = any(res.partial for res in doc.results)
        yield from _typed_series(doc)
    if more:
        raise RetryableInfluxError("InfluxDB answer ended early (connection cut mid-answer)")


@functools.cache
def _json_decoder(row: Any) -> msgspec.json.Decoder[Any]:
    """A msgspec JSON decoder of one answer object (a chunk) whose rows have the type `row`."""
    return msgspec.json.Decoder(_answer_type(row))


def _typed_series(doc: Any) -> Iterator[tuple[dict[str, str], list[Any]]]:
    """(tags, rows) of every series of a decoded answer; its errors raised."""
    if doc.error:
        raise FatalInfluxError(f"InfluxDB query error: {doc.error}")
    for result in doc.results:
        if result.error:
            raise FatalInfluxError(f"InfluxDB query error: {result.error}")
        for s in result.series:
            yield s.tags, s.values


@functools.cache
def _msgpack_decoder(row: Any) -> msgspec.msgpack.Decoder[Any]:
    """A msgspec MessagePack decoder of one answer object (a chunk) whose rows have the type `row`."""
    return msgspec.msgpack.Decoder(_answer_type(row))


@functools.cache
def _answer_type(row: Any) -> Any:
    """The msgspec type of a query answer whose rows have the type `row` (partial: more chunks
    follow; series.partial: that series continues in the next chunk)."""
    series = msgspec.defstruct(
        "Series",
        [("tags", dict[str, str], {}), ("values", list[row], []), ("partial", bool, False)],
    )
    result = msgspec.defstruct(
        "Result",
        [
            ("series", list[series], []),  # type: ignore[valid-type]
            ("error", str | None, None),
            ("partial", bool, False),
        ],
    )
    return msgspec.defstruct(
        "Answer",
        [("results", list[result], []), ("error", str | None, None)],  # type: ignore[valid-type]
    )


def _series_of(doc: dict[str, Any]) -> Iterator[Series]:
    if "error" in doc:
        raise FatalInfluxError(f"InfluxDB query error: {doc['error']}")
    for result in doc.get("results", []):
        if "error" in result:
            raise FatalInfluxError(f"InfluxDB query error: {result['error']}")
        for s in result.get("series", []):
            yield Series(
                s.get("name", ""), s.get("tags", {}) or {}, s["columns"], s.get("values", [])
            )
