"""Scale drivers against real devices on this machine: a pty indicator and a pymodbus server."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator

import pytest
from pymodbus.constants import ExcCodes

from bench.scales import BENCH_START_MS, match_deposits
from edge.deposits import DepositDetector, EventKind, ScaleEvent
from edge.errors import ScaleUnavailable
from edge.scales import ScaleSource, WeightSample
from edge.scales.modbus_driver import ModbusScaleSource, decode_registers
from edge.scales.serial_driver import SerialIndicatorSource
from firmware_sim.scales.ascii_indicator import encode_frame, stream_bytes
from firmware_sim.scales.modbus_sim import ModbusTransmitter, registers_for
from firmware_sim.scales.physics import PhysicsParams, Reading, ScaleModel, TrueDeposit
from firmware_sim.scales.serial_sim import PtyIndicator

GOOD = [
    encode_frame(12.34, True),
    encode_frame(-0.5, False, mode="NT"),
    encode_frame(20.0, True, unit="g", decimals=0),
]
BAD = {
    b"ST,GS,+001\r\n": "truncated",
    b"ST,GS,+0012.34lb\r\n": "bad_unit",
    b"\xfe\xff\x00\x13junk\r\n": "not_ascii",
    b"#$%&garbage\r\n": "garbage",
    b"ST,GS,+0012.34kgST,GS,+0012.34kg\r\n": "too_long",
}


def take(it: Iterator[WeightSample], n: int) -> list[WeightSample]:
    return [next(it) for _ in range(n)]


@pytest.fixture
def pty_sim() -> Iterator[PtyIndicator]:
    with PtyIndicator() as sim:
        yield sim


def test_both_drivers_are_scale_sources() -> None:
    assert isinstance(SerialIndicatorSource("loop://"), ScaleSource)
    assert isinstance(ModbusScaleSource("127.0.0.1", 1), ScaleSource)


def test_pty_frames_parsed_and_malformed_skipped_and_counted(pty_sim: PtyIndicator) -> None:
    src = SerialIndicatorSource(pty_sim.port, device="WS-0101-S1", silence_s=2)
    src.open()
    frames = [GOOD[0], *BAD, GOOD[1], GOOD[2]]
    pty_sim.play((i, f) for i, f in enumerate(frames))
    got = take(src.samples(), 3)
    src.close()
    assert [(s.gross_kg, s.stable, s.mode.value, s.device) for s in got] == [
        (12.34, True, "GS", "WS-0101-S1"),
        (-0.5, False, "NT", "WS-0101-S1"),
        (20.0, True, "GS", "WS-0101-S1"),
    ]
    assert dict(src.stats.malformed) == {reason: 1 for reason in BAD.values()}
    assert src.stats.frames == 3 and src.stats.resyncs == 0


def test_partial_first_line_after_open_is_a_resync_not_malformed(pty_sim: PtyIndicator) -> None:
    pty_sim.write(b"ST,GS,+00")  # pyserial's open() flushes this half frame
    src = SerialIndicatorSource(pty_sim.port, silence_s=2)
    src.open()
    pty_sim.write(b"12.34kg\r\n" + GOOD[0])
    assert take(src.samples(), 1)[0].gross_kg == 12.34
    src.close()
    assert src.stats.resyncs == 1 and src.stats.malformed_total == 0


def test_silent_line_raises_scale_unavailable(pty_sim: PtyIndicator) -> None:
    src = SerialIndicatorSource(pty_sim.port, silence_s=0.4, read_timeout_s=0.05)
    src.open()
    pty_sim.write(GOOD[0] + GOOD[0])
    it = src.samples()
    assert next(it).gross_kg == 12.34
    with pytest.raises(ScaleUnavailable, match="no data"):
        take(it, 5)
    src.close()


def test_unplugged_device_raises_and_missing_port_cannot_open(pty_sim: PtyIndicator) -> None:
    src = SerialIndicatorSource(pty_sim.port, silence_s=5, read_timeout_s=0.05)
    src.open()
    pty_sim.write(GOOD[0] * 2)
    it = src.samples()
    next(it)
    pty_sim.unplug()
    with pytest.raises(ScaleUnavailable):
        take(it, 5)
    src.close()
    with pytest.raises(ScaleUnavailable):
        SerialIndicatorSource("/dev/nonexistent-scale").open()


def test_close_from_another_thread_ends_samples(pty_sim: PtyIndicator) -> None:
    src = SerialIndicatorSource(pty_sim.port, silence_s=30, read_timeout_s=0.05)
    src.open()
    timer = threading.Timer(0.3, src.close)
    timer.start()
    assert list(src.samples()) == []
    timer.join()


def test_loop_url_for_unit_use() -> None:
    src = SerialIndicatorSource("loop://", silence_s=1, read_timeout_s=0.05)
    src.open()
    assert src._ser is not None
    src._ser.write(GOOD[0] + BAD_FRAME + GOOD[0])
    assert [s.gross_kg for s in take(src.samples(), 2)] == [12.34, 12.34]
    src.close()
    assert src.stats.malformed["bad_unit"] == 1


BAD_FRAME = b"ST,GS,+0012.34lb\r\n"


def _detect(samples: Iterator[WeightSample], until_ts: int) -> list[ScaleEvent]:
    det, found = DepositDetector(), []
    for s in samples:
        ev = det.feed(s)
        if ev is not None and ev.kind is EventKind.DEPOSIT:
            found.append(ev)
        if s.ts_ms >= until_ts:
            break
    return found


def test_simulated_morning_over_pty_finds_every_deposit(pty_sim: PtyIndicator) -> None:
    params = PhysicsParams(disconnects_per_hour=0, glitch_rate=0.01, rate_scale=2.0)
    model = ScaleModel("wet", 3, BENCH_START_MS, params)
    items = list(model.run(0.5))
    clock = iter(item.ts_ms for item in items)  # stamp samples with simulated time
    src = SerialIndicatorSource(pty_sim.port, silence_s=3, clock=lambda: next(clock))
    src.open()
    frames = list(stream_bytes(items, seed=3))
    pty_sim.play(frames, speed=1200)
    stamped = _stamp_by_frame(src, frames)
    found = _detect(stamped, frames[-1][0])
    src.close()
    truth = inner(model, items)
    assert truth and match_deposits(truth, found).found == len(truth)
    assert src.stats.frames == sum(_parses(raw) for _, raw in frames)  # no good frame lost
    assert src.stats.malformed_total >= model.glitches  # random bytes may hold CR or LF


def inner(model: ScaleModel, items: list) -> list[TrueDeposit]:
    """True deposits with a baseline before them and time to settle before the run ends."""
    first, last = items[0].ts_ms, items[-1].ts_ms
    return [d for d in model.deposits if first + 5_000 <= d.ts_ms <= last - 10_000]


def _stamp_by_frame(
    src: SerialIndicatorSource, frames: list[tuple[int, bytes]]
) -> Iterator[WeightSample]:
    """Re-stamp each good sample with its frame's simulated time (the driver's clock is wall time)."""
    good_ts = iter(ts for ts, raw in frames if _parses(raw))
    for s in src.samples():
        yield WeightSample(next(good_ts), s.gross_kg, s.stable, s.overload, s.mode, s.device)


def _parses(raw: bytes) -> bool:
    from edge.errors import FrameError
    from edge.scales.ascii_frame import parse_frame

    try:
        parse_frame(raw)
    except FrameError:
        return False
    return True


# --- Modbus TCP -------------------------------------------------------------------------


@pytest.fixture
def transmitter() -> Iterator[ModbusTransmitter]:
    with ModbusTransmitter() as tx:
        yield tx


def test_register_decoding_round_trip() -> None:
    for kg, stable in ((0.0, True), (12.345, False), (-3.21, True), (1999.99, True)):
        s = decode_registers(registers_for(kg, stable, False, 7), 5, "d")
        assert (s.gross_kg, s.stable, s.ts_ms) == (kg, stable, 5)
    with pytest.raises(ValueError, match="adc_fault"):
        decode_registers(registers_for(1.0, True, False, 1, fault=True), 0)


def test_modbus_live_registers_and_no_deprecation_warnings() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with ModbusTransmitter() as tx:
            src = ModbusScaleSource("127.0.0.1", tx.port, device="WS-0101-S3", poll_s=0.01)
            src.open()
            it = src.samples()
            tx.set_reading(12.345, True)
            first = next(it)
            tx.set_reading(57.1, False)
            second = next(it)
            src.close()
    assert [w for w in caught if issubclass(w.category, DeprecationWarning)] == []
    assert (first.gross_kg, first.stable, first.device) == (12.345, True, "WS-0101-S3")
    assert (second.gross_kg, second.stable) == (57.1, False)


def test_modbus_repeats_skipped_faults_and_exceptions_counted(
    transmitter: ModbusTransmitter,
) -> None:
    src = ModbusScaleSource("127.0.0.1", transmitter.port, poll_s=0.01, max_failures=3)
    src.open()
    it = src.samples()
    transmitter.set_reading(10.0, True)
    assert next(it).gross_kg == 10.0
    transmitter.set_reading(0.0, False, fault=True)
    transmitter.fail_with = ExcCodes.DEVICE_BUSY
    with pytest.raises(ScaleUnavailable, match="3 failed reads"):
        next(it)
    assert src.stats.malformed["exception_6"] == 3
    transmitter.fail_with = None
    it = src.samples()
    with pytest.raises(StopIteration):  # a fault frame is skipped; then close ends the stream
        threading.Timer(0.2, src.close).start()
        next(it)
    assert src.stats.malformed["adc_fault"] == 1 and src.repeats > 0


def test_modbus_server_gone_raises_and_reconnects(transmitter: ModbusTransmitter) -> None:
    src = ModbusScaleSource("127.0.0.1", transmitter.port, poll_s=0.01, timeout_s=0.5)
    src.open()
    transmitter.set_reading(1.0, True)
    it = src.samples()
    next(it)
    transmitter.stop()
    with pytest.raises(ScaleUnavailable):
        next(it)
    src.close()
    transmitter.start()  # same port: the device comes back
    src.open()
    transmitter.set_reading(2.0, True)
    assert next(src.samples()).gross_kg == 2.0
    src.close()
    with pytest.raises(ScaleUnavailable):
        ModbusScaleSource("127.0.0.1", 1, timeout_s=0.2).open()


def test_simulated_morning_over_modbus_finds_every_deposit(transmitter: ModbusTransmitter) -> None:
    params = PhysicsParams(disconnects_per_hour=0, glitch_rate=0.0, rate_scale=2.0)
    model = ScaleModel("dry", 5, BENCH_START_MS, params)
    frames = list(model.run(0.25))
    items = [item for item in frames if isinstance(item, Reading)]
    assert len(items) == len(frames)  # glitch_rate=0: readings only
    ts_by_weight = iter(item.ts_ms for item in items)
    src = ModbusScaleSource(
        "127.0.0.1", transmitter.port, poll_s=0.0005, clock=lambda: next(ts_by_weight, 0)
    )
    src.open()
    # step the transmitter one conversion per read so no conversion is skipped
    samples = []
    it = src.samples()
    for item in items:
        transmitter.set_reading(item.weight_kg, item.stable, item.overload)
        samples.append(next(it))
    src.close()
    det, found = DepositDetector(), []
    for s in samples:
        ev = det.feed(s)
        if ev is not None and ev.kind is EventKind.DEPOSIT:
            found.append(ev)
    truth = inner(model, items)
    assert truth and match_deposits(truth, found).found == len(truth)
