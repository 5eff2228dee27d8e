"""The waste dashboards: sorting overview (垃圾分类总览) and station drill-down (投放点详情)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.dashboard import DataTransformerConfig

from cloud import measurements as m
from dashboards import schema as s
from dashboards.influxql import InfluxQL
from dashboards.panels import (
    AnyPanel,
    Grid,
    bars_panel,
    display_names,
    gauge_panel,
    geomap_panel,
    new_dashboard,
    pie_panel,
    q,
    query_variable,
    stat_panel,
    table_panel,
    target_line,
    thresholds,
    timeseries_panel,
)

W, R, D, G, T = m.WASTE_DAILY, m.WASTE_READING, m.DEVICE_STATUS, m.GATEWAY_STATUS, s.WASTE_TARGETS
REC = m.WASTE_RECONCILIATION
SORTING = m.WASTE_SORTING_COMPARISON
TODAY = "now/d"  # with the dashboard in Asia/Shanghai, "today so far" starts at Shanghai midnight
SHANGHAI_DAYS = (
    "time(1d, -8h)"  # daily buckets at Shanghai midnight; no tzdata needed, China has no DST
)
CATEGORY_COLORS = {
    "dry": "#8c8c8c",
    "wet": "#8b5a2b",
    "recyclable": "#1f77b4",
    "hazardous": "#d62728",
}
GAZETTEER = "public/gazetteer/gumei-sites.json"
CENTER = (31.1505, 121.4020)


def _categories(p: AnyPanel) -> AnyPanel:
    return display_names(p, s.CATEGORY_LABELS, CATEGORY_COLORS)


def _sort_desc(field: str) -> DataTransformerConfig:
    return DataTransformerConfig(
        id_val="sortBy", options={"sort": [{"field": field, "desc": True}]}
    )


def overview() -> dm.Dashboard:
    """垃圾分类总览 Waste sorting overview: today, the 30-day trend, the plan's three targets, areas, map."""
    d = new_dashboard(
        "gumei-waste-overview",
        "垃圾分类总览 Waste sorting overview",
        "Daily tonnage per category (Asia/Shanghai days) against the sub-district plan's targets.",
        "now-30d",
        ["waste"],
    )
    g = Grid()
    today_by_cat = InfluxQL(
        f"SELECT sum({q('tonnes')}) FROM {q(W.name)} WHERE $timeFilter GROUP BY {q('category')}"
    ).alias("$tag_category")
    d = d.with_panel(
        g.place(
            _categories(
                stat_panel("今日各类垃圾 Today's tonnes by category", [today_by_cat], "t", "sum")
            )
            .time_from(TODAY)
            .decimals(2),
            12,
            5,
        )
    )
    recyclable_today = InfluxQL(
        f"SELECT sum({q('tonnes')}) AS {q('tonnes')} FROM {q(W.name)} WHERE {q('category')} = 'recyclable' AND $timeFilter"
    )
    d = d.with_panel(
        g.place(
            gauge_panel(
                "可回收物 今日 / 目标 80 t Recyclables today vs 80 t/day",
                [recyclable_today],
                "t",
                0,
                100,
            )
            .time_from(TODAY)
            .thresholds(
                thresholds(
                    (None, "red"),
                    (s.RECYCLABLE_TARGET_T * 0.9, "orange"),
                    (s.RECYCLABLE_TARGET_T, "green"),
                )
            ),
            4,
            5,
        )
    )
    dry_change = InfluxQL(
        f"SELECT last({q('dry_change_pct')}) AS {q('dry_change_pct')} FROM {q(T.name)} WHERE $timeFilter"
    )
    d = d.with_panel(
        g.place(
            stat_panel(
                "干垃圾 30 日同比 / 目标 −20 % Dry waste change vs −20 %", [dry_change], "percent"
            )
            .thresholds(
                thresholds((None, "green"), (s.DRY_CHANGE_TARGET_PCT, "orange"), (0, "red"))
            )
            .description(
                "Last 30 days against the same 30 days a year earlier (or the configured baseline); from the aggregator."
            ),
            4,
            5,
        )
    )
    effective = InfluxQL(
        f"SELECT last({q('sorting_pct')}) AS {q('sorting_pct')} FROM {q(T.name)} WHERE $timeFilter"
    )
    d = d.with_panel(
        g.place(
            gauge_panel(
                "分类实效达标率 / 目标 85 % Sorting effectiveness vs 85 %",
                [effective],
                "percent",
                0,
                100,
            )
            .thresholds(thresholds((None, "red"), (s.EFFECTIVE_TARGET_PCT, "green")))
            .description(
                "Share of areas whose day meets the sorting standard; from the aggregator."
            ),
            4,
            5,
        )
    )
    trend = InfluxQL(
        f"SELECT sum({q('tonnes')}) FROM {q(W.name)} WHERE $timeFilter GROUP BY {SHANGHAI_DAYS}, {q('category')} fill(0)"
    ).alias("$tag_category")
    d = d.with_panel(
        g.place(
            _categories(
                timeseries_panel(
                    "每日分类吨数 Daily tonnes per category", [trend], "t", bars=True, stacked=True
                )
            ),
            14,
            9,
        )
    )
    recyclable_trend = InfluxQL(
        f"SELECT sum({q('tonnes')}) FROM {q(W.name)} WHERE {q('category')} = 'recyclable' AND $timeFilter GROUP BY {SHANGHAI_DAYS} fill(0)"
    ).alias("可回收物 Recyclables")
    d = d.with_panel(
        g.place(
            target_line(
                timeseries_panel(
                    "可回收物每日 vs 80 t Recyclables per day vs target", [recyclable_trend], "t"
                ),
                thresholds((None, "red"), (s.RECYCLABLE_TARGET_T, "green")),
            )
            .axis_soft_min(0)
            .axis_soft_max(s.RECYCLABLE_TARGET_T * 1.1),
            10,
            9,
        )
    )
    areas = InfluxQL(
        f"SELECT sum({q('tonnes')}) AS {q('tonnes')} FROM {q(W.name)} WHERE $timeFilter GROUP BY {q('area')}"
    ).table()
    d = d.with_panel(
        g.place(
            bars_panel("各居民区今日吨数排名 Areas ranked by today's tonnes", [areas], "t")
            .time_from(TODAY)
            .with_transformation(_sort_desc("tonnes")),
            10,
            14,
        )
    )
    stations = InfluxQL(
        f"SELECT sum({q('tonnes')}) AS {q('tonnes')} FROM {q(W.name)} WHERE $timeFilter GROUP BY {q('site')}"
    ).table()
    d = d.with_panel(
        g.place(
            geomap_panel(
                "投放点地图 (今日吨数) Stations by today's tonnes",
                stations,
                "tonnes",
                "site",
                GAZETTEER,
                CENTER,
            )
            .time_from(TODAY)
            .description(
                f"Coordinates come from the site registry via the gazetteer {GAZETTEER} (generated by `gumei dashboards generate`)."
            ),
            14,
            14,
        )
    )
    targets = InfluxQL(
        f"SELECT last({q('sorting_pct')}) AS {q('sorting_pct')}, last({q('dry_change_pct')}) AS {q('dry_change_pct')} "
        f"FROM {q(T.name)} WHERE $timeFilter GROUP BY {SHANGHAI_DAYS} fill(none)"
    )
    d = d.with_panel(
        g.place(
            display_names(
                target_line(
                    timeseries_panel("目标走势 Targets per day", [targets], "percent"),
                    thresholds(
                        (None, "red"),
                        (s.DRY_CHANGE_TARGET_PCT, "orange"),
                        (s.EFFECTIVE_TARGET_PCT, "green"),
                    ),
                ),
                {
                    "sorting_pct": "分类实效达标率 Sorting effectiveness %",
                    "dry_change_pct": "干垃圾变化 Dry waste change %",
                },
            ),
            24,
            8,
        )
    )
    return _reconciliation(d, g).build()


