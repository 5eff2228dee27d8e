"""InfluxDB line protocol encoding, built for batches, with InfluxDB 1.x escaping rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from contract import WasteReading

_TAG_ESCAPE = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_MEAS_ESCAPE = str.maketrans({",": r"\,", " ": r"\ "})
_STR_ESCAPE = str.maketrans({'"': r"\"", "\\": "\\\\", "\n": "\\n"})


class LineProtocolError(ValueError):
    """A value that line protocol cannot carry (empty tag, newline in a tag, ...)."""


def escape_tag(value: str) -> str:
    """Escape a tag key or value; reject what InfluxDB 1.x cannot store."""
    if not value:
        raise LineProtocolError("empty tag value")
    if "\n" in value or "\r" in value:
        raise LineProtocolError("newline in tag value")
    if value.endswith("\\"):
        raise LineProtocolError("trailing backslash in tag value")
    return value.translate(_TAG_ESCAPE)


def escape_measurement(name: str) -> str:
    """Escape a measurement name."""
    if not name or "\n" in name:
        raise LineProtocolError("bad measurement name")
    return name.translate(_MEAS_ESCAPE)


def field_value(value: float | int | bool | str) -> str:
    """Format one field value: floats shortest round-trip, ints with `i`, strings quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise LineProtocolError("NaN or infinity cannot be stored")
        return repr(value)
    return '"' + value.translate(_STR_ESCAPE) + '"'


def line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, float | int | bool | str | None], time_ns: int) -> str:
    """One line of line protocol (tags sorted, None fields left out)."""
    tag_part = "".join(f",{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()))
    field_part = ",".join(f"{escape_tag(k)}={field_value(v)}" for k, v in fields.items() if v is not None)
    if not field_part:
        raise LineProtocolError("a point needs at least one field")
    return f"{escape_measurement(measurement)}{tag_part} {field_part} {time_ns}"


def point_time_ns(ts_ms: int, seq: int) -> int:
    """Point time that makes (device, seq) the identity: ts in ms plus seq mod 1e6 in ns."""
    return ts_ms * 1_000_000 + seq % 1_000_000


def waste_lines(site: str, area: str, readings: Iterable[WasteReading]) -> list[str]:
    """Line protocol for a batch of waste readings of one site (fast path, pre-escaped tags)."""
    prefix = f"waste_reading,area={escape_tag(area)},category="
    tail_site = f",site={escape_tag(site)} "
    out = []
    for r in readings:
        fields = f"net_kg={field_value(float(r.net_kg))},seq={r.seq}i"
        if r.gross_kg is not None:
            fields += f",gross_kg={field_value(float(r.gross_kg))}"
        if r.resident is not None:
            fields += f',resident="{r.resident}"'
        out.append(
            f"{prefix}{r.category.value},device={escape_tag(r.device)}{tail_site}{fields} {point_time_ns(r.ts, r.seq)}"
        )
    return out
