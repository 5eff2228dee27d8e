"""Draw each dashboard as a PNG with matplotlib from the same expanded queries Grafana would run."""

from __future__ import annotations

import datetime as dt
import json
import re
import textwrap
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.dates as mdates
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cloud.days import DAY_MS, SHANGHAI
from cloud.influx import InfluxClient, Series
from dashboards import generate as gen
from dashboards.macros import Raw, VariableValue, expand, interval_ms, panel_range, parse_duration
from dashboards.verify import DEFAULT_MIN_INTERVAL, PX_PER_COLUMN, panels, variable_queries

DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Droid Sans Fallback",
    "AR PL UMing CN",
)
_CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]+\s*")
UNIT_SUFFIX = {"t": " t", "kg": " kg", "percent": " %", "ms": " ms", "ops": "/s"}


def cjk_font() -> str | None:
    """A font family with Chinese glyphs, if one is installed (e.g. Debian fonts-wqy-microhei)."""
    names = {f.name for f in font_manager.fontManager.ttflist}
    for path in font_manager.findSystemFonts():
        if any(k in path.lower() for k in ("wqy", "cjk", "droidsansfallback", "notosanssc")):
            font_manager.fontManager.addfont(path)
            names = {f.name for f in font_manager.fontManager.ttflist}
    return next((n for n in _CJK_FONTS if n in names), None)


def _text(s: str, cjk: bool) -> str:
    return s if cjk else _CJK.sub("", s).strip()


def resolve_variables(
    client: InfluxClient,
    doc: Mapping[str, Any],
    given: Mapping[str, VariableValue],
    start: int,
    end: int,
) -> dict[str, VariableValue]:
    """Given values, and 'All' for the rest: the custom all value, or every value the variable's query returns."""
    values: dict[str, VariableValue] = dict(given)
    custom = {v["name"]: v.get("allValue") for v in doc.get("templating", {}).get("list", [])}
    for name, query in variable_queries(doc):
        if name in values:
            continue
        if custom.get(name):
            values[name] = Raw(custom[name])
            continue
        found = [
            str(row[1]) for s in client.query(expand(query, start, end, values)) for row in s.values
        ]
        values[name] = found or ["(none)"]
    return values


def _series_name(s: Series, column: str, alias: str | None, overrides: Mapping[str, str]) -> str:
    if alias:
        name = re.sub(r"\$tag_(\w+)", lambda m: s.tags.get(m.group(1), ""), alias)
        name = name.replace("$col", column)
    elif s.tags:
        name = " ".join([*s.tags.values(), *([column] if len(s.columns) > 2 else [])])
    else:
        name = column
    return overrides.get(name, name)


def _frames(
    client: InfluxClient, panel: Mapping[str, Any], queries: list[tuple[str, str | None]]
) -> list[tuple[str, list[int], list[Any]]]:
    """(display name, times, values) per series and value column."""
    overrides = {
        o["matcher"]["options"]: p["value"]
        for o in panel.get("fieldConfig", {}).get("overrides", [])
        for p in o["properties"]
        if p["id"] == "displayName"
    }
    out = []
    for query, alias in queries:
        for s in client.query(query):
            for i, column in enumerate(s.columns[1:], start=1):
                out.append(
                    (
                        _series_name(s, column, alias, overrides),
                        [r[0] for r in s.values],
                        [r[i] for r in s.values],
                    )
                )
    return out


def _number(value: float, unit: str) -> str:
    if unit == "dateTimeAsIso":
        return dt.datetime.fromtimestamp(value / 1000, SHANGHAI).strftime("%Y-%m-%d %H:%M")
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _override_colors(panel: Mapping[str, Any]) -> dict[str, str]:
    """Display name -> fixed colour, from the panel's byName overrides."""
    out = {}
    for o in panel.get("fieldConfig", {}).get("overrides", []):
        props = {p["id"]: p["value"] for p in o["properties"]}
        if "color" in props:
            out[props.get("displayName", o["matcher"]["options"])] = props["color"]["fixedColor"]
    return out


