"""The real broker keeps every gateway in its own lane: TLS, passwords, ACL, rotation, quarantine."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
import yaml

from cloud import measurements as m
from contract import WasteBatch, WasteReading, encode
from contract.topics import status as status_topic
from contract.topics import waste_readings
from gumei.mqtt import MqttEndpoint
from gumei.services import find_binary, free_port, stop_process, wait_for_port
from tests.conftest import count, gumei, rows_of, wait_until
from tests.security_helpers import connack, probe

ME, OTHER = "WS-3901", "WS-3902"  # area A39 in the default registry; no other test uses them
TS = 1709164800000  # 2024-02-29T00:00Z: a day no other test writes


def batch(site: str, device: str, seq: int, kg: float = 1.25) -> bytes:
    return encode(WasteBatch(site=site, readings=[WasteReading(device=device, seq=seq, ts=TS, category="dry", net_kg=kg)]))


def stored(influx, site: str) -> int:  # type: ignore[no-untyped-def]
    return count(influx, f"SELECT count(net_kg) FROM {m.WASTE_READING.name} WHERE site = '{site}' AND time >= {TS}ms AND time < {TS + 1000}ms")


def test_gateway_cannot_publish_to_another_site_and_nothing_reaches_the_db(stack, ingest_worker, influx):  # type: ignore[no-untyped-def]
    with probe(stack.endpoint(ME), "sec-pub") as gw:
        refused = [
            gw.publish(waste_readings(OTHER), batch(OTHER, f"{OTHER}-S1", 1)),
            gw.publish(status_topic("waste", OTHER), b'{"schema":"gumei.status.v1","site":"WS-3902","state":"offline"}', retain=True),
            gw.publish("gumei/v1/health/HH-01/measurements", b"{}"),
            gw.publish("$SYS/broker/x", b"x"),
        ]
        assert all(rc.value == 0x87 for rc in refused), [str(rc) for rc in refused]  # Not authorized
        assert gw.publish(waste_readings(ME), batch(ME, f"{ME}-S1", 1)).value == 0
    wait_until(lambda: stored(influx, ME) == 1, 20, what="own reading stored")
    assert stored(influx, OTHER) == 0
    assert count(influx, f"SELECT count(online) FROM {m.GATEWAY_STATUS.name} WHERE site = '{OTHER}'") == 0


def test_gateway_cannot_read_anything(stack):  # type: ignore[no-untyped-def]
    """Mosquitto 2.0's acl_file grants the SUBACK and filters at delivery: nothing ever arrives."""
    online = b'{"schema":"gumei.status.v1","site":"WS-3902","state":"online"}'
    with probe(stack.endpoint(OTHER), "sec-sub-o") as other:
        assert other.publish(status_topic("waste", OTHER), online, retain=True).value == 0
        with probe(stack.endpoint(ME), "sec-sub") as gw, probe(stack.endpoint("ingest"), "sec-sub-witness") as witness:
            topics = ("#", "gumei/v1/#", f"gumei/v1/waste/{ME}/#", "$share/ingest/gumei/v1/#", "$SYS/#")
            for topic in topics:
                gw.subscribe(topic)
            assert not witness.subscribe(status_topic("waste", OTHER)).is_failure
            assert other.publish(status_topic("waste", OTHER), online).value == 0
            assert gw.publish(waste_readings(ME), batch(ME, f"{ME}-S2", 7)).value == 0
            # The witness (read-only ingest identity) gets the retained and the live message; the gateway nothing.
            wait_until(lambda: len(witness.received) >= 2, 10, what="witness got retained + live status")
            assert gw.received == []


def test_ingest_identity_cannot_publish(stack):  # type: ignore[no-untyped-def]
    with probe(stack.endpoint("ingest"), "sec-ingest") as ing:
        assert ing.publish(waste_readings(ME), batch(ME, f"{ME}-S1", 99)).value == 0x87


def test_wrong_password_and_unknown_user_are_refused(stack):  # type: ignore[no-untyped-def]
    ep = stack.endpoint(ME)
    for bad in (ep.model_copy(update={"password": "guess"}), ep.model_copy(update={"username": "WS-9999"}),
                ep.model_copy(update={"username": None, "password": None})):
        rc = connack(bad, "sec-bad")
        assert rc is not None and rc.is_failure, rc
    assert not connack(ep, "sec-good").is_failure  # type: ignore[union-attr]


def test_plain_tcp_and_untrusted_tls_to_the_tls_listener_are_refused(stack, tmp_path):  # type: ignore[no-untyped-def]
    ep = stack.endpoint(ME)
    assert ep.ca_file is not None and ep.port == stack.mosquitto.tls_port
    assert connack(ep.model_copy(update={"ca_file": None}), "sec-plain") is None
    from gumei.tls import make_ca

    wrong_ca, _ = make_ca(tmp_path / "other-ca")
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_handshake(ep.port, wrong_ca)  # a broker impostor would fail the same way for the gateways
    tls_handshake(ep.port, ep.ca_file)