def _reconciliation(d: dashboard.Dashboard, g: Grid) -> dashboard.Dashboard:
    """Station scales vs weighbridge (issue 15): the district's daily gap per category, and
    today's areas by gap: a drifting bin scale or a silent station shows as a growing gap."""
    gap_trend = InfluxQL(
        f"SELECT last({q('diff_tonnes')}) FROM {q(REC.name)} WHERE {q('area')} = 'all' "
        f"AND {q('category')} != 'all' AND $timeFilter GROUP BY {SHANGHAI_DAYS}, {q('category')} fill(none)"
    ).alias("$tag_category")
    d = d.with_panel(
        g.place(
            _categories(
                timeseries_panel(
                    "地磅 − 投放点称重 Weighbridge minus station scales per day (district)",
                    [gap_trend],
                    "t",
                )
            ).description(
                "waste_reconciliation (docs/aggregation.md): weighbridge tonnes of loads from the "
                "district's areas minus the station scales' tonnes, per Shanghai day and category."
            ),
            12,
            9,
        )
    )
    by_area = InfluxQL(
        f"SELECT last({q('scale_tonnes')}) AS {q('scale_tonnes')}, last({q('weighbridge_tonnes')}) AS "
        f"{q('weighbridge_tonnes')}, last({q('diff_tonnes')}) AS {q('diff_tonnes')}, last({q('diff_pct')}) AS "
        f"{q('diff_pct')} FROM {q(REC.name)} WHERE {q('category')} = 'all' AND $timeFilter GROUP BY {q('area')}"
    ).table()
    d = d.with_panel(
        g.place(
            table_panel("各居民区称重差 (今日) Areas: scales vs weighbridge today", [by_area], "t")
            .time_from(TODAY)
            .with_transformation(_sort_desc("diff_tonnes")),
            12,
            9,
        )
    )
    fields = ("scale_meets", "inspected", "inspection_passed", "disagree", "status")
    by_check = InfluxQL(
        "SELECT "
        + ", ".join(f"last({q(f)}) AS {q(f)}" for f in fields)
        + f" FROM {q(SORTING.name)} WHERE $timeFilter GROUP BY {q('area')}"
    ).table()
    return d.with_panel(
        g.place(
            table_panel(
                "称重分类达标 vs 检查达标 (今日) Areas: scale sorting standard vs inspection today",
                [by_check],
                "none",
            )
            .time_from(TODAY)
            .description(
                "waste_sorting_comparison (docs/aggregation.md): scale_meets = the area's day meets "
                "the weight-based sorting standard; inspection_passed = its latest inspection "
                "(place kind area) in the 30-day window is 达标; disagree first."
            )
            .with_transformation(_sort_desc("disagree")),
            24,
            8,
        )
    )


