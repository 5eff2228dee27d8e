"""The health hut dashboard (智慧健康小屋, aggregates only) and the fleet and pipeline health dashboard."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.dashboard import DataTransformerConfig

from cloud import measurements as m
from dashboards.influxql import InfluxQL
from dashboards.panels import (
    Grid,
    bars_panel,
    in_records,
    new_dashboard,
    q,
    query_variable,
    stat_panel,
    table_panel,
    thresholds,
    timeseries_panel,
)
from dashboards.waste import SHANGHAI_DAYS

FC = m.HEALTH_FOLLOWUP_COUNTS
HD, G, D, QU, IS, A, E = (
    m.HEALTH_DAILY,
    m.GATEWAY_STATUS,
    m.DEVICE_STATUS,
    m.QUARANTINE,
    m.INGEST_STATS,
    m.AGGREGATOR_STATE,
    m.OPS_EVENT,
)


def health() -> dm.Dashboard:
    """智慧健康小屋 Health hut, from `health_daily` as operators may see it: counts per hut-day with
    every cell of fewer than k distinct residents suppressed by the aggregator (docs/health.md).
    Grafana's data source cannot read per-resident measurements at all (another database)."""
    d = new_dashboard(
        "gumei-health-hut",
        "智慧健康小屋 Smart health hut",
        "Aggregates only, small cells suppressed (< k distinct residents). Per-resident records live behind the API's health role.",
        "now-30d",
        ["health"],
    )
    d = d.with_variable(
        query_variable(
            "hut", "健康小屋 Hut", f"SHOW TAG VALUES FROM {q(HD.name)} WITH KEY = {q('site')}"
        )
    )
    where = f"{q('site')} =~ /^$hut$/ AND $timeFilter"
    whole = f"{q('type')} = 'all' AND {where}"
    types = f"{q('type')} != 'all' AND {where}"
    g = Grid()
    total = InfluxQL(f"SELECT sum({q('measurements')}) FROM {q(HD.name)} WHERE {whole}").alias(
        "测量 Measurements"
    )
    d = d.with_panel(
        g.place(stat_panel("测量总数 Measurements (shown hut-days)", [total], "short"), 6, 5)
    )
    people = InfluxQL(f"SELECT sum({q('visits')}) FROM {q(HD.name)} WHERE {whole}").alias(
        "人次 Resident-days"
    )
    d = d.with_panel(
        g.place(stat_panel("到访人次 Visits (resident-days)", [people], "short"), 6, 5)
    )
    abnormal_total = InfluxQL(f"SELECT sum({q('abnormal')}) FROM {q(HD.name)} WHERE {whole}").alias(
        "异常 Abnormal"
    )
    d = d.with_panel(
        g.place(
            stat_panel("异常测量数 Abnormal measurements", [abnormal_total], "short").thresholds(
                thresholds((None, "green"), (1, "orange"))
            ),
            6,
            5,
        )
    )
    hidden = InfluxQL(
        f"SELECT count({q('suppressed')}) FROM {q(HD.name)} WHERE {q('suppressed')} = true AND {where}"
    ).alias("隐藏 Suppressed")
    d = d.with_panel(
        g.place(
            stat_panel("隐藏格 Suppressed cells (too few residents)", [hidden], "short")
            .no_value("0")
            .description(
                "Hut-day figures from fewer than k distinct residents (and their complements) are never shown."
            ),
            6,
            5,
        )
    )
    visits = InfluxQL(
        f"SELECT sum({q('visits')}) FROM {q(HD.name)} WHERE {whole} GROUP BY {SHANGHAI_DAYS} fill(none)"
    ).alias("到访居民 Residents")
    d = d.with_panel(
        g.place(
            timeseries_panel(
                "每日到访 Visits per day (distinct residents)", [visits], "short", bars=True
            ),
            12,
            8,
        )
    )
    by_type = InfluxQL(
        f"SELECT sum({q('measurements')}) FROM {q(HD.name)} WHERE {types} GROUP BY {SHANGHAI_DAYS}, {q('type')} fill(none)"
    ).alias("$tag_type")
    d = d.with_panel(
        g.place(
            timeseries_panel(
                "各类测量 Measurements by type per day", [by_type], "short", bars=True, stacked=True
            ),
            12,
            8,
        )
    )
    abnormal = InfluxQL(
        f"SELECT sum({q('abnormal')}) AS {q('abnormal')} FROM {q(HD.name)} WHERE {types} GROUP BY {q('type')}",
        "A",
    ).table()
    measured = InfluxQL(
        f"SELECT sum({q('measurements')}) AS {q('measured')} FROM {q(HD.name)} WHERE {types} GROUP BY {q('type')}",
        "B",
    ).table()
    rate = DataTransformerConfig(
        id_val="calculateField",
        options={
            "mode": "binary",
            "binary": {"left": "abnormal", "operator": "/", "right": "measured"},
            "alias": "异常率 Abnormal rate",
            "replaceFields": False,
        },
    )
    d = d.with_panel(
        g.place(
            table_panel("各类异常率 Abnormal rate by type", [abnormal, measured])
            .with_transformation(DataTransformerConfig(id_val="merge", options={}))
            .with_transformation(rate)
            .description(
                "Home cut-offs as flagged at ingestion (BP ≥ 135/85 mmHg, glucose by meal context); shown hut-days only."
            ),
            12,
            8,
        )
    )
    rate_daily = InfluxQL(
        f"SELECT sum({q('abnormal')}) / sum({q('measurements')}) AS {q('rate')} FROM {q(HD.name)} WHERE {whole} GROUP BY {SHANGHAI_DAYS} fill(none)"
    ).alias("异常率 Abnormal rate")
    d = d.with_panel(
        g.place(
            timeseries_panel("每日异常率 Abnormal rate per day", [rate_daily], "percentunit"), 12, 8
        )
    )
    followups = InfluxQL(
        f"SELECT max({q('followups')}) AS {q('followups')}, max({q('hidden')}) AS {q('hidden')} "
        f"FROM {q(FC.name)} WHERE {q('reason')} = 'all' AND $timeFilter "
        f"GROUP BY {SHANGHAI_DAYS}, {q('state')} fill(none)"
    ).alias("$tag_state $col")
    d = d.with_panel(
        g.place(
            timeseries_panel(
                "家庭医生随访 Family-doctor follow-ups (open, overdue, closed this week)",
                [followups],
                "short",
                bars=True,
            ).description(
                "District-wide counts as of each day's last aggregator run (not filtered by hut); "
                "a count from fewer than k distinct residents is not shown: its day has "
                "'hidden' = 1 instead."
            ),
            12,
            8,
        )
    )
    return d.build()


