"""InfluxDB line protocol encoding, built for batches, with the escaping rules influxd 1.x applies.

Verified against influxd 1.6.7 (tests/cloud/test_lineproto.py):

- measurement names: `,` and space are escaped with a backslash;
- tag keys, tag values and field keys: `,`, `=` and space are escaped; a backslash is otherwise
  literal, so a value whose backslash precedes one of those characters or ends it cannot be
  written unambiguously (1.6.7 answers 400 or stores something else): we refuse it, as we refuse
  an empty tag value (400 "missing tag value") and a newline (ends the line);
- string field values: `"` and `\\` are escaped; newlines and any UTF-8 are stored as they are;
- integers always carry `i` (an int later written as a float is a type conflict), floats are
  shortest round-trip repr, NaN and infinities cannot be stored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from contract import CATEGORIES, WasteReading, WeighbridgeTicket
from contract.fast import FastWasteReading

_TAG_ESCAPE = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_MEAS_ESCAPE = str.maketrans({",": r"\,", " ": r"\ "})
_STR_ESCAPE = str.maketrans({'"': r"\"", "\\": "\\\\"})
_AMBIGUOUS_BACKSLASH = re.compile(r"\\(?:[,= ]|$)")

FieldValue = float | int | bool | str


class LineProtocolError(ValueError):
    """A value that line protocol cannot carry (empty tag, newline in a tag, NaN, ...)."""


def escape_tag(value: str) -> str:
    """Escape a tag key, tag value or field key; reject what influxd 1.x cannot store faithfully."""
    if not value:
        raise LineProtocolError("empty tag value")
    if "\n" in value or "\r" in value:
        raise LineProtocolError(f"newline in tag value {value[:40]!r}")
    if "\\" in value and _AMBIGUOUS_BACKSLASH.search(value):
        raise LineProtocolError(
            f"backslash before a separator or at the end of tag value {value[:40]!r}"
        )
    return value.translate(_TAG_ESCAPE)


def escape_measurement(name: str) -> str:
    """Escape a measurement name."""
    if not name or "\n" in name or "\r" in name or name.endswith("\\"):
        raise LineProtocolError(f"bad measurement name {name[:40]!r}")
    return name.translate(_MEAS_ESCAPE)


def escape_string(value: str) -> str:
    """A string field value, quoted (newlines and non-ASCII are stored as they are)."""
    return '"' + value.translate(_STR_ESCAPE) + '"'


def field_value(value: FieldValue) -> str:
    """Format one field value: floats shortest round-trip, ints with `i`, strings quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LineProtocolError("NaN or infinity cannot be stored")
        return repr(value)
    return escape_string(value)


def series_key(measurement: str, tags: Mapping[str, str]) -> str:
    """The start of a line up to its fields: measurement and tags (sorted), escaped."""
    tag_part = "".join(f",{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()))
    return escape_measurement(measurement) + tag_part


def line(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue | None], time_ns: int
) -> str:
    """One line of line protocol (tags sorted, None fields left out)."""
    field_part = ",".join(
        f"{escape_tag(k)}={field_value(v)}" for k, v in fields.items() if v is not None
    )
    if not field_part:
        raise LineProtocolError("a point needs at least one field")
    return f"{series_key(measurement, tags)} {field_part} {time_ns}"


def point_time_ns(ts_ms: int, seq: int) -> int:
    """Point time that makes (device, seq) the identity: ts in ms plus seq mod 1e6 in ns."""
    return ts_ms * 1_000_000 + seq % 1_000_000


WasteHeads = dict[str, dict[str, str]]  # device -> category -> its line up to "net_kg="


def waste_line_heads(
    site: str, area: str, devices: Iterable[str] | Mapping[str, Iterable[str]]
) -> WasteHeads:
    """Per device and category, the start of its waste_reading line up to `net_kg=`.

    `devices` maps each device to the categories it may weigh (a plain iterable: all four).
    Device ids are contract-validated (`[A-Za-z0-9_-]`), so only the site and area are escaped,
    once; tag keys are in sorted order as InfluxDB prefers.
    """
    prefix = f"waste_reading,area={escape_tag(area)},category="
    tail = f",site={escape_tag(site)} net_kg="
    cats = devices if isinstance(devices, Mapping) else dict.fromkeys(devices, CATEGORIES)
    return {d: {c: f"{prefix}{c},device={d}{tail}" for c in cs} for d, cs in cats.items()}


def waste_lines_from(
    heads: WasteHeads, readings: Iterable[WasteReading | FastWasteReading]
) -> list[str]:
    """Line protocol for waste readings (pydantic or msgspec) from their devices' heads; KeyError
    for a device that has none. Residents are contract-validated (`r-<hex>`): nothing to escape."""
    out: list[str] = []
    append = out.append
    for r in readings:
        head = heads[r.device][r.category]
        seq, gross, resident = r.seq, r.gross_kg, r.resident
        time_ns = r.ts * 1_000_000 + seq % 1_000_000
        if gross is None:
            if resident is None:
                append(f"{head}{r.net_kg!r},seq={seq}i {time_ns}")
            else:
                append(f'{head}{r.net_kg!r},seq={seq}i,resident="{resident}" {time_ns}')
        elif resident is None:
            append(f"{head}{r.net_kg!r},seq={seq}i,gross_kg={gross!r} {time_ns}")
        else:
            append(
                f'{head}{r.net_kg!r},seq={seq}i,gross_kg={gross!r},resident="{resident}" {time_ns}'
            )
    return out


def waste_lines(site: str, area: str, readings: Iterable[WasteReading]) -> list[str]:
    """Line protocol for a batch of waste readings of one site."""
    batch = list(readings)
    return waste_lines_from(waste_line_heads(site, area, {r.device for r in batch}), batch)


def join_lines(lines: Iterable[str]) -> bytes:
    """One /write body: lines joined by newlines, UTF-8 (empty when there are none)."""
    text = "\n".join(lines)
    return (text + "\n").encode() if text else b""


def ticket_lines(site: str, tickets: Iterable[WeighbridgeTicket]) -> list[str]:
    """Line protocol for weighbridge tickets of one site (measurement weighbridge_ticket)."""
    out = []
    for t in tickets:
        tags = {
            "site": site,
            "device": t.device,
            "source_area": t.source_area,
            "category": t.category.value,
        }
        if t.subcategory is not None:
            tags["subcategory"] = t.subcategory.value
        fields: dict[str, FieldValue | None] = {
            "ticket": t.ticket,
            "net_g": t.net_g,
            "gross_g": t.gross_g,
            "tare_g": t.tare_g,
            "gross_ts": t.gross_ts,
            "tare_source": t.tare_source,
            "plate": t.plate,
            "plate_source": t.plate_source,
            "destination": t.destination,
        }
        out.append(line("weighbridge_ticket", tags, fields, point_time_ns(t.ts, t.ticket)))
    return out
