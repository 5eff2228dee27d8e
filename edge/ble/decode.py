"""Characteristic registry and the per-device Assembler that pairs notifications belonging together."""

from __future__ import annotations

from collections.abc import Callable

from edge.ble import (
    blood_pressure,
    glucose,
    height_weight,
    oximeter,
    staff_entry,
    thermometer,
    weight,
)
from edge.ble.errors import BleDecodeError
from edge.ble.reading import BleReading, merge, uuid16

BLOOD_PRESSURE = uuid16(blood_pressure.UUID)
WEIGHT = uuid16(weight.WEIGHT_UUID)
BODY_COMPOSITION = uuid16(weight.BODY_COMPOSITION_UUID)
TEMPERATURE = uuid16(thermometer.UUID)
GLUCOSE = uuid16(glucose.UUID)
GLUCOSE_CONTEXT = uuid16(glucose.CONTEXT_UUID)
PLX_SPOT_CHECK = uuid16(oximeter.UUID)
HEIGHT_WEIGHT_FRAME = height_weight.FRAME_UUID  # a serial station's ASCII frame (not Bluetooth)
STAFF_ENTRY = staff_entry.ENTRY_UUID  # waist/hip entered by staff at the hut's terminal

DECODERS: dict[str, Callable[[bytes], BleReading]] = {
    BLOOD_PRESSURE: blood_pressure.decode_blood_pressure,
    WEIGHT: weight.decode_weight,
    BODY_COMPOSITION: weight.decode_body_composition,
    TEMPERATURE: thermometer.decode_temperature,
    GLUCOSE: glucose.decode_glucose,
    PLX_SPOT_CHECK: oximeter.decode_spot_check,
    HEIGHT_WEIGHT_FRAME: height_weight.decode_height_weight,
    STAFF_ENTRY: staff_entry.decode_staff_entry,
}


def normalize_uuid(uuid: str | int) -> str:
    """Lower-case 128-bit UUID string of a 16-bit number, a short hex string or a full UUID."""
    if isinstance(uuid, int):
        return uuid16(uuid)
    text = uuid.strip().lower()
    if len(text) <= 6:
        return uuid16(int(text.removeprefix("0x"), 16))
    return text


def decode_notification(uuid: str | int, data: bytes) -> BleReading:
    """Decode one notification of a supported measurement characteristic."""
    decoder = DECODERS.get(normalize_uuid(uuid))
    if decoder is None:
        raise BleDecodeError("unsupported_characteristic", f"no decoder for {uuid}")
    return decoder(data)


class Assembler:
    """Turns one device's notifications into complete readings.

    Pairs a Glucose Measurement announcing a context with its Glucose Measurement Context (same
    sequence number, giving the meal), and a Weight Measurement with the Body Composition
    Measurement sent next to it. A held reading is released when anything else arrives, or by
    flush() (call it when the device goes quiet). Body composition without any weight cannot
    become a contract measurement and is counted in `incomplete`.

    Threading: not thread-safe; one consumer thread per device feeds it.
    """

    def __init__(self) -> None:
        self._glucose: BleReading | None = None
        self._body: tuple[str, BleReading] | None = None
        self.incomplete = 0

    def feed(self, uuid: str | int, data: bytes) -> list[BleReading]:
        """Decode one notification; return the readings now complete (raises BleDecodeError)."""
        key = normalize_uuid(uuid)
        if key == GLUCOSE_CONTEXT:
            return self._context(data)
        reading = decode_notification(key, data)
        if key in (WEIGHT, BODY_COMPOSITION):
            return self._body_part(key, reading)
        out = self.flush()
        if key == GLUCOSE and reading.details.get("context_follows"):
            self._glucose = reading
            return out
        return [*out, reading]

    def flush(self) -> list[BleReading]:
        """Release whatever is held, dropping (and counting) what is incomplete."""
        held = [r for r in (self._glucose, self._body[1] if self._body else None) if r is not None]
        self._glucose = None
        self._body = None
        out = [r for r in held if r.complete]
        self.incomplete += len(held) - len(out)
        return out

    def _context(self, data: bytes) -> list[BleReading]:
        seq, meal = glucose.decode_glucose_context(data)
        held = self._glucose
        if held is None or held.details.get("seq") != seq:
            return []  # context of a record we do not hold: nothing to attach it to
        self._glucose = None
        values = dict(held.values) | ({"meal": meal} if meal else {})
        return [
            BleReading(held.type, values, held.measured_at, held.user_id, held.status, held.details)
        ]

    def _body_part(self, key: str, reading: BleReading) -> list[BleReading]:
        if self._body is not None and self._body[0] != key:
            first = self._body[1]
            self._body = None
            glucose_out = self.flush()
            combined = merge(first, reading)
            if combined.complete:
                return [*glucose_out, combined]
            self.incomplete += 1
            return glucose_out
        out = self.flush()
        self._body = (key, reading)
        return out