def tls_handshake(port: int, ca_file: Path) -> None:
    """Complete a TLS handshake with 127.0.0.1:port, verifying against ca_file (raises on failure)."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
        pass


def test_device_of_another_site_is_quarantined(stack, ingest_worker, influx):  # type: ignore[no-untyped-def]
    with probe(stack.endpoint(ME), "sec-q") as gw:
        mixed = WasteBatch(site=ME, readings=[
            WasteReading(device=f"{OTHER}-S1", seq=5, ts=TS + 1, category="dry", net_kg=2.0),  # another site's scale
            WasteReading(device=f"{ME}-S9", seq=5, ts=TS + 2, category="dry", net_kg=2.0),  # not registered
            WasteReading(device=f"{ME}-S3", seq=5, ts=TS + 3, category="recyclable", net_kg=2.0),  # fine
        ])
        assert gw.publish(waste_readings(ME), encode(mixed)).value == 0
    q = f"SELECT * FROM {m.QUARANTINE.name} WHERE site = '{ME}'"

    def codes() -> dict[str, str]:
        return {dev: r["code"] for r in rows_of(influx, q) for dev in (f"{OTHER}-S1", f"{ME}-S9") if dev in r["payload"]}

    got = wait_until(lambda: codes() if len(codes()) == 2 else None, 20, what="two quarantined entries")
    assert got == {f"{OTHER}-S1": "device_not_of_site", f"{ME}-S9": "unknown_device"}
    assert count(influx, f"SELECT count(net_kg) FROM {m.WASTE_READING.name} WHERE device = '{OTHER}-S1' AND time >= {TS}ms AND time < {TS + 1000}ms") == 0
    wait_until(lambda: count(influx, f"SELECT count(net_kg) FROM {m.WASTE_READING.name} WHERE device = '{ME}-S3'") >= 1, 20)


def test_rotating_one_gateway_password_leaves_the_others(stack):  # type: ignore[no-untyped-def]
    site, neighbour = "WS-3903", "WS-3904"
    passwd = stack.root / "mosquitto" / "passwd"
    before = {ln.split(":")[0]: ln for ln in passwd.read_text().splitlines()}
    old = stack.endpoint(site)
    stack.rotate_password(site)
    after = {ln.split(":")[0]: ln for ln in passwd.read_text().splitlines()}
    assert {u for u in before if before[u] != after[u]} == {site}
    # SIGHUP reload is asynchronous: wait until the old password stops working.
    wait_until(lambda: (rc := connack(old, "rot-old")) is not None and rc.is_failure, 10, what="old password refused")
    assert not connack(stack.endpoint(site), "rot-new").is_failure  # type: ignore[union-attr]
    assert not connack(stack.endpoint(neighbour), "rot-neighbour").is_failure  # type: ignore[union-attr]


def test_generated_broker_config_runs_with_tls_client_certs_and_acl(tmp_path: Path):  # type: ignore[no-untyped-def]
    reg = {
        "areas": [{"id": "A01", "name": "area"}],
        "sites": [
            {"id": "WS-0001", "kind": "waste", "area": "A01", "name": "one", "lat": 31.15, "lon": 121.4,
             "devices": [{"id": "WS-0001-S1", "category": "dry"}]},
            {"id": "WS-0002", "kind": "waste", "area": "A01", "name": "two", "lat": 31.15, "lon": 121.4, "retired": True},
        ],
    }
    reg_path = tmp_path / "sites.yaml"
    reg_path.write_text(yaml.safe_dump(reg))
    out, port = tmp_path / "broker", free_port()
    gumei("broker", "gen", "--out", str(out), "--registry", str(reg_path), "--port", str(port), "--bind", "127.0.0.1", "--client-certs")
    assert (out / "passwd").stat().st_mode & 0o077 == 0 and (out / "secrets" / "mqtt.json").stat().st_mode & 0o077 == 0
    assert "WS-0002" not in (out / "passwd").read_text()  # retired: no credential
    import json

    pw = json.loads((out / "secrets" / "mqtt.json").read_text())
    conf = (out / "mosquitto.conf").read_text() + (f"log_dest file {tmp_path / 'm.log'}\n")
    if os.geteuid() == 0:
        conf = "user root\n" + conf
    (tmp_path / "run.conf").write_text(conf.replace("persistence true", "persistence false"))
    proc = subprocess.Popen([find_binary("mosquitto"), "-c", str(tmp_path / "run.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, 10, tmp_path / "m.log")
        tls = out / "tls"
        ep = MqttEndpoint(port=port, username="WS-0001", password=pw["WS-0001"], ca_file=tls / "ca.crt",
                          cert_file=tls / "clients" / "WS-0001.crt", key_file=tls / "clients" / "WS-0001.key")
        assert not connack(ep, "gen-ok").is_failure  # type: ignore[union-attr]
        assert connack(ep.model_copy(update={"cert_file": None, "key_file": None}), "gen-nocert") is None
        with probe(ep, "gen-acl") as gw:
            assert gw.publish("gumei/v1/waste/WS-0002/readings", b"{}").value == 0x87
            assert not gw.publish("gumei/v1/waste/WS-0001/readings", b"{}").is_failure  # 0x10: no subscribers
        gumei("broker", "rotate", "WS-0001", "--out", str(out), "--reload-pid", str(proc.pid))
        wait_until(lambda: (rc := connack(ep, "gen-old")) is not None and rc.is_failure, 10, what="old password refused")
        new = json.loads((out / "secrets" / "mqtt.json").read_text())
        assert new["ingest"] == pw["ingest"] and new["WS-0001"] != pw["WS-0001"]
        assert not connack(ep.model_copy(update={"password": new["WS-0001"]}), "gen-new").is_failure  # type: ignore[union-attr]
    finally:
        stop_process(proc)


@pytest.mark.parametrize("keepalive", [2])
def test_endpoint_allows_short_keepalive(keepalive: int) -> None:
    assert MqttEndpoint(keepalive_s=keepalive).keepalive_s == keepalive
