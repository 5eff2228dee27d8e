"""Height/weight station (身高体重秤): the serial ASCII frame, its rejections, the simulator, and the
serial line read by the gateway's source into a contract measurement with the session's pseudonym."""

from __future__ import annotations

import os
import pty
import random

import pytest

from contract import pseudonymize
from edge.ble.decode import decode_notification
from edge.ble.errors import BleDecodeError
from edge.ble.height_weight import FRAME_UUID, checksum, decode_height_weight, encode_height_weight
from edge.ble.staff_entry import ENTRY_UUID, decode_staff_entry
from edge.ble.transport import SocketTransport
from edge.config import HutSection
from edge.health_session import SessionTracker
from edge.hut_gateway import SerialCardSource, make_source
from firmware_sim.health import PeripheralServer, make_residents
from firmware_sim.health.height_weight import (
    SerialStation,
    malformed,
    measure_station,
    tape_entry,
)

KEY = b"height-weight-test-district-key!"


def test_sample_frame() -> None:
    frame = b"$HW,ST,H170.5,W065.50,B22.6*68\r\n"  # the example of docs/health.md
    assert checksum(b"HW,ST,H170.5,W065.50,B22.6") == "68"
    r = decode_height_weight(frame)
    assert (r.type, dict(r.values)) == (
        "height_weight",
        {"height_cm": 170.5, "weight_kg": 65.5, "bmi": 22.6},
    )
    assert decode_notification(FRAME_UUID, frame.strip()).values == r.values


def test_round_trip_over_simulated_residents() -> None:
    rng = random.Random(5)
    for person in make_residents(300, seed=5):
        f = measure_station(person, rng)
        assert f.expected is not None
        r = decode_height_weight(f.data)
        assert (r.type, dict(r.values)) == f.expected


def test_malformed_frames_are_rejected_by_reason() -> None:
    rng = random.Random(6)
    seen = set()
    for person in make_residents(200, seed=6):
        f = malformed(person, rng)
        with pytest.raises(BleDecodeError) as exc:
            decode_height_weight(f.data)
        assert exc.value.reason == f.reason, f.data
        seen.add(f.reason)
    assert seen == {"unstable", "too_short", "bad_checksum", "no_subject"}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too_short"),
        (b"$HW,ST,H170.5,W065.5,B22.6*00", "bad_frame"),  # weight needs two decimals
        (b"$HW,ST,H170.5,W065.50,B22.6*68 extra", "bad_frame"),
        (b"$HW,ST,H170.5,W065.50,B22.6*6b", "bad_frame"),  # lower-case hex
        (b"$HW,XX,H170.5,W065.50,B22.6*68", "bad_frame"),
        (b"$HW,ST,H-70.5,W065.50,B22.6*68", "bad_frame"),
        ("$HW,ST,H１70.5,W065.50,B22.6*68".encode(), "bad_frame"),  # full-width digit
        (b"$HW,ST,H170.5,W065.50,B22.6*69", "bad_checksum"),
        (encode_height_weight(170.5, 65.5, 25.0), "bmi_mismatch"),
        (b"\x00" * 600, "bad_frame"),
    ],
)
def test_bad_input_gets_its_reason(data: bytes, reason: str) -> None:
    with pytest.raises(BleDecodeError) as exc:
        decode_height_weight(data)
    assert exc.value.reason == reason


def test_serial_station_through_the_gateway_source_into_a_contract_measurement() -> None:
    person = make_residents(5, seed=9)[2]
    good = measure_station(person, random.Random(1))
    bad = malformed(person, random.Random(2))
    master, slave = pty.openpty()
    hut = HutSection.model_validate(
        {
            "district_key_file": "/nonexistent",
            "card_reader": {"id": "HH-01-CARD", "transport": "socket", "port": 9},
            "instruments": [{"id": "HH-01-HW", "transport": "serial", "port": os.ttyname(slave)}],
        }
    )
    src = make_source(hut.instruments[0], [])
    assert isinstance(src, SerialCardSource)
    src.open()
    try:
        tracker = SessionTracker(KEY, clock=lambda: 1_800_000_000_000)
        tracker.tap("6222021234567890123")
        os.write(master, bad.data + good.data)
        notes = src.notifications()
        first, second = next(notes), next(notes)
        with pytest.raises(BleDecodeError):
            decode_notification(first.uuid, first.data)
        reading = decode_notification(second.uuid, second.data)
        type_, values = reading.contract()
        m = tracker.measurement("HH-01-HW", 1, 1_800_000_000_000, type_, values)
        assert m.type.value == "height_weight" and m.values == good.expected[1]  # type: ignore[index]
        assert m.resident == pseudonymize(KEY, "6222021234567890123")
    finally:
        src.close()
        os.close(master)
        os.close(slave)


def test_simulated_station_prints_on_a_serial_line() -> None:
    master, slave = pty.openpty()
    station = SerialStation(os.ttyname(slave))
    frame = measure_station(make_residents(1, seed=3)[0], random.Random(3))
    try:
        station.send(frame)
        got = b""
        while not got.endswith(b"\n"):
            got += os.read(master, 100)
        assert decode_height_weight(got).values == frame.expected[1]  # type: ignore[index]
    finally:
        station.close()
        os.close(master)
        os.close(slave)


# ---- waist and hip entered by staff ------------------------------------------------------------


def test_staff_entry_round_trip_and_rejections() -> None:
    rng = random.Random(8)
    for person in make_residents(100, seed=8):
        data, (type_, values) = tape_entry(person, rng)
        r = decode_staff_entry(data)
        assert (r.type, dict(r.values)) == (type_, values)
    assert decode_staff_entry(b"WAIST=86.0;SEX=F").values == {"waist_cm": 86.0, "sex": "F"}
    for bad, reason in [
        (b"", "too_short"),
        (b"WAIST=86.0", "bad_entry"),  # no sex: the cut-off cannot be chosen
        (b"WAIST=86.0;SEX=X", "bad_entry"),
        (b"WAIST=86;SEX=F", "bad_entry"),
        (b"SEX=F;WAIST=86.0", "bad_entry"),
        (b"WAIST=86.0;HIP=99.5;SEX=F;NAME=Li", "bad_entry"),  # nothing else, never a name
        (b"WAIST=1e3;SEX=M", "bad_entry"),
    ]:
        with pytest.raises(BleDecodeError) as exc:
            decode_staff_entry(bad)
        assert exc.value.reason == reason, bad


def test_staff_terminal_over_the_socket_transport_is_attributed_to_the_session() -> None:
    person = make_residents(3, seed=4)[1]
    data, (_, values) = tape_entry(person, random.Random(4))
    terminal = PeripheralServer("HH-01-TAPE").start()
    src = SocketTransport(*terminal.address)
    src.open()
    try:
        assert terminal.wait_connected()
        tracker = SessionTracker(KEY, clock=lambda: 1_800_000_000_000)
        tracker.tap("6222021234567890124")
        terminal.notify(ENTRY_UUID, data)
        note = next(src.notifications())
        type_, got = decode_notification(note.uuid, note.data).contract()
        m = tracker.measurement("HH-01-TAPE", 1, 1_800_000_000_000, type_, got)
        assert m.type.value == "body_circumference" and m.values == values
        assert m.resident == pseudonymize(KEY, "6222021234567890124")
    finally:
        src.close()
        terminal.close()
