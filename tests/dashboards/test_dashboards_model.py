"""Generated dashboards: committed JSON is current, validates against the SDK model, uses only known names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from cloud import measurements as m
from cloud import registry
from dashboards import generate as gen
from dashboards import influxql, macros, schema, verify

DOCS = gen.load()
TITLES = {name: doc["title"] for name, doc in DOCS.items()}


def _queries(doc: dict) -> list[tuple[str, str]]:
    out = [(f"variable {n}", q) for n, q in verify.variable_queries(doc)]
    return out + [
        (p["title"], t["query"]) for p in verify.panels(doc) for t in p.get("targets", [])
    ]


def test_committed_json_is_what_the_generator_writes(tmp_path: Path) -> None:
    gen.generate(tmp_path / "json", tmp_path / "prov", tmp_path / "gaz.json")
    for name, doc in gen.dashboards().items():
        assert (gen.JSON_DIR / f"{name}.json").read_text(encoding="utf-8") == gen.dump(doc), (
            f"run `gumei dashboards generate` ({name})"
        )
    for p in (tmp_path / "prov").rglob("*.yaml"):
        committed = gen.PROVISIONING_DIR / p.relative_to(tmp_path / "prov")
        assert committed.read_text(encoding="utf-8") == p.read_text(encoding="utf-8")
    assert json.loads((tmp_path / "gaz.json").read_text()) == json.loads(
        gen.GAZETTEER_PATH.read_text()
    )


@pytest.mark.parametrize("name", sorted(DOCS))
def test_json_round_trips_through_the_sdk_model(name: str) -> None:
    influxql.register()
    doc = DOCS[name]
    model = dm.Dashboard.from_json(doc)
    again = json.loads(json.dumps(model, cls=JSONEncoder))
    assert again == doc  # nothing unknown to the Grafana 11.6 schema was dropped or changed
    for p in model.panels or []:
        assert isinstance(p, dm.Panel)
        assert p.type_val in {
            "stat",
            "gauge",
            "timeseries",
            "bargauge",
            "piechart",
            "table",
            "geomap",
        }
        assert p.targets and all(isinstance(t, influxql.InfluxQLQuery) for t in p.targets)
        assert p.datasource is not None and p.datasource.uid == influxql.DATASOURCE_UID


def test_influxql_target_rejects_what_grafana_would_not_run() -> None:
    with pytest.raises(ValueError, match="raw query"):
        influxql.InfluxQLQuery.from_json(
            {"refId": "A", "query": "SELECT 1", "rawQuery": False, "resultFormat": "table"}
        )
    with pytest.raises(ValueError, match="unexpected"):
        influxql.InfluxQLQuery.from_json(
            {
                "refId": "A",
                "query": "x",
                "rawQuery": True,
                "resultFormat": "table",
                "measurement": "m",
            }
        )


def test_dashboards_are_bilingual_unique_and_in_shanghai_time() -> None:
    uids = [d["uid"] for d in DOCS.values()]
    assert len(set(uids)) == len(uids) == 4
    assert any("垃圾分类总览" in t and "Waste sorting overview" in t for t in TITLES.values())
    assert any("智慧健康小屋" in t for t in TITLES.values())
    for doc in DOCS.values():
        assert doc["timezone"] == "Asia/Shanghai"
        ids = [p["id"] for p in verify.panels(doc)]
        assert len(set(ids)) == len(ids)
        for p in verify.panels(doc):
            assert any("\u4e00" <= ch <= "\u9fff" for ch in p["title"]), p["title"]
            assert any("a" <= ch.lower() <= "z" for ch in p["title"]), p["title"]
            pos = p["gridPos"]
            assert pos["x"] + pos["w"] <= 24


@pytest.mark.parametrize("name", sorted(DOCS))
def test_every_query_uses_only_names_the_pipeline_writes(name: str) -> None:
    catalogue = schema.catalogue()
    problems = {title: verify.unknown_names(q, catalogue) for title, q in _queries(DOCS[name])}
    assert {t: p for t, p in problems.items() if p} == {}


def test_names_check_catches_a_renamed_field() -> None:
    catalogue = schema.catalogue()
    assert verify.unknown_names(
        'SELECT sum("tons") FROM "waste_daily" WHERE $timeFilter', catalogue
    ) == ["unknown tag/field tons"]
    assert (
        verify.unknown_names('SELECT sum("tonnes") FROM "waste_dialy"', catalogue)[0]
        == "unknown measurement waste_dialy"
    )
    assert "unquoted word tonnes" in verify.unknown_names(
        'SELECT sum(tonnes) FROM "waste_daily"', catalogue
    )


def test_target_panels_read_the_aggregators_measurement() -> None:
    assert schema.WASTE_TARGETS in m.ALL
    used = {
        q for doc in DOCS.values() for _, q in _queries(doc) if f'"{m.WASTE_TARGETS.name}"' in q
    }
    assert any('"sorting_pct"' in q for q in used) and any('"dry_change_pct"' in q for q in used)


def test_daily_panels_use_shanghai_days() -> None:
    for doc in DOCS.values():
        for title, q in _queries(doc):
            if "time(1d" in q:
                assert "time(1d, -8h)" in q or "tz('Asia/Shanghai')" in q, title


def test_health_dashboard_never_shows_a_resident() -> None:
    for title, q in _queries(DOCS["health-hut"]):
        stripped = q.replace('count(distinct("resident"))', "")
        assert '"resident"' not in stripped, title
        assert "GROUP BY" not in q or '"resident"' not in q.split("GROUP BY", 1)[1], title


def test_geomap_reads_registry_coordinates_from_the_gazetteer() -> None:
    entries = json.loads(gen.GAZETTEER_PATH.read_text(encoding="utf-8"))
    reg = registry.load()
    assert {e["key"] for e in entries} == {s.id for s in reg.sites if not s.retired}
    geo = [p for p in verify.panels(DOCS["waste-overview"]) if p["type"] == "geomap"]
    assert len(geo) == 1
    layer = geo[0]["options"]["layers"][0]
    assert layer["location"] == {
        "mode": "lookup",
        "lookup": "site",
        "gazetteer": "public/gazetteer/gumei-sites.json",
    }


def test_provisioning_files_cover_influxdb_1x_and_token_auth() -> None:
    basic = yaml.safe_load(
        (gen.PROVISIONING_DIR / "datasources" / "gumei-influxdb.yaml").read_text()
    )["datasources"][0]
    token = yaml.safe_load(
        (gen.PROVISIONING_DIR / "datasources-token" / "gumei-influxdb.yaml").read_text()
    )["datasources"][0]
    for ds in (basic, token):
        assert ds["uid"] == influxql.DATASOURCE_UID and ds["type"] == "influxdb"
        assert ds["jsonData"]["dbName"] == ds["database"]
    assert basic["user"] == "$INFLUXDB_USER" and "password" in basic["secureJsonData"]
    assert token["jsonData"]["httpHeaderName1"] == "Authorization"
    assert token["secureJsonData"]["httpHeaderValue1"] == "Token $INFLUXDB_TOKEN"
    provider = yaml.safe_load((gen.PROVISIONING_DIR / "dashboards" / "gumei.yaml").read_text())[
        "providers"
    ][0]
    assert provider["type"] == "file" and provider["folderUid"] == "gumei"


def test_macros_expand_like_grafana() -> None:
    q = 'SELECT mean("x") FROM "m" WHERE "site" =~ /^$station$/ AND "area" =~ /^${area}$/ AND $timeFilter GROUP BY time($__interval) LIMIT $__interval_ms'
    out = macros.expand(
        q,
        1000,
        61_000,
        {"station": ["WS-0101", "WS-0102"], "area": macros.Raw(".*")},
        interval=60_000,
    )
    assert out == (
        'SELECT mean("x") FROM "m" WHERE "site" =~ /^(WS-0101|WS-0102)$/ AND "area" =~ /^.*$/ '
        "AND time >= 1000ms and time <= 61000ms GROUP BY time(1m) LIMIT 60000"
    )
    assert macros.expand("[[a]] $interval", 0, 1, {"a": "x.y"}, interval=10_000) == r"x\.y 10s"
    with pytest.raises(KeyError, match=r"\$nope"):
        macros.expand("$nope", 0, 1)


def test_interval_rounding_and_panel_ranges() -> None:
    day = 86_400_000
    assert macros.interval_ms(0, 30 * day, 600) == 3_600_000  # 30 days over 600 px → 1h
    assert macros.interval_ms(0, 60_000, 1000) == 10_000  # never below the data source's 10s
    assert macros.format_interval(86_400_000) == "1d" and macros.format_interval(500) == "500ms"
    # 2025-11-27 10:00 Shanghai → today starts 2025-11-26 16:00 UTC
    assert macros.panel_range(0, 1764208800000, "now/d") == (1764172800000, 1764208800000)
    assert macros.panel_range(0, 1764208800000, "7d") == (1764208800000 - 7 * day, 1764208800000)
