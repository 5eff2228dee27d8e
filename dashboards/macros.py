"""Expand Grafana's InfluxQL macros and template variables the way Grafana does before it queries InfluxDB."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence

from cloud.days import DAY_MS, SHANGHAI_OFFSET_MS


class Raw(str):
    """A variable value substituted verbatim (a custom 'All' value such as .*), never regex-escaped."""


VariableValue = str | Sequence[str]

# Grafana rangeutil.roundInterval: (upper bound of the raw interval, rounded interval), in ms.
_ROUNDING = (
    (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000), (3500, 2000),
    (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000), (45000, 30000), (90000, 60000),
    (210000, 120000), (450000, 300000), (750000, 600000), (1050000, 900000), (1500000, 1200000),
    (2700000, 1800000), (5400000, 3600000), (9000000, 7200000), (16200000, 10800000),
    (32400000, 21600000), (86400000, 43200000), (604800000, 86400000), (1814400000, 604800000),
    (3628800000, 2592000000),
)  # fmt: skip
_YEAR_MS = 31536000000
_UNITS_MS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": DAY_MS,
    "w": 7 * DAY_MS,
    "y": _YEAR_MS,
}
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::\w+)?\]\]|\$\{(\w+)(?::[^}]+)?\}")
_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")


def round_interval(ms: float) -> int:
    """Grafana's rounding of a raw interval to a 'nice' one."""
    for bound, rounded in _ROUNDING:
        if ms < bound:
            return rounded
    return _YEAR_MS


def format_interval(ms: int) -> str:
    """Grafana's secondsToHms-style text: 1y, 1d, 12h, 5m, 10s, 500ms."""
    for unit in ("y", "d", "h", "m", "s"):
        if ms >= _UNITS_MS[unit]:
            return f"{ms // _UNITS_MS[unit]}{unit}"
    return f"{ms}ms"


def parse_duration(text: str, units: Collection[str] = tuple(_UNITS_MS)) -> int:
    """Milliseconds of a Grafana/InfluxQL duration such as 10s, 5m, 1d (only the suffixes in `units`).

    The project's one duration parser: `gumei quarantine list --since` uses it too (s, m, h, d).
    """
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d|w|y)", text.strip())
    if match is None or match.group(2) not in units:
        raise ValueError(f"not a duration: {text!r}")
    return int(match.group(1)) * _UNITS_MS[match.group(2)]


def interval_ms(
    time_from_ms: int, time_to_ms: int, max_data_points: int, min_interval: str = "10s"
) -> int:
    """$__interval_ms for a time range drawn with at most max_data_points points."""
    raw = (time_to_ms - time_from_ms) / max(1, max_data_points)
    return max(round_interval(raw), parse_duration(min_interval))


def panel_range(time_from_ms: int, time_to_ms: int, override: str | None) -> tuple[int, int]:
    """The time range a panel queries, given its relative-time override (timeFrom) in Asia/Shanghai."""
    if not override:
        return time_from_ms, time_to_ms
    if override == "now/d":
        midnight = (time_to_ms + SHANGHAI_OFFSET_MS) // DAY_MS * DAY_MS - SHANGHAI_OFFSET_MS
        return midnight, time_to_ms
    text = override.removeprefix("now-")
    return time_to_ms - parse_duration(text), time_to_ms


def escape_regex(value: str) -> str:
    """Grafana's escapeRegex, applied to multi-value variable values."""
    return _REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), value)


def format_value(value: VariableValue) -> str:
    """A variable's text in an InfluxQL query: raw, escaped, or (a|b) for several values."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, str):
        return escape_regex(value)
    values = [v if isinstance(v, Raw) else escape_regex(v) for v in value]
    if not values:
        raise ValueError("a variable needs at least one value")
    return values[0] if len(values) == 1 else "(" + "|".join(values) + ")"


def expand(
    query: str,
    time_from_ms: int,
    time_to_ms: int,
    variables: Mapping[str, VariableValue] | None = None,
    interval: int | None = None,
) -> str:
    """Replace $timeFilter, $__interval, $interval, $__interval_ms, $__from, $__to and template variables."""
    step = interval if interval is not None else interval_ms(time_from_ms, time_to_ms, 1000)
    builtins = {
        "timeFilter": f"time >= {time_from_ms}ms and time <= {time_to_ms}ms",
        "__timeFilter": f"time >= {time_from_ms}ms and time <= {time_to_ms}ms",
        "__interval": format_interval(step),
        "interval": format_interval(step),
        "__interval_ms": str(step),
        "__from": str(time_from_ms),
        "__to": str(time_to_ms),
    }
    values = dict(variables or {})

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name in builtins:
            return builtins[name]
        if name in values:
            return format_value(values[name])
        raise KeyError(f"no value for template variable ${name} in: {query}")

    return _VARIABLE.sub(substitute, query)
