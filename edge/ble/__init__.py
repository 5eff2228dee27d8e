"""Pure decoders (and encoders) for Bluetooth GATT health-device measurement characteristics."""

from edge.ble.blood_pressure import decode_blood_pressure, encode_blood_pressure
from edge.ble.decode import (
    BLOOD_PRESSURE,
    BODY_COMPOSITION,
    GLUCOSE,
    GLUCOSE_CONTEXT,
    PLX_SPOT_CHECK,
    TEMPERATURE,
    WEIGHT,
    Assembler,
    decode_notification,
    normalize_uuid,
)
from edge.ble.errors import BleDecodeError
from edge.ble.glucose import (
    decode_glucose,
    decode_glucose_context,
    encode_glucose,
    encode_glucose_context,
)
from edge.ble.ieee11073 import decode_float, decode_sfloat, encode_float, encode_sfloat
from edge.ble.oximeter import decode_spot_check, encode_spot_check
from edge.ble.reading import BleReading, measured_ms, merge, uuid16
from edge.ble.thermometer import decode_temperature, encode_temperature
from edge.ble.weight import (
    decode_body_composition,
    decode_weight,
    encode_body_composition,
    encode_weight,
)

__all__ = [
    "BLOOD_PRESSURE",
    "BODY_COMPOSITION",
    "GLUCOSE",
    "GLUCOSE_CONTEXT",
    "PLX_SPOT_CHECK",
    "TEMPERATURE",
    "WEIGHT",
    "Assembler",
    "BleDecodeError",
    "BleReading",
    "decode_blood_pressure",
    "decode_body_composition",
    "decode_float",
    "decode_glucose",
    "decode_glucose_context",
    "decode_notification",
    "decode_sfloat",
    "decode_spot_check",
    "decode_temperature",
    "decode_weight",
    "encode_blood_pressure",
    "encode_body_composition",
    "encode_float",
    "encode_glucose",
    "encode_glucose_context",
    "encode_sfloat",
    "encode_spot_check",
    "encode_temperature",
    "encode_weight",
    "measured_ms",
    "merge",
    "normalize_uuid",
    "uuid16",
]