def fleet() -> dm.Dashboard:
    """设备与管道 Fleet and pipeline health: gateways, buffering, ingestion rate, quarantine, latency."""
    d = new_dashboard(
        "gumei-fleet",
        "设备与数据管道 Fleet and pipeline health",
        "Are all gateways and devices alive, and is the ingestion pipeline keeping up?",
        "now-24h",
        ["ops"],
    )
    g = Grid()
    latest = f"SELECT last({q('online')}) AS {q('online')} FROM {q(G.name)} WHERE $timeFilter GROUP BY {q('site')}"
    online = InfluxQL(
        f"SELECT count({q('online')}) FROM ({latest}) WHERE {q('online')} = true"
    ).alias("在线 Online")
    d = d.with_panel(
        g.place(
            stat_panel("在线网关 Gateways online", [online], "short").thresholds(
                thresholds((None, "green"))
            ),
            5,
            5,
        )
    )
    offline = InfluxQL(
        f"SELECT count({q('online')}) FROM ({latest}) WHERE {q('online')} = false"
    ).alias("离线 Offline")
    d = d.with_panel(
        g.place(
            stat_panel("离线网关 Gateways offline", [offline], "short")
            .thresholds(thresholds((None, "green"), (1, "red")))
            .no_value("0"),
            5,
            5,
        )
    )
    dev_latest = f"SELECT last({q('ok')}) AS {q('ok')} FROM {q(D.name)} WHERE $timeFilter GROUP BY {q('device')}"
    faulty = InfluxQL(f"SELECT count({q('ok')}) FROM ({dev_latest}) WHERE {q('ok')} = false").alias(
        "故障 Faulty"
    )
    d = d.with_panel(
        g.place(
            stat_panel("故障设备 Devices reporting a fault", [faulty], "short")
            .thresholds(thresholds((None, "green"), (1, "orange")))
            .no_value("0"),
            5,
            5,
        )
    )
    quarantined = InfluxQL(f"SELECT sum({q('entries')}) FROM {q(QU.name)} WHERE $timeFilter").alias(
        "隔离 Quarantined"
    )
    d = d.with_panel(
        g.place(
            stat_panel("隔离条目 Quarantined entries (all reasons)", [quarantined], "short")
            .thresholds(thresholds((None, "green"), (1, "orange")))
            .no_value("0"),
            4,
            5,
        )
    )
    watermark = InfluxQL(
        f"SELECT last({q('watermark_ms')}) FROM {q(A.name)} WHERE $timeFilter"
    ).alias("聚合进度 Aggregated up to")
    d = d.with_panel(
        g.place(stat_panel("聚合进度 Aggregator watermark", [watermark], "dateTimeAsIso"), 5, 5)
    )
    last_seen = InfluxQL(
        f"SELECT last({q('online')}) AS {q('online')}, {q('buffered')}, {q('devices_ok')}, {q('devices')} FROM {q(G.name)} "
        f"WHERE $timeFilter GROUP BY {q('site')}, {q('kind')}"
    ).table()
    d = d.with_panel(
        g.place(
            table_panel(
                "网关最后上报 Gateways: last seen (time), state, buffered", [last_seen]
            ).with_transformation(
                DataTransformerConfig(
                    id_val="sortBy", options={"sort": [{"field": "Time", "desc": False}]}
                )
            ),
            10,
            10,
        )
    )
    buffered = InfluxQL(
        f"SELECT sum({q('buffered')}) FROM (SELECT last({q('buffered')}) AS {q('buffered')} FROM {q(G.name)} "
        f"WHERE $timeFilter GROUP BY time($__interval), {q('site')} fill(previous)) WHERE $timeFilter GROUP BY time($__interval)"
    ).alias("缓冲 Buffered")
    d = d.with_panel(
        g.place(
            timeseries_panel("网关缓冲读数 Readings buffered at gateways", [buffered], "short"),
            14,
            10,
        )
    )
    written = InfluxQL(
        f"SELECT non_negative_derivative(last({q('written')}), 1s) FROM {q(IS.name)} WHERE $timeFilter "
        f"GROUP BY time($__interval), {q('worker')} fill(none)"
    ).alias("写入 written $tag_worker")
    received = InfluxQL(
        f"SELECT non_negative_derivative(last({q('received')}), 1s) FROM {q(IS.name)} WHERE $timeFilter "
        f"GROUP BY time($__interval), {q('worker')} fill(none)",
        "B",
    ).alias("接收 received $tag_worker")
    d = d.with_panel(
        g.place(timeseries_panel("写入速率 Ingestion rate", [written, received], "ops"), 12, 8)
    )
    latency = InfluxQL(
        f"SELECT mean({q('batch_latency_ms')}) FROM {q(IS.name)} WHERE $timeFilter GROUP BY time($__interval), {q('worker')} fill(none)"
    ).alias("$tag_worker")
    d = d.with_panel(
        g.place(timeseries_panel("批量写入延迟 Batch write latency", [latency], "ms"), 12, 8)
    )
    by_reason = InfluxQL(
        f"SELECT sum({q('entries')}) FROM {q(QU.name)} WHERE $timeFilter GROUP BY time($__interval), {q('code')} fill(0)"
    ).alias("$tag_code")
    d = d.with_panel(
        g.place(
            timeseries_panel(
                "隔离原因 Quarantined entries by reason",
                [by_reason],
                "short",
                bars=True,
                stacked=True,
            ),
            12,
            8,
        )
    )
    reasons = InfluxQL(
        f"SELECT sum({q('entries')}) AS {q('entries')} FROM {q(QU.name)} WHERE $timeFilter GROUP BY {q('code')}"
    ).table()
    d = d.with_panel(
        g.place(bars_panel("隔离原因合计 Quarantine totals by reason", [reasons], "short"), 6, 8)
    )
    depth = InfluxQL(
        f"SELECT max({q('queue_depth')}) FROM {q(IS.name)} WHERE $timeFilter GROUP BY time($__interval), {q('worker')} fill(none)"
    ).alias("$tag_worker")
    d = d.with_panel(
        g.place(timeseries_panel("写入队列 Ingestion queue depth", [depth], "short"), 6, 8)
    )
    return events_panels(d, g).build()


