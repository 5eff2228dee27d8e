"""Simulated hut -> real loopback sockets -> decoders -> sessions -> contract measurements."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Iterator

import pytest

from cloud.health.flags import flag, screen
from contract import HealthMeasurement, pseudonymize
from edge.ble import Assembler, BleDecodeError, measured_ms
from edge.ble.transport import SocketTransport
from edge.health_session import SessionTracker, decode_card_tap
from firmware_sim.health import HealthHutSim, make_residents, measure
from firmware_sim.health.hut import Visit

KEY = b"sim-district-key"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def hut_now() -> dt.datetime:
    """The instruments' clock reading now (hut wall time, Shanghai); taken per test, never at import."""
    return dt.datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0)


class Gateway:
    """The test's stand-in for the hut's edge loop: one transport and assembler per device."""

    def __init__(self, hut: HealthHutSim) -> None:
        self.transports = {d: SocketTransport(*addr) for d, addr in hut.endpoints().items()}
        for t in self.transports.values():
            t.open()
        assert hut.wait_connected()
        self.streams = {d: t.notifications() for d, t in self.transports.items()}
        self.assemblers = {d: Assembler() for d in self.transports}
        self.tracker = SessionTracker(KEY, timeout_s=600)
        self.seq: Counter[str] = Counter()
        self.rejected: list[tuple[str, str]] = []
        self.card_reader = hut.card_reader

    def receive(self, visit: Visit) -> list[HealthMeasurement]:
        """Read exactly what the visit sent, device by device (card first), and build measurements."""
        out: list[HealthMeasurement] = []
        for sent in visit.sent:
            note = next(self.streams[sent.device])
            assert (note.uuid, note.data) == (sent.uuid, sent.data)
            if sent.device == self.card_reader:
                self.tracker.tap(decode_card_tap(note.data))
                continue
            try:
                readings = self.assemblers[sent.device].feed(note.uuid, note.data)
            except BleDecodeError as exc:
                self.rejected.append((sent.device, exc.reason))
                continue
            for r in readings:
                self.seq[sent.device] += 1
                ts = measured_ms(r, note.received_ms)
                out.append(
                    self.tracker.measurement(sent.device, self.seq[sent.device], ts, *r.contract())
                )
        self.tracker.end()
        return out

    def close(self) -> None:
        for t in self.transports.values():
            t.close()


@pytest.fixture
def hut() -> Iterator[HealthHutSim]:
    with HealthHutSim("HH-01", seed=3) as h:
        yield h


def test_residents_are_diverse() -> None:
    residents = make_residents(300, seed=11)
    ages = [r.age for r in residents]
    assert min(ages) < 30 and max(ages) > 80
    htn_old = sum(r.hypertensive for r in residents if r.age >= 65) / sum(
        r.age >= 65 for r in residents
    )
    htn_young = sum(r.hypertensive for r in residents if r.age < 45) / max(
        1, sum(r.age < 45 for r in residents)
    )
    assert htn_old > htn_young + 0.2
    assert 0.05 < sum(r.diabetic for r in residents) / 300 < 0.3
    rng = random.Random(2)
    truths = [measure(r, rng) for r in residents]
    flags = Counter(
        flag("blood_pressure", {"systolic_mmhg": t.systolic, "diastolic_mmhg": t.diastolic}).text
        for t in truths
    )
    assert flags["normal"] and flags["bp_raised_home"] and flags["bp_severe"]
    diabetic = [
        t for r, t in zip(residents, truths, strict=True) if r.diabetic and t.meal == "fasting"
    ]
    assert diabetic and all(t.glucose_mmol_l >= 7.0 for t in diabetic)


def test_visits_decode_exactly_and_carry_pseudonyms(hut: HealthHutSim) -> None:
    when = hut_now()
    gateway = Gateway(hut)
    try:
        for resident in make_residents(5, seed=4):
            visit = hut.visit(resident, when)
            got = gateway.receive(visit)
            expected = [s.expected for s in visit.sent if s.expected]
            assert [(m.type.value, m.values) for m in got] == [(t, v) for t, v in expected]
            assert {m.resident for m in got} == {pseudonymize(KEY, resident.card)}
            assert all(m.ts == int(when.replace(tzinfo=SHANGHAI).timestamp() * 1000) for m in got)
            assert resident.card not in repr([m.model_dump() for m in got])
        stale = hut.visit(
            make_residents(1, seed=9)[0], when - dt.timedelta(hours=3)
        )  # replayed from memory
        assert {m.resident for m in gateway.receive(stale)} == {None}
        anonymous = gateway.receive(hut.visit(None, when))
        assert len(anonymous) == 5 and all(m.resident is None for m in anonymous)
    finally:
        gateway.close()


def test_malformed_frames_rejected_with_reasons(hut: HealthHutSim) -> None:
    when = hut_now()
    gateway = Gateway(hut)
    try:
        hut.malformed_rate = 1.0  # every instrument misbehaves this time
        seen: Counter[str] = Counter()
        implausible = 0
        for resident in make_residents(12, seed=5):
            visit = hut.visit(resident, when)
            got = gateway.receive(visit)
            for m in got:
                verdict, reason = screen(m.type.value, m.values)
                assert verdict is None and reason is not None and "systolic" in reason
                implausible += 1
            seen.update(s.malformed for s in visit.sent if s.malformed)
        decoded_rejects = Counter(reason for _, reason in gateway.rejected)
        expected = Counter({k: v for k, v in seen.items() if k != "implausible"})
        assert decoded_rejects == expected
        assert implausible == seen["implausible"]
        assert {
            "special_value",
            "sensor_fault",
            "invalid_measurement",
            "measurement_unsuccessful",
        } <= set(seen)
    finally:
        gateway.close()
