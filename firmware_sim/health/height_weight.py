"""A simulated height/weight station (身高体重秤): the frames it prints for a resident, the
malformed ones real stations sometimes print, and a serial-line writer (a pty or any pyserial URL)
so the gateway's serial source reads it exactly as it would read the real RS-232 line."""

from __future__ import annotations

import random
from dataclasses import dataclass

import serial

from edge.ble.height_weight import encode_height_weight
from edge.ble.staff_entry import encode_staff_entry
from firmware_sim.health.residents import Resident

Expected = tuple[str, dict[str, float | str]]


@dataclass(frozen=True, slots=True)
class StationFrame:
    """One printed frame and what the gateway should make of it (values, or a rejection reason)."""

    data: bytes
    expected: Expected | None  # ("height_weight", values) for a good frame
    reason: str | None = None  # the decoder's rejection reason for a malformed one


def measure_station(resident: Resident, rng: random.Random) -> StationFrame:
    """A good frame: height to 0.1 cm (shoes off, ±0.3 cm), weight to 0.05 kg, BMI to 0.1."""
    height = round(resident.height_cm + rng.uniform(-0.3, 0.3), 1)
    weight = round((resident.weight_kg + rng.gauss(0, 0.4)) * 20) / 20
    bmi = round(weight / (height / 100) ** 2, 1)
    values: dict[str, float | str] = {"height_cm": height, "weight_kg": weight, "bmi": bmi}
    return StationFrame(encode_height_weight(height, weight, bmi), ("height_weight", values))


def malformed(resident: Resident, rng: random.Random) -> StationFrame:
    """A frame a real station sometimes prints: moved during the measurement, a line cut short,
    a corrupted byte (checksum), nobody on the plate."""
    good = measure_station(resident, rng).data
    kind = rng.choice(("unstable", "too_short", "bad_checksum", "no_subject"))
    if kind == "unstable":
        data = encode_height_weight(resident.height_cm, resident.weight_kg, stable=False)
    elif kind == "too_short":
        data = good[:6] + b"\r\n"
    elif kind == "bad_checksum":
        i = good.index(b",W") + 3  # a weight digit
        data = good[:i] + (b"8" if good[i : i + 1] != b"8" else b"7") + good[i + 1 :]
    else:
        data = encode_height_weight(0.0, 0.0, 0.0)
    return StationFrame(data, None, kind)


class SerialStation:
    """Writes frames to a serial port (e.g. the pty the gateway reads). Not thread-safe."""

    def __init__(self, port: str, baudrate: int = 9600) -> None:
        self._ser = serial.serial_for_url(port, baudrate=baudrate)

    def send(self, frame: StationFrame) -> None:
        """Print one frame on the line."""
        self._ser.write(frame.data)
        self._ser.flush()

    def close(self) -> None:
        """Close the port."""
        self._ser.close()


def tape_entry(resident: Resident, rng: random.Random) -> tuple[bytes, Expected]:
    """What the staff's terminal sends after measuring a resident's waist and hip with a tape
    (edge/ble/staff_entry.py), and the contract values it should give."""
    bmi = resident.weight_kg / (resident.height_cm / 100) ** 2
    waist = round(bmi * (3.2 if resident.sex == "M" else 3.0) + rng.gauss(8, 4), 1)
    hip = round(waist + rng.uniform(5, 15), 1)
    values: dict[str, float | str] = {"waist_cm": waist, "hip_cm": hip, "sex": resident.sex}
    return encode_staff_entry(waist, resident.sex, hip), ("body_circumference", values)
