"""Grafana alerting provisioned as code from the operations rule table (cloud/ops/rules.py RULES).

One Grafana alert rule per row of RULES, a webhook contact point and a notification policy, in
Grafana's unified-alerting file-provisioning format (Grafana 10/11: `apiVersion: 1`, `groups`,
`contactPoints`, `policies`; docs/operations.md cites the reference). Each rule's query reads
what the evaluator writes: the latest change of each (rule, subject) series of `ops_event` in
the records database, named in full (`in_records`), and counts the series that are not resolved;
one alert instance per subject (its `subject` tag), firing while the event is open or
acknowledged, resolved when the evaluator or a person resolves it. Grafana therefore never
re-judges a condition (one home for the rules: the evaluator); it is a second way for events to
reach people, through Grafana's own notification channels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cloud import measurements as m
from cloud.ops.rules import DEADLINE_MS, RULES, Rule
from dashboards.influxql import DATASOURCE_UID
from dashboards.panels import in_records, q
from dashboards.provisioning import FOLDER_TITLE

GROUP = "gumei-ops"
INTERVAL = "60s"  # the evaluator's `gumei ops loop --interval 60`
CONTACT_POINT = "gumei-ops-webhook"
WEBHOOK_URL_ENV = "$GUMEI_OPS_WEBHOOK_URL"  # Grafana expands it from its environment
EXPRESSION_UID = "__expr__"  # Grafana's server-side expressions (reduce, threshold)
UID_PREFIX = "gumei-ops-"  # + the rule's name; Grafana's uid limit is 40 characters


def alert_query(rule: str) -> str:
    """InfluxQL: per subject, 1 while the rule's event is unresolved (its latest change's state);
    no series for a subject whose event is resolved. No $timeFilter: an event opened long ago and
    still open must keep firing."""
    latest = (
        f"SELECT last({q('state')}) AS {q('state')} FROM {in_records(m.OPS_EVENT.name)} "
        f"WHERE {q('rule')} = '{rule}' GROUP BY {q('subject')}"
    )
    return (
        f"SELECT count({q('state')}) AS {q('active')} FROM ({latest}) "
        f"WHERE {q('state')} != 'resolved' GROUP BY {q('subject')}"
    )


def alert_rule(rule: Rule) -> dict[str, Any]:
    """One Grafana alert rule: A = the InfluxQL query, B = its last value per series, C = B > 0."""
    query = alert_query(rule.name)
    deadline_h = DEADLINE_MS[rule.severity] / 3_600_000
    return {
        "uid": UID_PREFIX + rule.name,
        "title": rule.title,
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": 600, "to": 0},
                "datasourceUid": DATASOURCE_UID,
                "model": {
                    "refId": "A",
                    "rawQuery": True,
                    "query": query,
                    "resultFormat": "time_series",
                    "intervalMs": 60_000,
                    "maxDataPoints": 43_200,
                },
            },
            {
                "refId": "B",
                "relativeTimeRange": {"from": 600, "to": 0},
                "datasourceUid": EXPRESSION_UID,
                "model": {
                    "refId": "B",
                    "type": "reduce",
                    "expression": "A",
                    "reducer": "last",
                    "settings": {"mode": "dropNN"},
                },
            },
            {
                "refId": "C",
                "relativeTimeRange": {"from": 600, "to": 0},
                "datasourceUid": EXPRESSION_UID,
                "model": {
                    "refId": "C",
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [{"evaluator": {"type": "gt", "params": [0]}}],
                },
            },
        ],
        "noDataState": "OK",  # no unresolved event of this rule: nothing to say
        "execErrState": "Error",  # InfluxDB unreachable: Grafana's own error alert, not this rule
        "for": "0s",  # the evaluator already applied the rule's delays (10 min offline, 2 points ...)
        "labels": {"severity": rule.severity, "audience": rule.audience, "rule": rule.name},
        "annotations": {
            "summary": f"{rule.title}: {{{{ $labels.subject }}}}",
            "description": f"Opens when {rule.opens}. Resolves when {rule.resolves}.",
            "runbook_url": "/api/v1/ops/events",
            "deadline": f"{deadline_h:g} h after opening ({rule.severity})",
        },
        "isPaused": False,
    }


def alerting_doc() -> dict[str, Any]:
    """The whole provisioning document: the rule group, the contact point, the policy."""
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": GROUP,
                "folder": FOLDER_TITLE,
                "interval": INTERVAL,
                "rules": [alert_rule(r) for r in RULES],
            }
        ],
        "contactPoints": [
            {
                "orgId": 1,
                "name": CONTACT_POINT,
                "receivers": [
                    {
                        "uid": CONTACT_POINT,
                        "type": "webhook",
                        "settings": {"url": WEBHOOK_URL_ENV, "httpMethod": "POST"},
                        "disableResolveMessage": False,
                    }
                ],
            }
        ],
        "policies": [
            {
                "orgId": 1,
                "receiver": CONTACT_POINT,
                "group_by": ["alertname", "subject"],
                "group_wait": "30s",
                "group_interval": "5m",
                "repeat_interval": "4h",
            }
        ],
    }


def write_alerting(out: Path) -> list[Path]:
    """Write <out>/alerting/gumei-ops.yaml beside the data source and dashboard provisioning."""
    path = out / "alerting" / "gumei-ops.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(alerting_file(), encoding="utf-8")
    return [path]


def alerting_file() -> str:
    """The YAML file, with a head saying where it goes and what it replaces."""
    head = (
        "# Generated from cloud/ops/rules.py by `gumei dashboards generate`; do not edit.\n"
        "# Copy to <grafana>/provisioning/alerting/. Grafana expands $GUMEI_OPS_WEBHOOK_URL from its\n"
        "# environment (a receiver of Grafana's webhook JSON, e.g. the city operations centre's).\n"
        "# `policies` REPLACES the organisation's whole notification policy tree.\n"
        "# One alert rule per operations rule: firing per subject while its event is unresolved in\n"
        "# ops_event (the evaluator's, docs/operations.md); Grafana's user reads gumei_records.\n"
    )
    return head + yaml.safe_dump(alerting_doc(), allow_unicode=True, sort_keys=False, width=1000)
