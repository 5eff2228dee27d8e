"""The broker a deployment gets (`gumei broker gen`) is the broker the tests and the demo run on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from broker import dynsec
from broker.generate import generate_broker
from broker.tls import make_server_cert
from cloud import registry as registry_mod
from devstack.mosquitto import Mosquitto
from devstack.services import free_port, stop_process, wait_for_port
from runtime.mqtt import MqttEndpoint
from runtime.system import find_binary
from tests.support.common import gumei, wait_until
from tests.support.security import accepted, connack, probe

# The only lines allowed to differ between production and the local stack: listeners, their
# certificate paths, persistence/plugin-file paths, log destination, `user root`.
LAYOUT_LINES = (
    "listener ",
    "cafile ",
    "certfile ",
    "keyfile ",
    "persistence_location ",
    "plugin_opt_config_file ",
    "log_dest ",
    "user ",
)
REG: dict[str, list[dict[str, Any]]] = {
    "areas": [{"id": "A01", "name": "area"}],
    "sites": [
        {
            "id": "WS-0001",
            "kind": "waste",
            "area": "A01",
            "name": "one",
            "lat": 31.15,
            "lon": 121.4,
            "devices": [{"id": "WS-0001-S1", "category": "dry"}],
        },
        {
            "id": "WS-0002",
            "kind": "waste",
            "area": "A01",
            "name": "two",
            "lat": 31.15,
            "lon": 121.4,
            "retired": True,
        },
        {"id": "HH-03", "kind": "health", "area": "A01", "name": "hut", "lat": 31.15, "lon": 121.4},
    ],
}


def write_registry(tmp_path: Path, sites: list[dict] | None = None) -> Path:
    path = tmp_path / "sites.yaml"
    path.write_text(yaml.safe_dump({**REG, "sites": sites or REG["sites"]}))
    return path


def security_lines(conf: str) -> list[str]:
    """mosquitto.conf without comments and layout lines: what must be identical everywhere."""
    return [
        ln
        for ln in conf.splitlines()
        if ln and not ln.startswith("#") and not ln.startswith(LAYOUT_LINES)
    ]


def without_hashes(doc: dict) -> dict:
    strip = ("password", "salt", "iterations")
    return {
        **doc,
        "clients": [{k: v for k, v in c.items() if k not in strip} for c in doc["clients"]],
    }


def test_production_and_local_broker_differ_only_in_listeners_and_paths(tmp_path: Path) -> None:
    reg = registry_mod.load(write_registry(tmp_path))
    prod = generate_broker(tmp_path / "prod", reg, ["localhost"])
    passwords = json.loads(prod.secrets.read_text())
    local = Mosquitto(
        tmp_path / "local",
        dynsec.broker_identities(reg),
        passwords,
        tls=make_server_cert(tmp_path / "tls"),
    )
    local_conf = local.write_config().read_text()
    prod_conf = prod.config.read_text()
    assert security_lines(prod_conf) == security_lines(local_conf)
    for needed in (
        "allow_anonymous false",
        "max_queued_messages 1000000",
        "autosave_interval 5",
        "max_inflight_messages 1000",
        "max_packet_size 300000",
        "per_listener_settings false",
        "require_certificate false",
    ):
        assert needed in security_lines(prod_conf), needed
    assert "password_file" not in prod_conf and "acl_file" not in prod_conf
    assert "persistence_location /var/lib/mosquitto/" in prod_conf
    assert "plugin_opt_config_file /var/lib/mosquitto/dynamic-security.json" in prod_conf
    prod_doc = json.loads(prod.dynsec.read_text())
    local_doc = json.loads((tmp_path / "local" / "dynamic-security.json").read_text())
    assert without_hashes(prod_doc) == without_hashes(local_doc)
    assert all(
        dynsec.verifies(c, passwords[c["username"]])
        for c in prod_doc["clients"] + local_doc["clients"]
    )
    assert all(c["clientid"] == c["username"] for c in prod_doc["clients"])
    assert prod_doc["defaultACLAccess"] == dict.fromkeys(
        ("publishClientSend", "publishClientReceive", "subscribe", "unsubscribe"), False
    )
    roles = {
        r["rolename"]: {(a["acltype"], a["topic"]) for a in r["acls"]} for r in prod_doc["roles"]
    }
    assert roles["gateway-WS-0001"] == {("publishClientSend", "gumei/v1/waste/WS-0001/+")}
    assert roles["gateway-HH-03"] == {("publishClientSend", "gumei/v1/health/HH-03/+")}
    assert ("subscribeLiteral", "$share/ingest/gumei/v1/#") in roles["ingest-worker"]
    assert "gateway-WS-0002" not in roles  # retired: no identity
    assert [c["username"] for c in prod_doc["clients"]][:9] == [
        dynsec.ADMIN,
        *(f"ingest-{i}" for i in range(1, 5)),
        *(f"monitor-{i}" for i in range(1, 5)),
    ]


def test_regeneration_keeps_every_credential_and_hash(tmp_path: Path) -> None:
    reg_path = write_registry(tmp_path)
    first = generate_broker(tmp_path / "out", registry_mod.load(reg_path), ["localhost"])
    doc1, secrets1 = first.dynsec.read_text(), first.secrets.read_text()
    again = generate_broker(tmp_path / "out", registry_mod.load(reg_path), ["localhost"])
    assert (
        again.dynsec.read_text() == doc1 and again.secrets.read_text() == secrets1
    )  # byte for byte
    added = [
        *REG["sites"],
        {
            "id": "WS-0004",
            "kind": "waste",
            "area": "A01",
            "name": "new",
            "lat": 31.15,
            "lon": 121.4,
        },
    ]
    grown = generate_broker(
        tmp_path / "out", registry_mod.load(write_registry(tmp_path, added)), ["localhost"]
    )
    old = {c["username"]: c for c in json.loads(doc1)["clients"]}
    new = {c["username"]: c for c in json.loads(grown.dynsec.read_text())["clients"]}
    assert set(new) - set(old) == {"WS-0004"} and all(new[u] == old[u] for u in old)


def test_generated_broker_runs_with_tls_client_certs_bound_ids_and_live_rotation(
    tmp_path: Path,
) -> None:
    reg_path = write_registry(tmp_path)
    out, state, port = tmp_path / "broker", tmp_path / "state", free_port()
    gumei(
        "broker",
        "gen",
        "--out",
        str(out),
        "--registry",
        str(reg_path),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--client-certs",
        "--workers",
        "2",
        "--state-dir",
        str(state),
    )
    for private in (
        out / "dynamic-security.json",
        out / "secrets" / "mqtt.json",
        out / "ingest" / "ingest-1.env",
    ):
        assert private.stat().st_mode & 0o077 == 0, private
    assert "WS-0002" not in (out / "dynamic-security.json").read_text()  # retired: no credential
    pw = json.loads((out / "secrets" / "mqtt.json").read_text())
    assert (
        f"GUMEI_MQTT__PASSWORD={pw['ingest-1']}\n" in (out / "ingest" / "ingest-1.env").read_text()
    )
    assert not (out / "ingest" / "ingest-3.env").exists()
    # the install step of docs/deploy.md, into a private state dir; the log goes to a file here
    state.mkdir()
    shutil.copy(out / "dynamic-security.json", state / "dynamic-security.json")
    conf = (out / "mosquitto.conf").read_text() + f"log_dest file {tmp_path / 'm.log'}\n"
    if os.geteuid() == 0:
        conf = "user root\n" + conf
    (tmp_path / "run.conf").write_text(conf)
    proc = subprocess.Popen(
        [find_binary("mosquitto"), "-c", str(tmp_path / "run.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc, 10, tmp_path / "m.log")
        tls = out / "tls"

        def endpoint(user: str) -> MqttEndpoint:
            return MqttEndpoint(
                port=port,
                username=user,
                password=pw[user],
                ca_file=tls / "ca.crt",
                cert_file=tls / "clients" / f"{user}.crt",
                key_file=tls / "clients" / f"{user}.key",
            )

        ep = endpoint("WS-0001")
        assert accepted(ep, "WS-0001")
        rc = connack(ep, "ingest-1")
        assert rc is not None and rc.value == 0x87, rc  # bound client id
        assert (
            connack(ep.model_copy(update={"cert_file": None, "key_file": None}), "WS-0001") is None
        )
        with probe(ep, "WS-0001") as gw:
            assert gw.publish("gumei/v1/waste/WS-0002/readings", b"{}").value == 0x87
            assert gw.subscribe("$share/ingest/gumei/v1/#").value == 0x87
            assert not gw.publish(
                "gumei/v1/waste/WS-0001/readings", b"{}"
            ).is_failure  # 0x10: no subscribers
        with probe(endpoint("ingest-1"), "ingest-1") as worker:
            assert not worker.subscribe("$share/ingest/gumei/v1/#").is_failure
        gumei(
            "broker",
            "rotate",
            "WS-0001",
            "--out",
            str(out),
            "--live-host",
            "127.0.0.1",
            "--live-port",
            str(port),
        )
        rc = connack(ep, "WS-0001")
        assert rc is not None and rc.is_failure, rc
        new = json.loads((out / "secrets" / "mqtt.json").read_text())
        assert new["ingest-1"] == pw["ingest-1"] and new["WS-0001"] != pw["WS-0001"]
        assert accepted(ep.model_copy(update={"password": new["WS-0001"]}), "WS-0001")
        # the broker saved the change in its own file, and the generated copy agrees
        live = {
            c["username"]: c
            for c in json.loads((state / "dynamic-security.json").read_text())["clients"]
        }
        assert dynsec.verifies(live["WS-0001"], new["WS-0001"])
        ours = {
            c["username"]: c
            for c in json.loads((out / "dynamic-security.json").read_text())["clients"]
        }
        assert dynsec.verifies(ours["WS-0001"], new["WS-0001"])
    finally:
        stop_process(proc)
    wait_until(lambda: proc.poll() is not None, 10, what="mosquitto stopped")
