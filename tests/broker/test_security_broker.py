"""The real broker keeps every identity in its own lane: TLS, passwords, bound client ids, ACLs (subscribe
included), rotation, quarantine; and the broker a deployment gets is the one the tests run."""

from __future__ import annotations

import json
import socket
import ssl
from contextlib import ExitStack
from pathlib import Path

import pytest

from broker.dynsec import ADMIN, monitor_name, worker_name
from cloud import measurements as m
from contract import CATEGORIES, WasteBatch, WasteReading, encode
from contract.topics import status as status_topic
from contract.topics import waste_readings
from runtime.mqtt import MqttEndpoint
from tests.support.common import count, rows_of, wait_until
from tests.support.security import accepted, connack, probe

ME, OTHER = "WS-3901", "WS-3902"  # area A39 in the default registry; no other test uses them
MONITOR = monitor_name(3)
SPARE_WORKER = worker_name(4)  # a worker identity no process runs in the session stack
TS = 1709164800000  # 2024-02-29T00:00Z: a day no other test writes


def batch(site: str, device: str, seq: int, kg: float = 1.25) -> bytes:
    return encode(
        WasteBatch(
            site=site,
            readings=[WasteReading(device=device, seq=seq, ts=TS, category="dry", net_kg=kg)],
        )
    )


def stored(influx, site: str) -> int:
    return count(
        influx,
        f"SELECT count(net_kg) FROM {m.WASTE_READING.name} WHERE site = '{site}' AND time >= {TS}ms AND time < {TS + 1000}ms",
    )


def test_gateway_cannot_publish_to_another_site_and_nothing_reaches_the_db(
    stack, ingest_worker, influx
):
    with probe(stack.endpoint(ME), ME) as gw:
        refused = [
            gw.publish(waste_readings(OTHER), batch(OTHER, f"{OTHER}-S1", 1)),
            gw.publish(
                status_topic("waste", OTHER),
                b'{"schema":"gumei.status.v1","site":"WS-3902","state":"offline"}',
                retain=True,
            ),
            gw.publish("gumei/v1/health/HH-01/measurements", b"{}"),
            gw.publish("$SYS/broker/x", b"x"),
        ]
        assert all(rc.value == 0x87 for rc in refused), [
            str(rc) for rc in refused
        ]  # Not authorized
        assert gw.publish(waste_readings(ME), batch(ME, f"{ME}-S1", 1)).value == 0
    wait_until(lambda: stored(influx, ME) == 1, 20, what="own reading stored")
    assert stored(influx, OTHER) == 0
    assert (
        count(influx, f"SELECT count(online) FROM {m.GATEWAY_STATUS.name} WHERE site = '{OTHER}'")
        == 0
    )


def test_gateway_cannot_read_anything(stack):
    """The plugin checks SUBSCRIBE (the acl_file did not): every filter is refused, nothing ever arrives."""
    online = b'{"schema":"gumei.status.v1","site":"WS-3902","state":"online"}'
    with probe(stack.endpoint(OTHER), OTHER) as other:
        assert other.publish(status_topic("waste", OTHER), online, retain=True).value == 0
        with (
            probe(stack.endpoint(ME), ME) as gw,
            probe(stack.endpoint(MONITOR), MONITOR) as witness,
        ):
            topics = (
                "#",
                "gumei/v1/#",
                f"gumei/v1/waste/{ME}/#",
                "$share/ingest/gumei/v1/#",
                "$SYS/#",
                "$CONTROL/#",
            )
            for topic in topics:
                assert gw.subscribe(topic).value == 0x87, topic  # Not authorized
            assert not witness.subscribe(status_topic("waste", OTHER)).is_failure
            assert other.publish(status_topic("waste", OTHER), online).value == 0
            assert gw.publish(waste_readings(ME), batch(ME, f"{ME}-S2", 7)).value == 0
            # The witness (read-only monitor identity) gets the retained and the live message; the gateway nothing.
            wait_until(
                lambda: len(witness.received) >= 2, 10, what="witness got retained + live status"
            )
            assert gw.received == []


def test_ingest_identity_cannot_publish(stack):
    with probe(stack.endpoint(SPARE_WORKER), SPARE_WORKER) as ing:
        assert ing.publish(waste_readings(ME), batch(ME, f"{ME}-S1", 99)).value == 0x87


def test_wrong_password_and_unknown_user_are_refused(stack):
    ep = stack.endpoint(ME)
    for bad in (
        ep.model_copy(update={"password": "guess"}),
        ep.model_copy(update={"username": "WS-9999"}),
        ep.model_copy(update={"username": None, "password": None}),
    ):
        rc = connack(bad, bad.username or "sec-bad")
        assert rc is not None and rc.is_failure, rc
    assert accepted(ep, ME)


