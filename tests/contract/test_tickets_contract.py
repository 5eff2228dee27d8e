"""gumei.weighbridge.tickets.v1: the model's exactness rules, its topic, decoding with quarantine,
and the registry kind and broker ACL of a weighbridge gateway."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from broker.dynsec import gateway_identity
from cloud import registry as r
from cloud.lineproto import ticket_lines
from contract import PayloadRejected, TopicError, WeighbridgeTicket, WeighbridgeTickets, encode
from contract.decode import decode_tickets
from contract.models import MAX_PAYLOAD_BYTES
from contract.topics import Topic, parse, weighbridge_tickets

SITE = "WB-01"
NOW = 1_764_201_600_000
GOOD: dict[str, object] = {
    "device": "WB-01-B1",
    "ticket": 1001,
    "ts": NOW - 60_000,
    "gross_ts": NOW - 900_000,
    "plate": "沪A12345",
    "category": "recyclable",
    "subcategory": "metal",
    "source_area": "A07",
    "destination": "闵行区再生资源集散场",
    "gross_g": 15_230_000,
    "tare_g": 9_870_000,
    "net_g": 5_360_000,
    "tare_source": "weighed",
}


def payload(*entries: dict[str, object], site: str = SITE, **extra: object) -> bytes:
    doc = {"schema": "gumei.weighbridge.tickets.v1", "site": site, "tickets": list(entries)}
    return json.dumps({**doc, **extra}, ensure_ascii=False).encode()


def test_a_ticket_round_trips_exactly() -> None:
    t = WeighbridgeTicket.model_validate(GOOD)
    body = encode(WeighbridgeTickets(site=SITE, tickets=[t]))
    back = decode_tickets(body, parse(weighbridge_tickets(SITE)), now=NOW)
    assert back.valid == [t] and back.rejected == []
    assert (t.gross_g - t.tare_g, t.net_g, t.seq) == (5_360_000, 5_360_000, 1001)


def test_topic_is_additive() -> None:
    assert weighbridge_tickets(SITE) == "gumei/v1/waste/WB-01/tickets"
    assert parse("gumei/v1/waste/WB-01/tickets") == Topic("waste", SITE, "tickets")
    assert parse("gumei/v1/waste/WS-0101/readings") == Topic("waste", "WS-0101", "readings")
    with pytest.raises(TopicError):
        parse("gumei/v1/health/HH-01/tickets")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"net_g": 5_360_001}, "is not gross_g"),
        ({"net_g": 5_360_000.0}, "valid integer"),  # grams are JSON integers, never floats
        ({"gross_g": "15230000"}, "valid integer"),
        ({"tare_g": -1, "net_g": 15_230_001}, "greater than or equal to 0"),
        ({"gross_g": 200_000_001, "net_g": 190_130_001}, "less than or equal to 200000000"),
        ({"tare_g": 15_230_000, "net_g": 0}, "greater than 0"),
        ({"subcategory": None}, "subcategory is required"),
        ({"category": "dry"}, "only for recyclable"),
        ({"subcategory": "wood"}, "subcategory"),
        ({"plate": "ABC123"}, "plate"),
        ({"plate": "沪A1234\n5"}, "plate"),
        ({"destination": "x" * 65}, "destination"),
        ({"source_area": "A07/x"}, "source_area"),
        ({"gross_ts": NOW}, "gross_ts is after ts"),
        ({"tare_source": "guessed"}, "tare_source"),
        ({"ticket": -1}, "ticket"),
    ],
)
def test_invalid_tickets_are_quarantined_alone(change: dict[str, object], message: str) -> None:
    bad = {**GOOD, **change, "ticket": change.get("ticket", 1002)}
    d = decode_tickets(payload(GOOD, bad), parse(weighbridge_tickets(SITE)), now=NOW)
    assert [t.ticket for t in d.valid] == [1001]
    [rej] = d.rejected
    assert rej.index == 1 and rej.code == "invalid_entry" and message in rej.reason, rej.reason


def test_entry_checks_device_of_site_and_future() -> None:
    other = {**GOOD, "device": "WB-02-B1", "ticket": 2}
    future = {**GOOD, "ts": NOW + 301_000, "ticket": 3}
    d = decode_tickets(payload(GOOD, other, future), parse(weighbridge_tickets(SITE)), now=NOW)
    assert len(d.valid) == 1
    assert [x.code for x in d.rejected] == ["device_not_of_site", "future_ts"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (payload(GOOD, site="WB-02"), "site_mismatch"),
        (b"\x00\xff not json", "not_json"),
        (b"[1, 2]", "bad_schema"),
        (payload(GOOD).replace(b"weighbridge.tickets", b"waste.readings"), "bad_schema"),
        (payload(), "bad_schema"),
        (b"x" * (MAX_PAYLOAD_BYTES + 1), "too_large"),
        (b"[" * 100_000, "not_json"),
    ],
)
def test_bad_payloads_are_rejected_whole(body: bytes, code: str) -> None:
    with pytest.raises(PayloadRejected) as err:
        decode_tickets(body, parse(weighbridge_tickets(SITE)), now=NOW)
    assert err.value.code == code


def test_unknown_fields_are_ignored_and_counted() -> None:
    d = decode_tickets(
        payload({**GOOD, "driver_phone": "13800000000"}, firmware="2.1"),
        parse(weighbridge_tickets(SITE)),
        now=NOW,
    )
    assert d.ignored == {"firmware": 1, "tickets[].driver_phone": 1}
    [point] = ticket_lines(SITE, d.valid)  # kept aside in model_extra, never stored
    assert "driver_phone" not in point and "13800000000" not in point


# ---- registry kind and broker ACL --------------------------------------------------------------


def test_weighbridge_registry_kind() -> None:
    reg = r.add_site(r.load(), "WB-01", "A07", "古美转运站地磅", 31.15, 121.40)
    site = reg.site("WB-01")
    assert site is not None and site.kind == "weighbridge" and site.topic_kind == "waste"
    reg = r.add_device(reg, "WB-01-B1", "serial")
    with pytest.raises(r.RegistryError, match="give neither --category nor --type"):
        r.add_device(reg, "WB-01-B2", "serial", category="dry")
    with pytest.raises(ValidationError, match="weighbridges are WB-"):
        r.Registry.model_validate(
            {
                "areas": [{"id": "A01", "name": "x"}],
                "sites": [
                    {"id": "WB-9", "kind": "waste", "area": "A01", "name": "x", "lat": 0, "lon": 0}
                ],
            }
        )


def test_weighbridge_gateway_may_publish_only_its_tickets_and_status() -> None:
    ident = gateway_identity("WB-01", "weighbridge")
    assert [(a.acltype, a.topic) for a in ident.acls] == [
        ("publishClientSend", "gumei/v1/waste/WB-01/tickets"),
        ("publishClientSend", "gumei/v1/waste/WB-01/status"),
    ]
    assert gateway_identity("WB-01").acls == ident.acls  # the id alone says weighbridge
    assert [a.topic for a in gateway_identity("WS-0101", "waste").acls] == [
        "gumei/v1/waste/WS-0101/+"
    ]
