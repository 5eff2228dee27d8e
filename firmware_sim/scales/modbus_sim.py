"""A Modbus TCP load-cell transmitter: a pymodbus SimDevice server on loopback with live registers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from typing import Self

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from firmware_sim.scales.physics import Glitch, Reading

# Register map (holding registers; the same block answers input-register reads).
REG_GROSS = 0  # 2 registers, INT32 big-endian (high word first), in units of 10**-DECIMALS kg
REG_STATUS = 2  # bit 0 stable, 1 overload, 2 centre of zero, 3 net mode, 15 ADC fault
REG_DECIMALS = 3  # decimals of the weight registers (3: grams)
REG_DIVISION = 4  # display division in weight units (10: 10 g)
REG_COUNTER = 5  # conversion counter, +1 per new weight, wraps at 65536
REG_NET = 6  # 2 registers, INT32, gross minus tare
REG_COUNT = 8

ST_STABLE, ST_OVERLOAD, ST_ZERO, ST_NET, ST_FAULT = 0x1, 0x2, 0x4, 0x8, 0x8000
DECIMALS, DIVISION = 3, 10


def int32_words(value: int) -> list[int]:
    """A signed 32-bit value as two 16-bit registers, high word first."""
    v = value & 0xFFFFFFFF
    return [v >> 16, v & 0xFFFF]


def registers_for(
    weight_kg: float,
    stable: bool,
    overload: bool,
    counter: int,
    fault: bool = False,
    tare_kg: float = 0.0,
) -> list[int]:
    """The 8 registers a transmitter shows for one weight."""
    grams = round(weight_kg * 10**DECIMALS)
    status = (ST_STABLE if stable else 0) | (ST_OVERLOAD if overload else 0)
    status |= ST_ZERO if abs(grams) < DIVISION / 2 else 0
    status |= ST_FAULT if fault else 0
    net = grams - round(tare_kg * 10**DECIMALS)
    return [*int32_words(grams), status, DECIMALS, DIVISION, counter & 0xFFFF, *int32_words(net)]


class ModbusTransmitter:
    """The transmitter as a server thread; set_reading() changes what the next read returns."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, unit: int = 1) -> None:
        self.host, self.port, self.unit = host, port, unit
        self.reads = 0
        self.fail_with: ExcCodes | None = None  # make every read answer this exception
        self._counter = 0
        self._regs = registers_for(0.0, True, False, 0)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_ev: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._player: threading.Thread | None = None
        self._halt = threading.Event()

    def set_reading(
        self, weight_kg: float, stable: bool, overload: bool = False, fault: bool = False
    ) -> None:
        """Publish a new conversion: weight, flags, counter + 1 (atomic for readers)."""
        self._counter += 1
        self._regs = registers_for(weight_kg, stable, overload, self._counter, fault)

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        self.reads += 1
        if self.fail_with is not None:
            return self.fail_with
        regs = self._regs
        current_registers[REG_GROSS - start_address : REG_GROSS - start_address + REG_COUNT] = regs
        return None

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_ev = asyncio.Event()
        device = SimDevice(
            id=self.unit,
            simdata=[
                SimData(
                    address=0, values=[0] * REG_COUNT, datatype=DataType.REGISTERS, readonly=True
                )
            ],
            action=self._action,
        )
        server = ModbusTcpServer(device, address=(self.host, self.port))
        try:
            await server.serve_forever(background=True)
            sockets = getattr(server.transport, "sockets", None) or []
            if sockets:
                self.port = sockets[0].getsockname()[1]
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise
        self._ready.set()
        await self._stop_ev.wait()
        await server.shutdown()

    def start(self, timeout: float = 5.0) -> None:
        """Start serving; returns once listening (self.port is the bound port)."""
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            raise RuntimeError(f"Modbus simulator did not start: {self._error}")

    def stop(self) -> None:
        """Stop serving (clients see the connection drop); start() again to come back."""
        self._halt.set()
        if self._player is not None:
            self._player.join()
            self._player = None
        if self._loop is not None and self._stop_ev is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop_ev.set)
            self._thread.join()
        self._thread = self._loop = None

    def play(self, items: Iterable[Reading | Glitch], speed: float = 1.0) -> None:
        """Feed physics output in a thread, paced by ts; a glitch raises the ADC fault bit once."""
        self._halt.clear()
        self._player = threading.Thread(target=self._play, args=(iter(items), speed), daemon=True)
        self._player.start()

    def _play(self, items: Iterable[Reading | Glitch], speed: float) -> None:
        prev: int | None = None
        for item in items:
            if (
                prev is not None
                and item.ts_ms > prev
                and self._halt.wait((item.ts_ms - prev) / 1000 / speed)
            ):
                return
            prev = item.ts_ms
            if isinstance(item, Reading):
                self.set_reading(item.weight_kg, item.stable, item.overload)
            else:
                self.set_reading(0.0, False, fault=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
