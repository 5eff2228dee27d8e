"""Issue 12: a gateway holding valid credentials for its own site, whatever it does, cannot stop or
stall ingestion, make another site's data disappear, forge another site's numbers, or put personal
data into the cloud.

Real processes only: a private Mosquitto and influxd and ONE spawned `gumei ingest` worker. In every
test the honest gateway H publishes a known ledger of readings (distinct (device, seq), grams known)
WHILE the attacker X (its own valid credentials, its own topics) attacks; then every honest reading
must be in InfluxDB (count and grams exact), nothing may be stored in H's name that H did not send,
the worker process must be alive, and one more honest message must still be stored.

Each test's docstring is its threat-model row: what the attacker tries, what stops it.

A worker that a test breaks (process gone, a thread dead, nothing stored any more) is replaced after
that test (its session discarded with the poison in flight), so one failure does not fail the rest;
the failing test says what broke.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from cloud import measurements as m
from cloud import registry as registry_mod
from cloud.days import DAY_MS, day_number, day_start_ms
from contract.models import STATUS_SCHEMA, WASTE_SCHEMA, now_ms
from contract.topics import status as status_topic
from contract.topics import waste_readings
from tests.support.common import count, rows_of
from tests.support.hostile import Hostile, Reading, everything_in_the_database, files_under

WORKER = (
    "ingest-1"  # the worker's MQTT client id (bound to the ingest user once the broker binds ids)
)
H, X, V = "WS-3701", "WS-3702", "WS-3703"  # area A37 of the default registry; no other test uses it
R_X, S_X = waste_readings(X), status_topic("waste", X)
M_X = f"gumei/v1/health/{X}/measurements"  # a waste gateway's health topic: the ACL refuses it
TODAY = day_number(now_ms())
HONEST_START_MS = day_start_ms(TODAY - 6)  # H's readings: 6 Shanghai days ago, ts = start + seq s
ATTACKER_START_MS = day_start_ms(
    TODAY - 5
)  # X's readings: 5 days ago (well inside a 90-day horizon)
NOT_AUTHORIZED = 0x87


@pytest.fixture(scope="module")
def hostile(
    tmp_path_factory: pytest.TempPathFactory, registry: registry_mod.Registry
) -> Iterator[Hostile]:
    h = Hostile(
        tmp_path_factory.mktemp("hostile"),
        registry,
        WORKER,
        H,
        X,
        HONEST_START_MS,
        ATTACKER_START_MS,
    )
    yield h
    h.close()


@pytest.fixture(autouse=True)
def healthy_worker(hostile: Hostile) -> Iterator[None]:
    """Mark the test's start; afterwards make sure the worker still ingests, else replace it."""
    hostile.mark()
    yield
    failure = hostile.worker_failure()
    if failure is None:
        probe = hostile.honest.make(1)
        try:
            assert not hostile.h.send(waste_readings(H), hostile.honest.payload(probe)).is_failure
            hostile.honest.acknowledged(probe)
            hostile.wait_stored(lambda: len(hostile.stored_of(probe)) == 1, 20, "probe stored")
        except AssertionError as exc:
            failure = str(exc)
    if failure is not None:
        hostile.recover(failure)


def x_json(readings: list[Reading], **extra: object) -> bytes:
    return json.dumps(
        {"schema": WASTE_SCHEMA, "site": X, "readings": [r.as_json() for r in readings], **extra}
    ).encode()


def x_raw(entries: str, envelope_extra: str = "") -> bytes:
    return f'{{"schema":"{WASTE_SCHEMA}","site":"{X}","readings":[{entries}]{envelope_extra}}}'.encode()


def status_raw(body: str) -> bytes:
    return f'{{"schema":"{STATUS_SCHEMA}","site":"{X}","state":"online"{body}}}'.encode()


