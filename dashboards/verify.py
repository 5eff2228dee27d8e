"""Walk a dashboard's JSON: expanded panel queries (to run against InfluxDB) and the names they use."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cloud.measurements import Measurement
from dashboards.macros import VariableValue, expand, interval_ms, panel_range

PX_PER_COLUMN = 60  # a 1440 px wide screen over Grafana's 24 columns; Grafana's default maxDataPoints is the width
DEFAULT_MIN_INTERVAL = "10s"  # the data source's timeInterval (provisioning.MIN_INTERVAL)

_STRING = re.compile(r"'(?:[^'\\]|\\.)*'")
_REGEX = re.compile(
    r"(?<=[=!]~)\s*/(?:[^/\\]|\\.)*/"
)  # a regex literal follows =~ or !~ (a lone / divides)
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_FROM = re.compile(r'\bFROM\s+"((?:[^"\\]|\\.)*)"', re.IGNORECASE)
_DATABASE = re.compile(
    r'"(?:[^"\\]|\\.)*"\.\.(?=")'
)  # a database named in full before its measurement
_ALIAS = re.compile(r'\bAS\s+"((?:[^"\\]|\\.)*)"', re.IGNORECASE)
_DURATION = re.compile(r"-?\d+(?:ms|s|m|h|d|w)?\b")
KEYWORDS = frozenset(
    [
        "select",
        "from",
        "where",
        "and",
        "or",
        "group",
        "by",
        "as",
        "fill",
        "null",
        "none",
        "previous",
        "linear",
        "true",
        "false",
        "show",
        "tag",
        "values",
        "with",
        "key",
        "time",
        "tz",
        "sum",
        "count",
        "mean",
        "median",
        "last",
        "first",
        "max",
        "min",
        "distinct",
        "spread",
        "stddev",
        "non_negative_derivative",
        "derivative",
        "difference",
        "limit",
        "order",
        "desc",
        "asc",
    ]
)


def panels(doc: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard, including those nested in collapsed rows."""
    for p in doc.get("panels", []):
        yield p
        yield from p.get("panels", [])


def variable_queries(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(variable name, query) for every query-type template variable."""
    out = []
    for v in doc.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            query = v["query"] if isinstance(v["query"], str) else v["query"].get("query", "")
            out.append((v["name"], query))
    return out


def panel_queries(
    dashboard_json: Mapping[str, Any],
    variables: Mapping[str, VariableValue],
    time_from_ms: int,
    time_to_ms: int,
) -> list[tuple[str, str, str]]:
    """(panel title, refId, expanded InfluxQL) for every visible target; variable queries come first.

    Panels with a relative-time override (e.g. timeFrom "now/d": today in Asia/Shanghai) get their own
    range ending at time_to_ms, as Grafana gives them. $__interval follows Grafana's rounding.
    """
    out: list[tuple[str, str, str]] = []
    for name, query in variable_queries(dashboard_json):
        out.append((f"variable ${name}", name, expand(query, time_from_ms, time_to_ms, variables)))
    for p in panels(dashboard_json):
        start, end = panel_range(time_from_ms, time_to_ms, p.get("timeFrom"))
        points = int(p.get("maxDataPoints") or p.get("gridPos", {}).get("w", 24) * PX_PER_COLUMN)
        step = interval_ms(start, end, points, p.get("interval") or DEFAULT_MIN_INTERVAL)
        for t in p.get("targets", []):
            if t.get("hide") or "query" not in t:
                continue
            out.append(
                (
                    p.get("title", ""),
                    t.get("refId", ""),
                    expand(t["query"], start, end, variables, step),
                )
            )
    return out


@dataclass(frozen=True)
class QueryNames:
    """The InfluxDB names one InfluxQL statement refers to."""

    measurements: frozenset[str]
    identifiers: frozenset[str]  # every other double-quoted name: tags, fields and aliases
    aliases: frozenset[str]
    bare_words: frozenset[str]  # unquoted words that are not InfluxQL keywords (should be none)


def query_names(query: str) -> QueryNames:
    """Parse the names of a query written in this project's style (every identifier double-quoted)."""
    text = _STRING.sub("''", query)
    text = _REGEX.sub("//", text)
    text = _DATABASE.sub("", text)  # "gumei_records".."ops_event": the measurement is what counts
    measurements = frozenset(_FROM.findall(text))
    aliases = frozenset(_ALIAS.findall(text))
    quoted = frozenset(_QUOTED.findall(text))
    rest = _DURATION.sub(" ", _QUOTED.sub(" ", text.replace("$timeFilter", " ")))
    rest = re.sub(r"\$\w+", " ", rest)
    words = {w for w in re.findall(r"[A-Za-z_]\w*", rest) if w.lower() not in KEYWORDS}
    return QueryNames(measurements, quoted - measurements, aliases, frozenset(words))


def unknown_names(query: str, catalogue: Mapping[str, Measurement]) -> list[str]:
    """Human-readable problems: names the query uses that the pipeline does not write."""
    names = query_names(query)
    problems = [f"unknown measurement {x}" for x in sorted(names.measurements - set(catalogue))]
    allowed: set[str] = set()
    for x in names.measurements & set(catalogue):
        allowed |= set(catalogue[x].tags) | set(catalogue[x].fields)
    problems += [
        f"unknown tag/field {x}" for x in sorted(names.identifiers - allowed - names.aliases)
    ]
    problems += [f"unquoted word {x}" for x in sorted(names.bare_words)]
    if not names.measurements:
        problems.append("no FROM measurement")
    return problems