def _draw(
    ax: Axes,
    panel: Mapping[str, Any],
    frames: list[tuple[str, list[int], list[Any]]],
    gazetteer: Mapping[str, tuple[float, float]],
    cjk: bool,
) -> None:
    kind = panel["type"]
    colors = _override_colors(panel)
    unit = UNIT_SUFFIX.get(panel.get("fieldConfig", {}).get("defaults", {}).get("unit", ""), "")
    numeric = [
        (n, t, [v for v in vs if isinstance(v, int | float) and not isinstance(v, bool)])
        for n, t, vs in frames
    ]
    if kind in ("stat", "gauge"):
        calc = panel.get("options", {}).get("reduceOptions", {}).get("calcs", ["lastNotNull"])[0]
        raw_unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        lines = [
            f"{_text(n, cjk)}: {_number(sum(v) if calc == 'sum' else v[-1], raw_unit)}{unit}"
            for n, _, v in numeric
            if v
        ]
        ax.text(
            0.5,
            0.45,
            "\n".join(lines) or "—",
            ha="center",
            va="center",
            fontsize=13 if len(lines) < 3 else 9,
            transform=ax.transAxes,
        )
        ax.set_axis_off()
    elif kind == "timeseries":
        custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
        bottom: dict[int, float] = {}
        stacked = custom.get("stacking", {}).get("mode") == "normal"
        for i, (name, times, values) in enumerate(frames):
            # matplotlib plots datetimes through its units converters; its stubs only say ArrayLike
            x = [dt.datetime.fromtimestamp(t / 1000, SHANGHAI) for t in times]
            y = [v if isinstance(v, int | float) else 0.0 for v in values]
            color = colors.get(name)
            if custom.get("drawStyle") == "bars":
                step_days = (times[1] - times[0]) / DAY_MS if len(times) > 1 else 0.5
                width = 0.8 * step_days / (1 if stacked else len(frames))
                shift = dt.timedelta(days=0 if stacked else (i - (len(frames) - 1) / 2) * width)
                base = [bottom.get(t, 0.0) for t in times] if stacked else None
                ax.bar(
                    [v + shift for v in x],  # type: ignore[arg-type]  # datetimes (see x)
                    y,
                    width=width,
                    bottom=base,
                    label=_text(name, cjk),
                    color=color,
                )
                if base is not None:
                    bottom.update({t: b + v for t, b, v in zip(times, base, y, strict=True)})
            else:
                ax.plot(x, y, label=_text(name, cjk), linewidth=1.5, color=color)  # type: ignore[arg-type]  # datetimes
        for step in (
            panel.get("fieldConfig", {})
            .get("defaults", {})
            .get("thresholds", {})
            .get("steps", [])[1:]
        ):
            if custom.get("thresholdsStyle", {}).get("mode") == "dashed":
                ax.axhline(step["value"], linestyle="--", color="tab:red", linewidth=1)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d\n%H:%M", tz=SHANGHAI))
        ax.tick_params(labelsize=7)
        if frames:
            ax.legend(fontsize=7, loc="upper left")
    elif kind in ("bargauge", "piechart"):
        pairs = [
            (_text(n, cjk), (sum(v) if kind == "piechart" else v[-1])) for n, _, v in numeric if v
        ]
        pairs.sort(key=lambda p: p[1], reverse=True)
        if kind == "piechart":
            ax.pie(
                [p[1] for p in pairs],
                labels=[p[0] for p in pairs],
                autopct="%1.0f%%",
                textprops={"fontsize": 7},
            )
        else:
            ax.barh([p[0] for p in pairs][::-1], [p[1] for p in pairs][::-1], color="tab:green")
            ax.tick_params(labelsize=7)
    elif kind == "geomap":
        by_site = {n.split()[0]: v[-1] for n, _, v in numeric if v}
        lats = [ll[0] for ll in gazetteer.values()]
        lons = [ll[1] for ll in gazetteer.values()]
        ax.scatter(lons, lats, s=4, color="lightgrey")
        pts = [(gazetteer[s][1], gazetteer[s][0], v) for s, v in by_site.items() if s in gazetteer]
        if pts:
            sc = ax.scatter(
                [p[0] for p in pts],
                [p[1] for p in pts],
                c=[p[2] for p in pts],
                s=[12 + 60 * p[2] / max(p[2] for p in pts) for p in pts],
                cmap="RdYlGn_r",
            )
            ax.figure.colorbar(sc, ax=ax, label="t")
        ax.set_aspect(1 / 0.857)  # cos(31°): east-west degrees are shorter
        ax.tick_params(labelsize=6)
    ax.tick_params(labelsize=7)


