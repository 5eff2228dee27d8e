"""pymodbus driver for a Modbus TCP load-cell transmitter (register map in docs/scales.md)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from contract import now_ms
from edge.errors import ScaleUnavailable
from edge.scales.sample import SourceStats, WeighMode, WeightSample

REG_BASE, REG_COUNT = 0, 8
ST_STABLE, ST_OVERLOAD, ST_NET, ST_FAULT = 0x1, 0x2, 0x8, 0x8000


def _int32(hi: int, lo: int) -> int:
    v = (hi << 16) | lo
    return v - (1 << 32) if v & 0x80000000 else v


def decode_registers(regs: list[int], ts_ms: int, device: str = "") -> WeightSample:
    """A WeightSample from the 8 transmitter registers; raise ValueError on a fault or bad decimals."""
    if len(regs) != REG_COUNT:
        raise ValueError(f"expected {REG_COUNT} registers, got {len(regs)}")
    status, decimals = regs[2], regs[3]
    if status & ST_FAULT:
        raise ValueError("adc_fault")
    if decimals > 6:
        raise ValueError("bad_decimals")
    return WeightSample(
        ts_ms=ts_ms,
        gross_kg=_int32(regs[0], regs[1]) / 10**decimals,
        stable=bool(status & ST_STABLE),
        overload=bool(status & ST_OVERLOAD),
        mode=WeighMode.NET if status & ST_NET else WeighMode.GROSS,
        device=device,
    )


class ModbusScaleSource:
    """Polls the transmitter's holding registers; a ScaleSource yielding only new conversions."""

    def __init__(
        self,
        host: str,
        port: int = 502,
        *,
        unit: int = 1,
        device: str = "",
        poll_s: float = 0.2,
        timeout_s: float = 1.0,
        max_failures: int = 3,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.host, self.port, self.unit, self.device = host, port, unit, device
        self.poll_s, self.timeout_s, self.max_failures, self.clock = (
            poll_s,
            timeout_s,
            max_failures,
            clock,
        )
        self.stats = SourceStats()
        self.repeats = 0  # polls that found no new conversion
        self._client: ModbusTcpClient | None = None
        self._closed = threading.Event()
        self._last_counter: int | None = None

    def open(self) -> None:
        """Connect; raise ScaleUnavailable when the transmitter does not answer."""
        self._closed.clear()
        client = ModbusTcpClient(self.host, port=self.port, timeout=self.timeout_s, retries=0)
        if not client.connect():
            client.close()
            raise ScaleUnavailable(f"cannot connect to Modbus {self.host}:{self.port}")
        self._client = client

    def close(self) -> None:
        """Stop samples() at its next poll and drop the connection; safe from another thread."""
        self._closed.set()
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _poll(self, client: ModbusTcpClient) -> list[int] | None:
        try:
            rr = client.read_holding_registers(REG_BASE, count=REG_COUNT, device_id=self.unit)
        except (ModbusException, OSError, AttributeError) as exc:
            if self._closed.is_set():  # closed from another thread mid-read: pymodbus may drop its
                return None  # socket under the read (AttributeError on None) or fail it (OSError)
            if isinstance(exc, AttributeError):
                raise
            raise ScaleUnavailable(f"Modbus {self.host}:{self.port}: {exc}") from exc
        if rr.isError():
            self.stats.malformed[f"exception_{getattr(rr, 'exception_code', 0)}"] += 1
            return None
        return list(rr.registers)

    def samples(self) -> Iterator[WeightSample]:
        """Yield one sample per new conversion; raise ScaleUnavailable after repeated failures."""
        failures = 0
        while not self._closed.is_set():
            client = self._client
            if client is None:
                return
            regs = self._poll(client)
            if regs is None:
                failures += 1
                if failures >= self.max_failures and not self._closed.is_set():
                    raise ScaleUnavailable(
                        f"Modbus {self.host}:{self.port}: {failures} failed reads"
                    )
            else:
                failures = 0
                sample = self._decode(regs)
                if sample is not None:
                    yield sample
            self._closed.wait(self.poll_s)

    def _decode(self, regs: list[int]) -> WeightSample | None:
        counter = regs[5]
        if counter == self._last_counter:
            self.repeats += 1
            return None
        self._last_counter = counter
        ts = self.clock()
        try:
            sample = decode_registers(regs, ts, self.device)
        except ValueError as exc:
            self.stats.malformed[str(exc)] += 1
            return None
        self.stats.frames += 1
        self.stats.last_frame_ms = ts
        return sample
