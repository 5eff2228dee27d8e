"""Glucose Measurement (0x2A18) and Glucose Measurement Context (0x2A34): decode and encode.

Concentrations become mmol/L: mol/L x 1000 exactly (by exponent arithmetic), kg/L via
mg/dL = kg/L x 1e5 and mmol/L = mg/dL / 18.016 (glucose molar mass 180.16 g/mol), rounded
to 0.01 mmol/L. The meal comes from the Context characteristic (matched by sequence number).
"""

from __future__ import annotations

import datetime as dt
import struct

from edge.ble.errors import BleDecodeError
from edge.ble.ieee11073 import Reader, encode_date_time, encode_sfloat, sfloat_parts
from edge.ble.reading import BleReading

UUID = 0x2A18
CONTEXT_UUID = 0x2A34
GLUCOSE_MOLAR_MASS = 180.16  # g/mol

FLAG_TIME_OFFSET, FLAG_CONCENTRATION, FLAG_MOL_PER_L, FLAG_SENSOR_STATUS, FLAG_CONTEXT = (
    1,
    2,
    4,
    8,
    16,
)
SAMPLE_TYPES = {
    1: "capillary_whole_blood",
    2: "capillary_plasma",
    3: "venous_whole_blood",
    4: "venous_plasma",
    5: "arterial_whole_blood",
    6: "arterial_plasma",
    7: "undetermined_whole_blood",
    8: "undetermined_plasma",
    9: "interstitial_fluid",
    10: "control_solution",
}
LOCATIONS = {
    1: "finger",
    2: "alternate_site_test",
    3: "earlobe",
    4: "control_solution",
    15: "not_available",
}
# Sensor Status Annunciation bits that make the result unusable.
FAULT_BITS = {
    0x0002: "sensor malfunction",
    0x0004: "sample size insufficient",
    0x0008: "strip insertion error",
    0x0010: "strip type incorrect",
    0x0020: "result higher than the device can process",
    0x0040: "result lower than the device can process",
    0x0200: "sensor read interrupted",
    0x0400: "general device fault",
}
# Context meal codes -> contract meal; preprandial/casual/bedtime are not fasting, so "random".
MEALS = {1: "random", 2: "postprandial", 3: "fasting", 4: "random", 5: "random"}
CTX_CARBS, CTX_MEAL, CTX_TESTER, CTX_EXERCISE, CTX_MEDICATION, CTX_HBA1C, CTX_EXTENDED = (
    1,
    2,
    4,
    8,
    16,
    64,
    128,
)


def kg_per_l_to_mmol_per_l(value: float) -> float:
    """Glucose mass concentration (kg/L) to mmol/L with molar mass 180.16 g/mol, 0.01 precision."""
    return round(value * 1e6 / GLUCOSE_MOLAR_MASS, 2)


def _mmol(raw: int, mol_per_l: bool) -> float:
    mantissa, exponent = sfloat_parts(raw)
    if mol_per_l:
        exponent += 3  # mol/L -> mmol/L, exact
        return float(mantissa * 10**exponent) if exponent >= 0 else mantissa / 10 ** (-exponent)
    kg_l = mantissa * 10**exponent if exponent >= 0 else mantissa / 10 ** (-exponent)
    return kg_per_l_to_mmol_per_l(kg_l)


def decode_glucose(data: bytes) -> BleReading:
    """Decode one Glucose Measurement into blood_glucose (glucose_mmol_l); details hold seq and sample."""
    r = Reader(data, "glucose measurement")
    flags = r.u8()
    seq = r.u16()
    base = r.date_time()
    offset = r.s16() if flags & FLAG_TIME_OFFSET else 0
    if not flags & FLAG_CONCENTRATION:
        raise BleDecodeError("no_value", f"glucose record {seq} carries no concentration")
    mol = bool(flags & FLAG_MOL_PER_L)
    mmol = _mmol(r.u16(), mol)
    type_location = r.u8()
    status = r.u16() if flags & FLAG_SENSOR_STATUS else None
    faults = [text for bit, text in FAULT_BITS.items() if status is not None and status & bit]
    if faults:
        raise BleDecodeError("sensor_fault", f"glucose record {seq}: {', '.join(faults)}")
    sample = SAMPLE_TYPES.get(type_location & 0x0F, "reserved")
    if sample == "control_solution" or type_location >> 4 == 4:
        raise BleDecodeError("control_solution", f"glucose record {seq} is a control-solution test")
    details: dict[str, int | float | str | bool] = {
        "seq": seq,
        "unit": "mol/L" if mol else "kg/L",
        "sample": sample,
        "location": LOCATIONS.get(type_location >> 4, "reserved"),
        "context_follows": bool(flags & FLAG_CONTEXT),
    }
    measured_at = base + dt.timedelta(minutes=offset) if base else None
    return BleReading(
        "blood_glucose", {"glucose_mmol_l": mmol}, measured_at, status=status, details=details
    )


def encode_glucose(
    seq: int,
    base_time: dt.datetime | None,
    concentration: float,
    *,
    mol_per_l: bool = True,
    offset_min: int | None = None,
    sample_type: int = 1,
    location: int = 1,
    status: int | None = None,
    context_follows: bool = False,
) -> bytes:
    """Encode a Glucose Measurement; concentration in mol/L or kg/L as `mol_per_l` says."""
    flags = FLAG_CONCENTRATION | (FLAG_MOL_PER_L if mol_per_l else 0)
    flags |= (FLAG_TIME_OFFSET if offset_min is not None else 0) | (
        FLAG_SENSOR_STATUS if status is not None else 0
    )
    flags |= FLAG_CONTEXT if context_follows else 0
    out = bytearray([flags]) + struct.pack("<H", seq) + encode_date_time(base_time)
    if offset_min is not None:
        out += struct.pack("<h", offset_min)
    out += struct.pack("<HB", encode_sfloat(concentration), (location << 4) | sample_type)
    if status is not None:
        out += struct.pack("<H", status)
    return bytes(out)


def decode_glucose_context(data: bytes) -> tuple[int, str | None]:
    """Decode a Glucose Measurement Context into (sequence number, contract meal or None)."""
    r = Reader(data, "glucose measurement context")
    flags = r.u8()
    seq = r.u16()
    if flags & CTX_EXTENDED:
        r.u8()
    if flags & CTX_CARBS:
        r.u8()
        r.u16()  # carbohydrate amount, SFLOAT kg; read raw so specials do not reject the meal
    meal = MEALS.get(r.u8()) if flags & CTX_MEAL else None
    return seq, meal


def encode_glucose_context(seq: int, meal_code: int | None) -> bytes:
    """Encode a Glucose Measurement Context carrying only the meal (1 pre, 2 post, 3 fasting, 4 casual, 5 bedtime)."""
    if meal_code is None:
        return struct.pack("<BH", 0, seq)
    return struct.pack("<BHB", CTX_MEAL, seq, meal_code)
