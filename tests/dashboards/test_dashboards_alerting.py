"""Grafana alerting provisioned from the rule table: the committed YAML has exactly one alert rule per
row of RULES with the fields Grafana's file provisioning requires, and every alert query runs on a
real influxd over the events the evaluator and the API write (firing per unresolved subject only)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cloud.influx import InfluxClient
from cloud.ops.rules import RULES, Rule
from dashboards import alerting
from dashboards import generate as gen
from dashboards.influxql import DATASOURCE_UID
from tests.support.private_influx import private_influx, sample_events

HOUR = 3_600_000
NOW = 1_764_208_800_000  # 2025-11-27 10:00 Shanghai
COMMITTED = gen.PROVISIONING_DIR / "alerting" / "gumei-ops.yaml"


def _doc() -> dict:
    doc = yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def _rules() -> list[dict]:
    [group] = _doc()["groups"]
    return group["rules"]


def test_the_committed_file_is_what_the_table_generates() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == alerting.alerting_file()


def test_exactly_one_alert_rule_per_row_of_the_table() -> None:
    rules = _rules()
    assert [r["labels"]["rule"] for r in rules] == [r.name for r in RULES]
    assert len({r["uid"] for r in rules}) == len(RULES)
    for got, rule in zip(rules, RULES, strict=True):
        assert got["title"] == rule.title
        assert got["labels"]["severity"] == rule.severity
        assert got["labels"]["audience"] == rule.audience
        assert f"'{rule.name}'" in got["data"][0]["model"]["query"]


def test_the_fields_grafana_requires() -> None:
    doc = _doc()
    assert doc["apiVersion"] == 1
    [group] = doc["groups"]
    assert {"orgId", "name", "folder", "interval", "rules"} <= group.keys()
    assert re.fullmatch(r"\d+[smh]", group["interval"])
    for r in group["rules"]:
        assert {
            "uid",
            "title",
            "condition",
            "data",
            "for",
            "labels",
            "annotations",
            "noDataState",
            "execErrState",
        } <= r.keys()
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", r["uid"])
        assert re.fullmatch(r"\d+[smh]", r["for"])
        assert r["noDataState"] in {"Alerting", "NoData", "OK"}
        assert r["execErrState"] in {"Alerting", "Error", "OK"}
        refs = [d["refId"] for d in r["data"]]
        assert r["condition"] in refs and len(set(refs)) == len(refs)
        for d in r["data"]:
            assert {"refId", "datasourceUid", "model", "relativeTimeRange"} <= d.keys()
            assert d["model"]["refId"] == d["refId"]
            if d["datasourceUid"] != alerting.EXPRESSION_UID:
                assert d["datasourceUid"] == DATASOURCE_UID
                assert d["model"]["rawQuery"] is True
            else:  # an expression refers only to refIds that exist
                assert d["model"]["expression"] in refs
        assert r["annotations"]["summary"]
    [cp] = doc["contactPoints"]
    [receiver] = cp["receivers"]
    assert receiver["type"] == "webhook" and receiver["settings"]["url"].startswith("$")
    [policy] = doc["policies"]
    assert policy["receiver"] == cp["name"]


def test_a_rule_added_to_the_table_without_an_alert_is_caught() -> None:
    """The generator takes its rules from RULES: the doc follows the table, row for row."""
    extra = Rule("scale_drift_x", "X", "scale", "minor", "field", "x", "y", None)
    names = [r["labels"]["rule"] for r in alerting.alerting_doc()["groups"][0]["rules"]]
    assert extra.name not in names and names == [r.name for r in RULES]
    assert alerting.alert_rule(extra)["uid"] == "gumei-ops-scale_drift_x"


@pytest.fixture(scope="module")
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxClient]:
    with private_influx(tmp_path_factory.mktemp("alert-influxd")) as client:
        client.write_lines(("\n".join(sample_events(NOW)) + "\n").encode(), db=client.records_db)
        yield client


FIRING = {"gateway_offline": {"WS-0201"}, "bin_full": {"WS-0101-S1"}}


@pytest.mark.parametrize("rule", [r.name for r in RULES])
def test_every_alert_query_runs_and_fires_per_unresolved_subject(
    influx: InfluxClient, rule: str
) -> None:
    [got] = [r for r in _rules() if r["labels"]["rule"] == rule]
    query = got["data"][0]["model"]["query"]
    series = influx.query(query)  # raises on an InfluxQL error
    firing = {s.tags["subject"] for s in series if s.values and s.values[-1][1] > 0}
    assert firing == FIRING.get(rule, set()), query


def test_generate_writes_the_alerting_file(tmp_path: Path) -> None:
    paths = alerting.write_alerting(tmp_path)
    assert paths == [tmp_path / "alerting" / "gumei-ops.yaml"]
    assert paths[0].read_text(encoding="utf-8") == COMMITTED.read_text(encoding="utf-8")