def _draw_table(ax: Axes, results: list[Series]) -> None:
    """Rows of tag values and the last row's columns, like Grafana's table of a table-format query."""
    if results:
        tag_keys = list(results[0].tags)
        header = [*tag_keys, "time", *results[0].columns[1:]]
        rows = [
            [
                *(s.tags.get(k, "") for k in tag_keys),
                dt.datetime.fromtimestamp(s.values[-1][0] / 1000, SHANGHAI).strftime("%m-%d %H:%M"),
                *(str(v) for v in s.values[-1][1:]),
            ]
            for s in results[:12]
            if s.values
        ]
        tbl = ax.table(cellText=rows, colLabels=header, loc="upper center")
        tbl.auto_set_font_size(False)
        tbl.set_fontsize(7)
    ax.set_axis_off()


def render_dashboard(
    client: InfluxClient,
    doc: Mapping[str, Any],
    out: Path,
    variables: Mapping[str, VariableValue],
    start: int,
    end: int,
    gazetteer: Mapping[str, tuple[float, float]],
    cjk: str | None,
) -> Path:
    """One PNG laid out like the dashboard's grid."""
    values = resolve_variables(client, doc, variables, start, end)
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels(doc))
    fig = Figure(figsize=(18, rows * 0.42 + 0.8), dpi=90)
    title = doc["title"]
    fig.suptitle(
        _text(title, bool(cjk))
        + f"   ({dt.datetime.fromtimestamp(start / 1000, SHANGHAI):%Y-%m-%d %H:%M} – {dt.datetime.fromtimestamp(end / 1000, SHANGHAI):%Y-%m-%d %H:%M} Asia/Shanghai)",
        fontsize=14,
    )
    top = 1 - 0.8 / (rows * 0.42 + 0.8)
    for p in panels(doc):
        g = p["gridPos"]
        rect = (
            g["x"] / 24 + 0.03,
            top * (1 - (g["y"] + g["h"]) / rows) + 0.025,
            g["w"] / 24 - 0.045,
            top * g["h"] / rows - 0.06,
        )
        ax = fig.add_axes(rect)
        p_start, p_end = panel_range(start, end, p.get("timeFrom"))
        step = interval_ms(
            p_start, p_end, g["w"] * PX_PER_COLUMN, p.get("interval") or DEFAULT_MIN_INTERVAL
        )
        queries = [
            (expand(t["query"], p_start, p_end, values, step), t.get("alias"))
            for t in p.get("targets", [])
        ]
        if p["type"] == "table":
            _draw_table(ax, [s for q, _ in queries[:1] for s in client.query(q)])
        else:
            _draw(ax, p, _frames(client, p, queries), gazetteer, bool(cjk))
        ax.set_title(
            textwrap.shorten(_text(p["title"], bool(cjk)), g["w"] * 7), fontsize=8, loc="left"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def render(
    client: InfluxClient,
    out_dir: Path = DOCS_IMG,
    variables: Mapping[str, VariableValue] | None = None,
    time_from_ms: int | None = None,
    time_to_ms: int | None = None,
) -> list[Path]:
    """Render every committed dashboard to <out_dir>/<name>.png; the range defaults to each dashboard's own."""
    end = time_to_ms if time_to_ms is not None else int(time.time() * 1000)
    cjk = cjk_font()
    entries = json.loads(gen.GAZETTEER_PATH.read_text(encoding="utf-8"))
    gazetteer = {e["key"]: (e["latitude"], e["longitude"]) for e in entries}
    written = []
    fonts = [cjk, "DejaVu Sans"] if cjk else ["DejaVu Sans"]
    with matplotlib.rc_context({"font.family": fonts, "axes.unicode_minus": False}):
        for name, doc in gen.load().items():
            start = (
                time_from_ms
                if time_from_ms is not None
                else end - parse_duration(doc["time"]["from"].removeprefix("now-"))
            )
            written.append(
                render_dashboard(
                    client,
                    doc,
                    out_dir / f"{name}.png",
                    variables or {},
                    start,
                    end,
                    gazetteer,
                    cjk,
                )
            )
    return written