def station() -> dm.Dashboard:
    """投放点详情 Station drill-down: deposits, category mix, fill level and device status for area/station."""
    d = new_dashboard(
        "gumei-station",
        "投放点详情 Station drill-down",
        "Pick a residential area and station(s): deposits, category mix, bin fill and device status.",
        "now-7d",
        ["waste"],
    )
    d = d.with_variable(
        query_variable(
            "area", "居民区 Area", f"SHOW TAG VALUES FROM {q(W.name)} WITH KEY = {q('area')}"
        )
    )
    # "All" stations expands to the chosen areas' stations (device_status has no area tag).
    stations_q = (
        f"SHOW TAG VALUES FROM {q(R.name)} WITH KEY = {q('site')} WHERE {q('area')} =~ /^$area$/"
    )
    d = d.with_variable(query_variable("station", "投放点 Station", stations_q, all_regex=None))
    where = f"{q('area')} =~ /^$area$/ AND {q('site')} =~ /^$station$/ AND $timeFilter"
    g = Grid()
    deposits = InfluxQL(
        f"SELECT count({q('net_kg')}) FROM {q(R.name)} WHERE {where} GROUP BY time($__interval), {q('category')} fill(0)"
    ).alias("$tag_category")
    d = d.with_panel(
        g.place(
            _categories(
                timeseries_panel(
                    "投放次数 Deposits over time", [deposits], "short", bars=True, stacked=True
                )
            ),
            16,
            9,
        )
    )
    mix = InfluxQL(
        f"SELECT sum({q('net_kg')}) FROM {q(R.name)} WHERE {where} GROUP BY {q('category')}"
    ).alias("$tag_category")
    d = d.with_panel(
        g.place(_categories(pie_panel("类别构成 Category mix (kg)", [mix], "kg")), 8, 9)
    )
    daily = InfluxQL(
        f"SELECT sum({q('tonnes')}) FROM {q(W.name)} WHERE {where} GROUP BY {SHANGHAI_DAYS}, {q('category')} fill(0)"
    ).alias("$tag_category")
    d = d.with_panel(
        g.place(
            _categories(
                timeseries_panel("每日吨数 Daily tonnes", [daily], "t", bars=True, stacked=True)
            ),
            12,
            8,
        )
    )
    fill = InfluxQL(
        f"SELECT last({q('fill_pct')}) FROM {q(D.name)} WHERE {q('site')} =~ /^$station$/ AND $timeFilter "
        f"GROUP BY time($__interval), {q('device')} fill(previous)"
    ).alias("$tag_device")
    d = d.with_panel(
        g.place(
            target_line(
                timeseries_panel("桶满度 Bin fill level", [fill], "percent"),
                thresholds((None, "green"), (80, "orange"), (95, "red")),
            )
            .min(0)
            .max(100),
            12,
            8,
        )
    )
    devices = InfluxQL(
        f"SELECT last({q('ok')}) AS {q('ok')}, {q('fill_pct')} FROM {q(D.name)} WHERE {q('site')} =~ /^$station$/ AND $timeFilter "
        f"GROUP BY {q('site')}, {q('device')}"
    ).table()
    d = d.with_panel(g.place(table_panel("设备状态 Device status (last report)", [devices]), 12, 8))
    gateways = InfluxQL(
        f"SELECT last({q('online')}) AS {q('online')}, {q('buffered')}, {q('devices_ok')}, {q('devices')} FROM {q(G.name)} "
        f"WHERE {q('site')} =~ /^$station$/ AND $timeFilter GROUP BY {q('site')}"
    ).table()
    d = d.with_panel(
        g.place(table_panel("网关状态 Gateway status (last report)", [gateways]), 12, 8)
    )
    return d.build()
