"""Small helpers over grafana-foundation-sdk builders: panel kinds, thresholds, layout, variables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    dashboard,
    gauge,
    geomap,
    piechart,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.geomap import TooltipMode
from grafana_foundation_sdk.models.piechart import PieChartType

from cloud.influx import InfluxConfig
from dashboards.influxql import InfluxQL, datasource_ref

AnyPanel = Any  # one of the SDK's panel builders (they share no common base class)


def q(name: str) -> str:
    """An InfluxQL double-quoted identifier (every name in a panel query is quoted, so it can be parsed)."""
    return '"' + name.replace('"', '\\"') + '"'


def in_records(name: str) -> str:
    """A measurement of the records database (inspections, operations events), named in full: the
    data source's database is the main one, Grafana's user reads both (cloud/influx_grants.py).
    The default database name; a deployment that renames it regenerates the dashboards."""
    return f"{q(InfluxConfig().records_database)}..{q(name)}"


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    """Absolute thresholds; the first step's value is None (the base colour)."""
    return (
        dashboard.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def _targets(p: AnyPanel, queries: Sequence[InfluxQL]) -> AnyPanel:
    return p.datasource(datasource_ref()).targets(list(queries))


def _reduce(calc: str, fields: str = "") -> common.ReduceDataOptions:
    r = common.ReduceDataOptions().calcs([calc]).values(False)
    return r.fields(fields) if fields else r


def stat_panel(
    title: str, queries: Sequence[InfluxQL], unit: str, calc: str = "lastNotNull"
) -> stat.Panel:
    """A big number."""
    return (
        _targets(stat.Panel().title(title), queries)
        .unit(unit)
        .reduce_options(_reduce(calc))
        .graph_mode(cm.BigValueGraphMode.NONE)
        .color_mode(cm.BigValueColorMode.VALUE)
    )


def gauge_panel(
    title: str, queries: Sequence[InfluxQL], unit: str, lo: float, hi: float
) -> gauge.Panel:
    """A gauge between lo and hi."""
    return (
        _targets(gauge.Panel().title(title), queries)
        .unit(unit)
        .min(lo)
        .max(hi)
        .reduce_options(_reduce("lastNotNull"))
        .show_threshold_markers(True)
    )


def timeseries_panel(
    title: str, queries: Sequence[InfluxQL], unit: str, bars: bool = False, stacked: bool = False
) -> timeseries.Panel:
    """Lines (or bars) over time, legend as a table with the sum/last."""
    p = (
        _targets(timeseries.Panel().title(title), queries)
        .unit(unit)
        .legend(
            common.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .line_width(2)
        .fill_opacity(20 if bars else 10)
    )
    if bars:
        p = p.draw_style(cm.GraphDrawStyle.BARS)
    if stacked:
        p = p.stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL))
    return p


def target_line(p: timeseries.Panel, steps: dashboard.ThresholdsConfig) -> timeseries.Panel:
    """Draw the thresholds as a dashed line: how a target shows on a trend."""
    return p.thresholds(steps).thresholds_style(
        common.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED)
    )


def bars_panel(title: str, queries: Sequence[InfluxQL], unit: str) -> bargauge.Panel:
    """Horizontal bars, one per series or row, biggest first."""
    return (
        _targets(bargauge.Panel().title(title), queries)
        .unit(unit)
        .orientation(cm.VizOrientation.HORIZONTAL)
        .display_mode(cm.BarGaugeDisplayMode.GRADIENT)
        .reduce_options(common.ReduceDataOptions().values(True).calcs(["lastNotNull"]).limit(50))
        .min(0)
    )


def pie_panel(title: str, queries: Sequence[InfluxQL], unit: str) -> piechart.Panel:
    """A donut of shares."""
    return (
        _targets(piechart.Panel().title(title), queries)
        .unit(unit)
        .pie_type(PieChartType.DONUT)
        .hide_from(common.HideSeriesConfig().legend(False).tooltip(False).viz(False))
        .reduce_options(_reduce("sum"))
    )


def table_panel(title: str, queries: Sequence[InfluxQL], unit: str = "none") -> table.Panel:
    """A table of rows (queries use resultFormat table)."""
    return _targets(table.Panel().title(title), queries).unit(unit).filterable(True)


def geomap_panel(
    title: str,
    query: InfluxQL,
    value_field: str,
    lookup_field: str,
    gazetteer: str,
    center: tuple[float, float],
) -> geomap.Panel:
    """Markers looked up by id in a gazetteer, sized and coloured by value_field."""
    style = {
        "color": {"field": value_field, "fixed": "dark-green"},
        "size": {"field": value_field, "fixed": 5, "min": 4, "max": 16},
        "opacity": 0.8,
        "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
    }
    layer = (
        common.MapLayerOptions()
        .type("markers")
        .name("站点 Stations")
        .config({"showLegend": True, "style": style})
        .location(
            common.FrameGeometrySource()
            .mode(cm.FrameGeometrySourceMode.LOOKUP)
            .lookup(lookup_field)
            .gazetteer(gazetteer)
        )
        .tooltip(True)
    )
    return (
        _targets(geomap.Panel().title(title), [query])
        # the SDK types lat/lon int (Grafana's schema says int64); the map centre needs degrees
        .view(geomap.MapViewConfig().id("coords").lat(center[0]).lon(center[1]).zoom(14))  # type: ignore[arg-type]
        .basemap(common.MapLayerOptions().type("default").name("Basemap"))
        .layers([layer])
        .tooltip(geomap.TooltipOptions().mode(TooltipMode.DETAILS))
        .color_scheme(dashboard.FieldColor().mode(dm.FieldColorModeId.CONTINUOUS_GR_YL_RD))
        .unit("t")
    )


def query_variable(
    name: str, label: str, query: str, all_regex: str | None = ".*"
) -> dashboard.QueryVariable:
    """A multi-value template variable from InfluxDB; 'All' is all_regex, or every option when None."""
    v = (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(datasource_ref())
        .query(query)
        .multi(True)
        .include_all(True)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .current(dm.VariableOption(selected=True, text="All", value="$__all"))
    )
    return v.all_value(all_regex) if all_regex is not None else v


class Grid:
    """Places panels left to right on Grafana's 24-column grid, wrapping to a new row."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def place(self, p: AnyPanel, w: int, h: int) -> AnyPanel:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        p = p.id(self.next_id).grid_pos(dm.GridPos(x=self.x, y=self.y, w=w, h=h))
        self.next_id += 1
        self.x += w
        self.row_h = max(self.row_h, h)
        return p


def display_names(
    p: AnyPanel, labels: dict[str, str], colors: dict[str, str] | None = None
) -> AnyPanel:
    """Show bilingual names for series named by a tag value (e.g. category 'dry' → 干垃圾 Dry)."""
    for name, label in labels.items():
        props = [dm.DynamicConfigValue(id_val="displayName", value=label)]
        if colors and name in colors:
            props.append(
                dm.DynamicConfigValue(
                    id_val="color", value={"mode": "fixed", "fixedColor": colors[name]}
                )
            )
        p = p.override_by_name(name, props)
    return p


def new_dashboard(
    uid: str, title: str, description: str, time_from: str, tags: Sequence[str]
) -> dashboard.Dashboard:
    """A read-only dashboard in Shanghai time, refreshed every 5 minutes."""
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["gumei", *tags])
        .timezone("Asia/Shanghai")
        .time(time_from, "now")
        .refresh("5m")
        .readonly()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
    )
