"""`dashboards push` round trip against a stand-in for Grafana's HTTP API (tests/support/grafana_stub.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypedDict

import pytest

from dashboards import generate as gen
from dashboards import push as p
from dashboards.influxql import DATASOURCE_UID
from devstack.services import free_port
from tests.support.grafana_stub import GrafanaStub

TOKEN = "glsa_test_token"


class InfluxArgs(TypedDict):
    influx_url: str
    influx_user: str
    influx_password: str


INFLUX: InfluxArgs = {
    "influx_url": "http://influx.example:8086",
    "influx_user": "grafana",
    "influx_password": "s3cret",
}


@pytest.fixture
def grafana() -> Iterator[GrafanaStub]:
    stub = GrafanaStub(TOKEN)
    stub.start()
    yield stub
    stub.stop()


def test_first_push_creates_everything(grafana: GrafanaStub) -> None:
    result = p.push(grafana.url, TOKEN, **INFLUX)
    uids = {d["uid"] for d in gen.load().values()}
    assert result.grafana_version == "11.6.0"
    assert (result.datasource, result.folder) == ("created", "created")
    assert result.dashboards == {uid: "created" for uid in uids}
    ds = grafana.datasources[DATASOURCE_UID]
    assert (
        ds["type"] == "influxdb" and ds["jsonData"]["dbName"] == "gumei" and ds["user"] == "grafana"
    )
    assert grafana.secrets[DATASOURCE_UID] == {"password": "s3cret"}
    assert set(grafana.dashboards) == uids
    assert all(e["folderUid"] == "gumei" for e in grafana.dashboards.values())
    stored = grafana.dashboards["gumei-waste-overview"]["dashboard"]
    assert {k: v for k, v in stored.items() if k not in ("id", "version")} == gen.load()[
        "waste-overview"
    ]


def test_second_push_is_idempotent(grafana: GrafanaStub) -> None:
    p.push(grafana.url, TOKEN, **INFLUX)
    versions = {uid: e["dashboard"]["version"] for uid, e in grafana.dashboards.items()}
    ds_before = dict(grafana.datasources[DATASOURCE_UID])
    result = p.push(grafana.url, TOKEN, **INFLUX)
    assert result.folder == "unchanged"
    assert set(result.dashboards.values()) == {"unchanged"}
    assert {uid: e["dashboard"]["version"] for uid, e in grafana.dashboards.items()} == versions
    after = grafana.datasources[DATASOURCE_UID]
    assert {k: v for k, v in after.items() if k != "version"} == {
        k: v for k, v in ds_before.items() if k != "version"
    }
    assert len(grafana.datasources) == 1 and len(grafana.folders) == 1


def test_push_updates_a_dashboard_edited_in_grafana(grafana: GrafanaStub) -> None:
    p.push(grafana.url, TOKEN, **INFLUX)
    entry = grafana.dashboards["gumei-fleet"]["dashboard"]
    entry["title"] = "edited by hand"
    entry["version"] += 1
    result = p.push(grafana.url, TOKEN, **INFLUX)
    assert result.dashboards["gumei-fleet"] == "updated"
    assert grafana.dashboards["gumei-fleet"]["dashboard"]["title"] == gen.load()["fleet"]["title"]


def test_token_datasource_for_influxdb_2_and_3(grafana: GrafanaStub) -> None:
    p.push(
        grafana.url,
        TOKEN,
        influx_url="https://eu-central-1.example:443",
        influx_auth="token",
        influx_token="tok",
    )
    ds = grafana.datasources[DATASOURCE_UID]
    assert ds["jsonData"]["httpHeaderName1"] == "Authorization" and "user" not in ds
    assert grafana.secrets[DATASOURCE_UID] == {"httpHeaderValue1": "Token tok"}


def test_bad_token_is_one_clear_line(grafana: GrafanaStub) -> None:
    with pytest.raises(p.BadToken) as err:
        p.push(grafana.url, "wrong", **INFLUX)
    assert "refused the token (401" in str(err.value) and "\n" not in str(err.value)
    assert not grafana.dashboards


def test_wrong_url_nothing_listening() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(p.GrafanaUnreachable) as err:
        p.push(url, TOKEN, timeout=3, **INFLUX)
    assert str(err.value).startswith(f"cannot reach Grafana at {url}") and "\n" not in str(
        err.value
    )


def test_wrong_url_something_else_answers(grafana: GrafanaStub) -> None:
    url = grafana.url + "/not-grafana"
    with pytest.raises(p.GrafanaUnreachable) as err:
        p.push(url, TOKEN, **INFLUX)
    assert "does not look like Grafana" in str(err.value) and "\n" not in str(err.value)


def test_version_conflict_412(grafana: GrafanaStub) -> None:
    p.push(grafana.url, TOKEN, **INFLUX)
    grafana.dashboards["gumei-station"]["dashboard"]["title"] = "edited"

    def someone_saves(uid: str) -> None:  # another user saves between push's read and its write
        grafana.dashboards[uid]["dashboard"]["version"] += 1

    grafana.after_get_dashboard = someone_saves
    with pytest.raises(p.VersionConflict) as err:
        p.push(grafana.url, TOKEN, **INFLUX)
    assert (
        "dashboard gumei-station" in str(err.value)
        and "412" in str(err.value)
        and "\n" not in str(err.value)
    )
    grafana.after_get_dashboard = None
    assert (
        p.push(grafana.url, TOKEN, overwrite=True, **INFLUX).dashboards["gumei-station"]
        == "updated"
    )


def test_push_without_generated_json(tmp_path) -> None:
    with pytest.raises(p.PushError, match="run `gumei dashboards generate`"):
        p.push("http://127.0.0.1:9", TOKEN, json_dir=tmp_path, **INFLUX)
