"""Contract v1 between site gateways and the cloud: models, topics, decoding, pseudonyms."""

from contract.decode import Decoded, RejectedEntry, decode_health, decode_status, decode_waste
from contract.errors import ContractError, PayloadRejected, TopicError
from contract.models import (
    CATEGORIES,
    Category,
    DeviceStatus,
    HealthBatch,
    HealthMeasurement,
    MeasurementType,
    Status,
    WasteBatch,
    WasteReading,
    device_belongs,
    encode,
    now_ms,
)
from contract.pseudonym import pseudonymize

__all__ = [
    "CATEGORIES",
    "Category",
    "ContractError",
    "Decoded",
    "DeviceStatus",
    "HealthBatch",
    "HealthMeasurement",
    "MeasurementType",
    "PayloadRejected",
    "RejectedEntry",
    "Status",
    "TopicError",
    "WasteBatch",
    "WasteReading",
    "decode_health",
    "decode_status",
    "decode_waste",
    "device_belongs",
    "encode",
    "now_ms",
    "pseudonymize",
]
