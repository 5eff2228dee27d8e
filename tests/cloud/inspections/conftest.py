"""Inspector tokens and helpers of the inspection tests (on the session's real stack and API)."""

from __future__ import annotations

import datetime as dt
import struct
import zlib
from typing import Any

import pytest

from cloud.days import SHANGHAI


@pytest.fixture(scope="session")
def inspector_token(stack) -> str:
    """A bearer token with the inspector role."""
    return stack.tokens().create("inspector Li (test)", "inspector")


def png(width: int = 2, height: int = 2, pad: int = 0) -> bytes:
    """A small valid PNG (grey pixels); pad adds an ancillary chunk of that many bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    extra = chunk(b"tEXt", b"c\x00" + b"x" * pad) if pad else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + extra
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def days_ago(n: int, hour: int = 10) -> dt.datetime:
    """A Shanghai wall-clock time n days before today."""
    day = dt.datetime.now(SHANGHAI).date() - dt.timedelta(days=n)
    return dt.datetime(day.year, day.month, day.day, hour, 0, tzinfo=SHANGHAI)


def record(**kw: Any) -> dict[str, Any]:
    """A valid JSON inspection (达标 with the default pass mark), overridden by kw."""
    base: dict[str, Any] = {
        "time": days_ago(1).isoformat(),
        "place_kind": "area",
        "place": "A01",
        "labelled": True,
        "containers": [
            {"category": "wet", "pure": True},
            {"category": "dry", "pure": True},
            {"category": "recyclable", "pure": True},
        ],
        "guidance": True,
        "clean": True,
        "records": True,
        "score": 95,
        "notes": "",
    }
    return {**base, **kw}