def _latest_events() -> str:
    """Each (rule, subject)'s latest change (cloud/ops/store.py): one selector, so the other fields
    and the time are that point's. No $timeFilter: an event opened before the dashboard's range and
    still open must show."""
    cols = ", ".join(q(f) for f in ("severity", "audience", "deadline_ms", "value"))
    return (
        f"SELECT last({q('state')}) AS {q('state')}, {cols} FROM {in_records(E.name)} "
        f"GROUP BY {q('rule')}, {q('subject')}"
    )


def events_panels(d: dashboard.Dashboard, g: Grid) -> dashboard.Dashboard:
    """运行事件 Operations events: open and overdue counts and the table of unresolved events
    (docs/operations.md). The state is each series' latest change; overdue = unresolved with its
    deadline before the end of the range ($__to)."""
    active = f"{q('state')} != 'resolved'"
    open_n = InfluxQL(f"SELECT count({q('state')}) FROM ({_latest_events()}) WHERE {active}").alias(
        "未处理 Unresolved"
    )
    d = d.with_panel(
        g.place(
            stat_panel("未处理事件 Open events", [open_n], "short")
            .thresholds(thresholds((None, "green"), (1, "orange")))
            .no_value("0"),
            6,
            5,
        )
    )
    overdue_n = InfluxQL(
        f"SELECT count({q('state')}) FROM ({_latest_events()}) WHERE {active} AND {q('deadline_ms')} < $__to"
    ).alias("逾期 Overdue")
    d = d.with_panel(
        g.place(
            stat_panel("逾期事件 Overdue events", [overdue_n], "short")
            .thresholds(thresholds((None, "green"), (1, "red")))
            .no_value("0"),
            6,
            5,
        )
    )
    table = InfluxQL(
        f"SELECT {q('state')}, {q('severity')}, {q('audience')}, {q('deadline_ms')}, {q('value')} "
        f"FROM ({_latest_events()}) WHERE {active} GROUP BY {q('rule')}, {q('subject')}"
    ).table()
    return d.with_panel(
        g.place(
            table_panel(
                "未处理与逾期事件 Open and overdue events (time = last change)", [table]
            ).description(
                "Acknowledge and resolve through the API (/api/v1/ops/events); deadline_ms past "
                "now means overdue."
            ),
            12,
            10,
        )
    )