def test_plain_tcp_and_untrusted_tls_to_the_tls_listener_are_refused(stack, tmp_path):
    ep = stack.endpoint(ME)
    assert ep.ca_file is not None and ep.port == stack.mosquitto.tls_port
    assert connack(ep.model_copy(update={"ca_file": None}), ME) is None
    from broker.tls import make_ca

    wrong_ca, _ = make_ca(tmp_path / "other-ca")
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_handshake(
            ep.port, wrong_ca
        )  # a broker impostor would fail the same way for the gateways
    tls_handshake(ep.port, ep.ca_file)


def tls_handshake(port: int, ca_file: Path) -> None:
    """Complete a TLS handshake with 127.0.0.1:port, verifying against ca_file (raises on failure)."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1"),
    ):
        pass


def test_device_of_another_site_is_quarantined(stack, ingest_worker, influx):
    with probe(stack.endpoint(ME), ME) as gw:
        mixed = WasteBatch(
            site=ME,
            readings=[
                WasteReading(
                    device=f"{OTHER}-S1", seq=5, ts=TS + 1, category="dry", net_kg=2.0
                ),  # another site's scale
                WasteReading(
                    device=f"{ME}-S9", seq=5, ts=TS + 2, category="dry", net_kg=2.0
                ),  # not registered
                WasteReading(
                    device=f"{ME}-S3", seq=5, ts=TS + 3, category="recyclable", net_kg=2.0
                ),  # fine
            ],
        )
        assert gw.publish(waste_readings(ME), encode(mixed)).value == 0
    q = f"SELECT * FROM {m.QUARANTINE.name} WHERE site = '{ME}'"

    def codes() -> dict[str, str]:
        return {
            dev: r["code"]
            for r in rows_of(influx, q)
            for dev in (f"{OTHER}-S1", f"{ME}-S9")
            if dev in r["payload"]
        }

    got = wait_until(
        lambda: codes() if len(codes()) == 2 else None, 20, what="two quarantined entries"
    )
    assert got == {f"{OTHER}-S1": "device_not_of_site", f"{ME}-S9": "unknown_device"}
    assert (
        count(
            influx,
            f"SELECT count(net_kg) FROM {m.WASTE_READING.name} WHERE device = '{OTHER}-S1' AND time >= {TS}ms AND time < {TS + 1000}ms",
        )
        == 0
    )
    wait_until(
        lambda: (
            count(
                influx, f"SELECT count(net_kg) FROM {m.WASTE_READING.name} WHERE device = '{ME}-S3'"
            )
            >= 1
        ),
        20,
    )


def test_rotating_one_gateway_password_leaves_the_others(stack):
    site, neighbour = "WS-3903", "WS-3904"
    plugin_file = stack.root / "mosquitto" / "dynamic-security.json"
    before = hashes(plugin_file)
    old = stack.endpoint(site)
    stack.rotate_password(site)  # live, as the admin, through $CONTROL/dynamic-security/v1
    # the plugin rehashes and saves its own file: only this user's hash changed
    wait_until(lambda: hashes(plugin_file) != before, 10, what="the plugin to save its file")
    after = hashes(plugin_file)
    assert {u for u in before if before[u] != after[u]} == {site} and before.keys() == after.keys()
    rc = connack(old, site)
    assert rc is not None and rc.is_failure, rc
    assert accepted(stack.endpoint(site), site)
    assert accepted(stack.endpoint(neighbour), neighbour)


def hashes(plugin_file: Path) -> dict[str, tuple[str, str, str | None]]:
    """username -> (salt, hash, bound client id) of a plugin JSON file."""
    doc = json.loads(plugin_file.read_text())
    return {c["username"]: (c["salt"], c["password"], c.get("clientid")) for c in doc["clients"]}


def honest_batches(site: str, n: int, ts: int) -> tuple[list[bytes], int]:
    """n one-reading messages of one site (grams all different), and their total in grams."""
    msgs, grams = [], 0
    for i in range(n):
        g = 1000 + 7 * i + (i % 13)
        grams += g
        # each scale with the category it is registered for (S1 dry, S2 wet, S3 recyclable, S4 hazardous)
        reading = WasteReading(
            device=f"{site}-S{1 + i % 4}",
            seq=10_000 + i,
            ts=ts + i,
            category=CATEGORIES[i % 4],
            net_kg=g / 1000,
        )
        msgs.append(encode(WasteBatch(site=site, readings=[reading])))
    return msgs, grams


def stored_exactly(influx, site: str, ts: int, n: int, grams: int) -> None:
    where = f"site = '{site}' AND time >= {ts}ms AND time < {ts + n}ms"
    q = f"SELECT count(net_kg), sum(net_kg) FROM {m.WASTE_READING.name} WHERE {where}"

    def got() -> tuple[int, int]:
        rows = influx.query(q)
        return (
            (int(rows[0].values[0][1]), round(rows[0].values[0][2] * 1000))
            if rows and rows[0].values
            else (0, 0)
        )

    wait_until(lambda: got()[0] >= n, 30, what=f"{n} readings of {site} stored")
    assert got() == (n, grams)


def test_gateways_cannot_join_the_workers_group_and_no_reading_is_lost(
    stack, ingest_worker, influx
):
    """Issue 12: gateways in $share/ingest/... took a share of every site's readings and the broker dropped it."""
    honest, thieves = "WS-3905", ("WS-3906", "WS-3907", "WS-3908")
    ts = TS + 10_000
    msgs, grams = honest_batches(honest, 300, ts)
    with ExitStack() as held:
        held_probes = [held.enter_context(probe(stack.endpoint(site), site)) for site in thieves]
        for site, gw in zip(thieves, held_probes, strict=True):
            for topic in ("$share/ingest/gumei/v1/#", "gumei/v1/#", "#", "$SYS/#", "$CONTROL/#"):
                assert gw.subscribe(topic).value == 0x87, (site, topic)  # Not authorized
        with probe(stack.endpoint(honest), honest) as gw:
            assert all(gw.publish(waste_readings(honest), msg).value == 0 for msg in msgs)
        stored_exactly(influx, honest, ts, 300, grams)  # every reading, to the gram
        assert all(p.received == [] for p in held_probes)