def entry_raw(r: Reading, **override: str) -> str:
    """One reading as JSON text, with some values replaced by raw JSON text."""
    d = {k: json.dumps(v) for k, v in r.as_json().items()}
    d.update(override)
    return "{" + ",".join(f'"{k}":{v}' for k, v in d.items()) + "}"


def padded(size: int, base: bytes, key: str = "pad") -> bytes:
    """A JSON object payload of exactly `size` bytes: base (an object) with one long string field."""
    head = base[:-1] + f',"{key}":"'.encode()
    return head + b"x" * (size - len(head) - 2) + b'"}'


@dataclass
class Shape:
    """What one payload-shape attack sends: (topic, payload, must be quarantined) and X's readings inside."""

    messages: list[tuple[str, bytes, bool]]
    x_readings: list[Reading] = field(default_factory=list)
    x_stored: bool | None = (
        False  # X's readings inside: must not be stored (False), must be (True), either (None)
    )


def shape(name: str, hostile: Hostile) -> Shape:
    xl, hl = hostile.attacker_ledger, hostile.honest
    if name == "nested_closed_in_entry":
        deep = "[" * 3000 + "]" * 3000
        return Shape([(R_X, x_raw(deep), True), (S_X, status_raw(f',"devices":[{deep}]'), True)])
    if name.startswith("nested"):
        kind, size = name.split("_")[1:]
        n = 5 * 1024 if size == "5k" else 100 * 1024
        body = b"[" * n if kind == "list" else b'{"a":' * (n // 5)
        return Shape([(R_X, body, True), (S_X, body, True)])
    if name == "huge_float_1e400":
        rs = xl.make(2)
        return Shape(
            [
                (R_X, x_raw(entry_raw(rs[0], net_kg="1e400")), True),
                (R_X, x_raw(entry_raw(rs[1], seq="1e400")), True),
                (S_X, status_raw(',"buffered":1e400'), True),
            ],
            rs,
        )
    if name == "huge_ints_400_digits":
        rs, big = xl.make(3), "9" * 400
        entries = ",".join(
            [entry_raw(rs[0], seq=big), entry_raw(rs[1], ts=big), entry_raw(rs[2], net_kg=big)]
        )
        return Shape(
            [
                (R_X, x_raw(entries), True),
                (S_X, status_raw(f',"buffered":{big}'), True),
                (S_X, status_raw(f',"ts":{big}'), True),
            ],
            rs,
        )
    if name == "duplicate_keys":
        forged = hl.make(
            4
        )  # H's devices and seqs, never acknowledged by H: stored would be forgery
        h_entries = ",".join(entry_raw(r) for r in forged[:2])
        rs = xl.make(2)
        return Shape(
            [
                (
                    R_X,
                    f'{{"schema":"{WASTE_SCHEMA}","site":"{H}","readings":[{h_entries}],"site":"{X}"}}'.encode(),
                    True,
                ),
                (
                    R_X,
                    f'{{"schema":"{WASTE_SCHEMA}","site":"{X}","readings":[{entry_raw(rs[0])}],"site":"{H}"}}'.encode(),
                    True,
                ),
                (
                    R_X,
                    x_raw(entry_raw(forged[2])[:-1] + f',"device":"{rs[1].device}"' + "}"),
                    False,
                ),  # last wins: X's own
                (
                    R_X,
                    x_raw(entry_raw(rs[1])[:-1] + f',"device":"{forged[3].device}"' + "}"),
                    True,
                ),  # last wins: H's device
                (S_X, status_raw(f',"site":"{H}"'), True),
            ],
            rs[:1],
            False,
        )
    if name == "nan_infinity_literals":
        rs = xl.make(4)
        entries = ",".join(
            [
                entry_raw(rs[0], net_kg="NaN"),
                entry_raw(rs[1], net_kg="Infinity"),
                entry_raw(rs[2], net_kg="-Infinity"),
                entry_raw(rs[3], gross_kg="NaN"),
            ]
        )
        return Shape(
            [
                (R_X, x_raw(entries), True),
                (S_X, status_raw(',"buffered":NaN'), True),
                (
                    S_X,
                    status_raw(f',"devices":[{{"device":"{X}-S1","ok":true,"fill_pct":Infinity}}]'),
                    True,
                ),
            ],
            rs,
        )
    if name == "utf16":
        rs = xl.make(3)
        return Shape(
            [
                (R_X, x_json(rs).decode().encode("utf-16"), True),
                (S_X, status_raw("").decode().encode("utf-16"), True),
            ],
            rs,
        )
    if (
        name == "utf8_bom"
    ):  # RFC 8259 lets a parser ignore a BOM: accepted or quarantined, never harmful
        rs = xl.make(3)
        return Shape(
            [
                (R_X, b"\xef\xbb\xbf" + x_json(rs), False),
                (S_X, b"\xef\xbb\xbf" + status_raw(""), False),
            ],
            rs,
            None,
        )
    if name == "invalid_utf8":
        rs = xl.make(3)
        body = x_json(rs).replace(rs[0].device.encode(), rs[0].device.encode() + b"\xff\xfe", 1)
        return Shape(
            [
                (R_X, body, True),
                (S_X, status_raw(',"agent_version":"0.3@"').replace(b"@", b"\xc3\x28"), True),
            ],
            rs,
        )
    if name == "empty_payload":
        return Shape([(R_X, b"", True), (S_X, b"", True)])
    if name == "top_level_not_an_object":
        msgs = [
            (t, p, True)
            for t in (R_X, S_X)
            for p in (b'"gumei"', b"[1,2,3]", b"null", b"42", b"true")
        ]
        return Shape(msgs)
    if name == "over_256_KiB":
        rs = xl.make(1)
        return Shape(
            [
                (R_X, padded(270_000, x_json(rs)), True),
                (S_X, padded(270_000, status_raw(""), "agent_version"), True),
            ],
            rs,
        )
    if name == "just_under_max_packet_size":
        rs = xl.make(1)
        return Shape(
            [
                (R_X, padded(299_800, x_json(rs)), True),
                (S_X, padded(299_800, status_raw(""), "agent_version"), True),
            ],
            rs,
        )
    if name == "ten_thousand_entries":
        empties = ",".join(["{}"] * 10_000)
        rs = xl.make(1001)  # 1001 well-formed readings: over the contract's 1000 per batch
        return Shape(
            [
                (R_X, x_raw(empties), True),
                (S_X, status_raw(f',"devices":[{empties}]'), True),
                (R_X, x_json(rs), True),
            ],
            rs,
        )
    raise AssertionError(name)


SHAPES = [
    "nested_list_5k",
    "nested_list_100k",
    "nested_obj_5k",
    "nested_obj_100k",
    "nested_closed_in_entry",
    "huge_float_1e400",
    "huge_ints_400_digits",
    "duplicate_keys",
    "nan_infinity_literals",
    "utf16",
    "utf8_bom",
    "invalid_utf8",
    "empty_payload",
    "top_level_not_an_object",
    "over_256_KiB",
    "just_under_max_packet_size",
    "ten_thousand_entries",
]


@pytest.mark.parametrize("name", SHAPES)
def test_payload_shapes_on_own_topics(hostile: Hostile, name: str) -> None:
    """X sends malformed payloads (deep nesting, huge numbers, duplicate keys, NaN, wrong encodings,
    empty, non-objects, oversized, 10,000 entries) on its readings and status topics. Stopped by the
    planner's per-message boundary: each invalid payload/entry becomes a dead letter (catch-all
    `internal_error` for anything unforeseen), never a dead thread; H's readings all stored."""
    sh = shape(name, hostile)
    with hostile.under_attack() as (x, _):
        for topic, payload, _q in sh.messages:
            assert not x.send(topic, payload).is_failure
    if (
        sh.x_stored is not None
    ):  # X's message was handled before H's final one (same broker, acked first)
        stored = len(hostile.stored_of(sh.x_readings))
        assert stored == (len(sh.x_readings) if sh.x_stored else 0), (
            f"{stored} of X's readings in the attack stored"
        )
    must = sum(1 for *_, q in sh.messages if q)
    hostile.wait_stored(lambda: hostile.dead_entries(X) >= must, 10, f"{must} dead letters for {X}")


def test_packet_over_broker_max_packet_size(hostile: Hostile) -> None:
    """X sends a 310,000-byte PUBLISH (over max_packet_size 300000). Stopped by the broker: it drops
    the packet and the connection; nothing reaches the worker; H unaffected."""
    rs = hostile.attacker_ledger.make(1)
    with hostile.under_attack() as (x, _):
        x.send_nowait(R_X, padded(310_000, x_json(rs)), qos=0)
        x.disconnected.wait(10)
    assert x.disconnects > 0, "the broker kept a client that sent an oversized packet"
    assert hostile.stored_of(rs) == []


@pytest.mark.parametrize("retain", [False, True], ids=["live", "retained"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_qos_and_retain_on_own_topics(hostile: Hostile, qos: int, retain: bool) -> None:
    """X publishes valid readings and status at QoS 0/1/2, retained or not. The worker's QoS 1
    shared subscription downgrades; each reading is stored exactly once ((device, seq) identity)
    and H's readings all stored; a retained readings message is cleared afterwards."""
    xl = hostile.attacker_ledger
    batches = [xl.make(10) for _ in range(3)]
    with hostile.under_attack() as (x, _):
        for b in batches:
            assert not x.send(R_X, xl.payload(b), qos=qos, retain=retain).is_failure
        online = status_raw(
            f',"ts":{now_ms()},"buffered":0,"devices":[{{"device":"{X}-S1","ok":true,"fill_pct":10.5}}]'
        )
        assert not x.send(S_X, online, qos=qos, retain=retain).is_failure
        if retain:
            assert not x.send(
                R_X, b"", qos=1, retain=True
            ).is_failure  # clear the retained readings
    mine = [r for b in batches for r in b]
    hostile.wait_stored(
        lambda: len(hostile.stored_of(mine)) >= len(mine), 20, "X's readings stored"
    )
    rows = hostile.stored_of(mine)
    assert len(rows) == len(mine)
    assert sum(round(float(r["net_kg"]) * 1000) for r in rows) == sum(r.grams for r in mine)
    assert (
        count(
            hostile.influx,
            f"SELECT count(online) FROM {m.GATEWAY_STATUS.name} WHERE site = '{X}' AND time >= {hostile.t0_ns}",
        )
        >= 1
    )


@pytest.mark.parametrize("qos", [0, 1])
def test_flood_of_junk_messages(hostile: Hostile, qos: int) -> None:
    """X floods 5,000 small junk messages as fast as it can. Stopped by flow control (Receive
    Maximum, batching): junk is dead-lettered in bulk, H's readings interleaved with it are all
    stored within the timeout; the worker keeps acknowledging."""
    t0 = time.monotonic()
    with hostile.under_attack(min_messages=10) as (x, _):
        infos = [x.send_nowait(R_X, b"junk %05d" % i, qos=qos) for i in range(5000)]
        x.wait_all(infos, 120)
        sent = time.monotonic() - t0
    print(
        f"flood qos {qos}: 5000 sent in {sent:.1f}s, honest stored {time.monotonic() - t0:.1f}s after start"
    )


def test_topics_of_others_refused(hostile: Hostile) -> None:
    """X publishes on H's readings and status topics and on its own health topic (X is a waste
    site). Stopped by the broker's ACL (PUBACK 0x87); nothing in H's name stored."""
    forged = hostile.honest.make(3)  # H's devices and seqs, never acknowledged by H
    with hostile.under_attack() as (x, _):
        for topic, payload, retain in [
            (waste_readings(H), hostile.honest.payload(forged), False),
            (
                status_topic("waste", H),
                json.dumps({"schema": STATUS_SCHEMA, "site": H, "state": "offline"}).encode(),
                True,
            ),
            (
                M_X,
                b'{"schema":"gumei.health.measurements.v1","site":"WS-3702","measurements":[]}',
                False,
            ),
        ]:
            assert x.send(topic, payload, retain=retain).value == NOT_AUTHORIZED, topic
    assert (
        count(
            hostile.influx, f"SELECT count(online) FROM {m.GATEWAY_STATUS.name} WHERE site = '{H}'"
        )
        == 0
    )


def test_forged_devices_of_another_site(hostile: Hostile) -> None:
    """X sends, on its own topic, readings of H's and V's scales, including copies of H's readings
    just published (same (device, seq, ts), 1 g) to overwrite them. Stopped by the planner's
    device-belongs-to-site check (dead letter device_not_of_site); H's grams unchanged."""
    xl = hostile.attacker_ledger
    with hostile.under_attack(min_messages=10) as (x, traffic):
        time.sleep(0.3)
        copies = [{**r.as_json(), "net_kg": 0.001} for r in traffic.readings[:20]]
        other = [
            {
                "device": f"{V}-S1",
                "seq": 7,
                "ts": ATTACKER_START_MS + 7,
                "category": "dry",
                "net_kg": 9.999,
            }
        ]
        for entries in (copies, other, copies + [r.as_json() for r in xl.make(2)]):
            assert not x.send(
                R_X, json.dumps({"schema": WASTE_SCHEMA, "site": X, "readings": entries}).encode()
            ).is_failure
    codes = {r["code"] for r in hostile.dead_letters(X)}
    assert "device_not_of_site" in codes, codes
    assert (
        count(
            hostile.influx,
            f"SELECT count(net_kg) FROM {m.WASTE_READING.name} WHERE device =~ /^{V}-/",
        )
        == 0
    )


def test_category_not_the_scales(hostile: Hostile) -> None:
    """X reports its dry-waste scale's deposits as `recyclable` to inflate the recycling target.
    Stopped by the planner's registry check: dead letter `category_mismatch`, not stored."""
    xl = hostile.attacker_ledger
    rs = xl.make(8)
    dev, cat = next((d, c) for d, c in xl.devices if c == "dry")
    lies = [Reading(dev, r.seq, r.ts, "recyclable", r.grams) for r in rs]
    with hostile.under_attack() as (x, _):
        assert not x.send(R_X, xl.payload(lies)).is_failure
    assert hostile.stored_of(lies) == [], f"{dev} is registered {cat}; stored as recyclable"
    hostile.wait_stored(
        lambda: hostile.dead_entries(X) >= len(lies), 10, "dead letters for the lies"
    )
    assert {r["code"] for r in hostile.dead_letters(X)} == {"category_mismatch"}


def test_ts_older_than_90_days(hostile: Hostile) -> None:
    """X sends readings dated 120 days ago (rewriting closed months). Stopped by the planner's
    horizon: dead letter `too_old`, not stored."""
    xl = hostile.attacker_ledger
    old = [Reading(r.device, r.seq, r.ts - 115 * DAY_MS, r.category, r.grams) for r in xl.make(5)]
    with hostile.under_attack() as (x, _):
        assert not x.send(R_X, xl.payload(old)).is_failure
    assert hostile.stored_of(old) == [], "readings 120 days old stored"
    hostile.wait_stored(
        lambda: hostile.dead_entries(X) >= len(old), 10, "dead letters for old readings"
    )
    assert {r["code"] for r in hostile.dead_letters(X)} == {"too_old"}


def test_thousand_days_in_one_message(hostile: Hostile) -> None:
    """X sends 1000 readings, each on a different Shanghai day (1 to 1003 days back), to make the
    aggregator recompute 1000 days. Stopped by the 90-day horizon: only the 88 within it are stored
    (the rest `too_old`), and at most ~90 dirty-day markers are written."""
    xl = hostile.attacker_ledger
    backs = [k for k in range(1, 1004) if k not in (89, 90, 91)]
    now = now_ms()
    rs = [
        Reading(r.device, r.seq, now - k * DAY_MS - 3_600_000, r.category, r.grams)
        for k, r in zip(backs, xl.make(1000), strict=True)
    ]
    with hostile.under_attack() as (x, _):
        assert not x.send(R_X, xl.payload(rs)).is_failure
    keys = {(r.device, r.seq) for r in rs}
    rows = rows_of(
        hostile.influx,
        f"SELECT net_kg, seq, device FROM {m.WASTE_READING.name} WHERE site = '{X}' AND time >= {(now - 1010 * DAY_MS) * 1_000_000}",
    )
    n_stored = sum(1 for r in rows if (r["device"], int(r["seq"])) in keys)
    markers = {
        v[1]
        for s in hostile.influx.query(
            f"SELECT \"day\" FROM {m.DIRTY_SITE_DAY.name} WHERE time >= {hostile.t0_ns} AND site = '{X}'"
        )
        for v in s.values
    }
    print(f"1000-day message: {n_stored} readings stored, {len(markers)} dirty-day markers written")
    assert n_stored == 88 and len(markers) <= 92, (
        f"{n_stored} of 1000 stored (88 expected), {len(markers)} dirty days marked"
    )


CARDS = {
    "resident": "6222021234567890",
    "extra field, valid reading": "6222021234567891",
    "non-JSON payload": "6222021234567892",
    "JSON key, valid reading": "6222021234567893",
    "extra field, invalid reading": "6222021234567895",
    "JSON key, invalid reading": "6222021234567896",
    "status extra field": "6222021234567898",
    "start of an over-256-KiB payload": "6222021234567899",
    "resident of a 1001-reading batch": "6222021234567880",
}
CARDS_IN_IDS = {"topic level": "6222021234567894", "status device id": "6222021234567897"}


def leaks(hostile: Hostile, cards: dict[str, str]) -> list[str]:
    """Where any of these card numbers appears: a database row or a log file of the stack."""
    by_number = {v: k for k, v in cards.items()}
    found: list[str] = []
    for meas, text in everything_in_the_database(hostile.influx):
        for num in (n for n in by_number if n in text):
            found.append(
                f"{by_number[num]} -> influx {meas}: ...{text[max(0, text.index(num) - 80) : text.index(num) + 20]}"
            )
    root = hostile.stack.root
    for path in files_under(
        root / "logs",
        *(root / "mosquitto").glob("*.log"),
        *(root / "mosquitto").glob("*.stderr"),
        *(root / "influxd").glob("*.log"),
    ):
        text = path.read_text(errors="replace")
        for num in (n for n in by_number if n in text):
            found.append(f"{by_number[num]} -> {path.relative_to(root)}")
    return sorted(set(found))


def test_card_numbers_never_reach_the_cloud(hostile: Hostile) -> None:
    """X puts raw card numbers in `resident`, in extra fields, as a JSON key, in non-JSON and
    oversized payloads and in a status. Stopped by dead-letter redaction: `resident` values that
    are not pseudonyms and fields the contract does not define are redacted, digit runs in
    non-JSON excerpts masked; v1 readers store no unknown field. No card in InfluxDB or any log."""
    xl = hostile.attacker_ledger
    rs = xl.make(7)
    c = CARDS
    entries = [
        entry_raw(rs[0], resident=json.dumps(c["resident"])),
        entry_raw(rs[1], card=json.dumps(c["extra field, valid reading"])),
        entry_raw(rs[2], card=json.dumps(c["extra field, invalid reading"]), net_kg="-1"),
        entry_raw(rs[3])[:-1] + f',"{c["JSON key, valid reading"]}":1' + "}",
        entry_raw(rs[4], net_kg='"x"')[:-1] + f',"{c["JSON key, invalid reading"]}":1' + "}",
    ]
    big = xl.make(1001)
    big_body = json.loads(x_json(big))
    big_body["readings"][0]["resident"] = c["resident of a 1001-reading batch"]
    with hostile.under_attack() as (x, _):
        for e in entries:
            assert not x.send(R_X, x_raw(e)).is_failure
        assert not x.send(
            R_X, f"card {c['non-JSON payload']} tapped at scale 2".encode()
        ).is_failure
        assert not x.send(
            R_X,
            padded(
                270_000,
                x_raw(entry_raw(rs[5], resident=json.dumps(c["start of an over-256-KiB payload"]))),
            ),
        ).is_failure
        assert not x.send(R_X, json.dumps(big_body).encode()).is_failure
        assert not x.send(S_X, status_raw(f',"card":"{c["status extra field"]}"')).is_failure
    hostile.wait_stored(
        lambda: hostile.dead_entries(X) >= 6, 20, "the dead letters of the card attacks"
    )
    found = leaks(hostile, CARDS)
    assert not found, "card numbers stored or logged:\n" + "\n".join(found)


def test_card_numbers_in_identifiers_never_stored(hostile: Hostile) -> None:
    """X puts a card number in a topic level of its own namespace (`.../WS-3702/<card>`) and as a
    device id in its status. Stopped by: dead letters of a bad topic keep no digit run, a status
    stores only registered devices. No card in InfluxDB or any log."""
    c = CARDS_IN_IDS
    with hostile.under_attack() as (x, _):
        assert not x.send(
            f"gumei/v1/waste/{X}/{c['topic level']}", b'{"card":"masked?"}'
        ).is_failure
        assert not x.send(
            S_X, status_raw(f',"devices":[{{"device":"{X}-{c["status device id"]}","ok":true}}]')
        ).is_failure
    hostile.wait_stored(lambda: len(hostile.dead_letters()) >= 1, 20, "the bad-topic dead letter")
    found = leaks(hostile, CARDS_IN_IDS)
    assert not found, "card numbers stored or logged:\n" + "\n".join(found)


def test_unknown_optional_field_is_accepted(hostile: Hostile) -> None:
    """A newer gateway adds `"firmware": "2.1"` to each reading. Contract v1: readers ignore unknown
    optional fields, so the readings are stored and counted (not quarantined)."""
    xl = hostile.attacker_ledger
    rs = xl.make(20)
    with hostile.under_attack() as (x, _):
        assert not x.send(
            R_X, x_raw(",".join(entry_raw(r, firmware='"2.1"') for r in rs))
        ).is_failure
    hostile.wait_stored(
        lambda: len(hostile.stored_of(rs)) >= len(rs), 10, "readings with an unknown field stored"
    )
    rows = hostile.stored_of(rs)
    assert len(rows) == len(rs) and sum(round(float(r["net_kg"]) * 1000) for r in rows) == sum(
        r.grams for r in rs
    )


def test_unknown_top_level_key_is_accepted(hostile: Hostile) -> None:
    """A newer gateway adds a top-level `"gateway": {...}` to its batch. Accepted: every reading stored."""
    xl = hostile.attacker_ledger
    rs = xl.make(20)
    with hostile.under_attack() as (x, _):
        assert not x.send(
            R_X, xl.payload(rs, gateway={"firmware": "2.1", "uptime_s": 5})
        ).is_failure
    hostile.wait_stored(
        lambda: len(hostile.stored_of(rs)) >= len(rs),
        10,
        "readings of a batch with an unknown key stored",
    )
    rows = hostile.stored_of(rs)
    assert len(rows) == len(rs) and sum(round(float(r["net_kg"]) * 1000) for r in rows) == sum(
        r.grams for r in rs
    )


def device_status_devices(hostile: Hostile, site: str) -> set[str]:
    return {
        v[1]
        for s in hostile.influx.query(
            f"SHOW TAG VALUES FROM {m.DEVICE_STATUS.name} WITH KEY = \"device\" WHERE site = '{site}'"
        )
        for v in s.values
    }


def test_status_with_30_digit_buffered(hostile: Hostile) -> None:
    """X's status says `buffered` = a 30-digit number (InfluxDB's int64 cannot hold it). Stopped by
    the status bounds: dead-lettered (or clamped), never a rejected write that drags H's batch."""
    with hostile.under_attack() as (x, _):
        assert not x.send(S_X, status_raw(',"buffered":' + "9" * 30), retain=True).is_failure
    q = f"SELECT buffered, online FROM {m.GATEWAY_STATUS.name} WHERE site = '{X}' AND time >= {hostile.t0_ns}"
    hostile.wait_stored(
        lambda: bool(rows_of(hostile.influx, q) or hostile.dead_letters(X)),
        10,
        "the status stored or dead-lettered",
    )
    assert all(
        r["buffered"] is None or 0 <= r["buffered"] < 2**63 for r in rows_of(hostile.influx, q)
    )
    rejected = [r for r in hostile.dead_letters(X) if r["code"] == "write_rejected"]
    assert not rejected and "rejected by InfluxDB" not in hostile.log_since_mark(), (
        "the status reached InfluxDB unchecked: its write was rejected and the whole batch (H's readings too) bisected"
    )


def test_status_with_ten_thousand_invented_devices(hostile: Hostile) -> None:
    """X's status lists 10,000 invented devices `WS-3702-zzz…` (20 messages of 500) to blow up
    InfluxDB's series cardinality. Stopped by the status bounds: device_status only for X's
    registered devices."""
    registered = {d for d, _ in hostile.devices(X)}
    with hostile.under_attack() as (x, _):
        for k in range(20):
            devs = ",".join(f'{{"device":"{X}-zzz{k * 500 + i}","ok":true}}' for i in range(500))
            assert not x.send(S_X, status_raw(f',"devices":[{devs}]'), retain=True).is_failure
    hostile.wait_stored(
        lambda: (
            count(
                hostile.influx,
                f"SELECT count(online) FROM {m.GATEWAY_STATUS.name} WHERE site = '{X}' AND time >= {hostile.t0_ns}",
            )
            >= 20
            or hostile.dead_entries(X) >= 20
        ),
        20,
        "the 20 statuses handled",
    )
    got = device_status_devices(hostile, X)
    assert got <= registered, (
        f"{len(got - registered)} device_status series for unregistered devices of {X}"
    )


def test_status_with_unknown_and_foreign_devices(hostile: Hostile) -> None:
    """X's status reports H's and V's scales as failed and unregistered ids of its own. Stopped by
    the status bounds: no device_status in anyone else's name, none for unregistered devices."""
    registered = {d for d, _ in hostile.devices(X)}
    foreign = [f"{H}-S1", f"{H}-S2", f"{V}-S1", f"{X}-S9", f"{X}-S1-extra", f"{X}-"]
    devs = ",".join(f'{{"device":"{d}","ok":false,"fill_pct":199}}' for d in foreign)
    with hostile.under_attack() as (x, _):
        assert not x.send(S_X, status_raw(f',"devices":[{devs}]'), retain=True).is_failure
    hostile.wait_stored(
        lambda: (
            count(
                hostile.influx,
                f"SELECT count(online) FROM {m.GATEWAY_STATUS.name} WHERE site = '{X}' AND time >= {hostile.t0_ns}",
            )
            >= 1
            or bool(hostile.dead_letters(X))
        ),
        20,
        "the status handled",
    )
    assert device_status_devices(hostile, H) == set() and device_status_devices(hostile, V) == set()
    got = device_status_devices(hostile, X)
    assert got <= registered, (
        f"device_status series for unregistered devices: {sorted(got - registered)}"
    )


def test_no_worker_replacement_was_needed(hostile: Hostile) -> None:
    """Last: the one worker survived the whole module (no replacement after a broken test)."""
    assert hostile.recoveries == [], "worker replaced after: " + "; ".join(hostile.recoveries)