def test_nobody_takes_over_another_identity_s_session(stack, ingest_worker, influx):
    """A client id is bound to its user: a gateway cannot connect as a worker, a monitor or another gateway."""
    thief, honest = "WS-3906", "WS-3909"
    ready = stack.worker_ready(worker_name(1), ingest_worker)
    assert ready is not None
    subscribed_before = ready.subscriptions
    ep = stack.endpoint(thief)
    for client_id in (worker_name(1), honest, MONITOR, ADMIN, f"{thief}-2", ""):
        rc = connack(ep, client_id)
        assert rc is not None and rc.value == 0x87, (client_id, rc)  # Not authorized
    rc = connack(stack.endpoint(SPARE_WORKER), worker_name(1))  # nor a worker another worker's
    assert rc is not None and rc.value == 0x87, rc
    ts = TS + 20_000
    msgs, grams = honest_batches(honest, 40, ts)
    with probe(stack.endpoint(honest), honest) as gw:
        assert all(gw.publish(waste_readings(honest), msg).value == 0 for msg in msgs)
    stored_exactly(influx, honest, ts, 40, grams)
    # the real worker never lost its connection (a takeover would have made it reconnect and resubscribe)
    ready = stack.worker_ready(worker_name(1), ingest_worker)
    assert ready is not None and ready.subscriptions == subscribed_before
    assert "already connected, closing old connection" not in stack.mosquitto.log.read_text(
        errors="replace"
    )


def test_worker_and_monitor_identities_only_read(stack):
    with probe(stack.endpoint(SPARE_WORKER), SPARE_WORKER) as worker:
        for topic in (
            "gumei/v1/#",
            "#",
            f"gumei/v1/waste/{ME}/readings",
            "$share/other/gumei/v1/#",
            "$SYS/#",
            "$CONTROL/#",
        ):
            assert worker.subscribe(topic).value == 0x87, topic
        assert worker.publish(status_topic("waste", ME), b"{}").value == 0x87
    with probe(stack.endpoint(MONITOR), MONITOR) as monitor:
        assert not monitor.subscribe(f"gumei/v1/waste/{ME}/+").is_failure
        for topic in ("$share/ingest/gumei/v1/#", "#", "$SYS/#", "$CONTROL/dynamic-security/#"):
            assert monitor.subscribe(topic).value == 0x87, topic
        assert monitor.publish(waste_readings(ME), batch(ME, f"{ME}-S1", 98)).value == 0x87


@pytest.mark.parametrize("keepalive", [2])
def test_endpoint_allows_short_keepalive(keepalive: int) -> None:
    assert MqttEndpoint(keepalive_s=keepalive).keepalive_s == keepalive
