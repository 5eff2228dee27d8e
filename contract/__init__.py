"""Contract v1 between site gateways and the cloud: models, topics, decoding, pseudonyms."""

from contract.decode import (
    Decoded,
    RejectedEntry,
    decode_health,
    decode_status,
    decode_tickets,
    decode_waste,
)
from contract.errors import ContractError, PayloadRejected, TopicError
from contract.models import (
    CATEGORIES,
    Category,
    DeviceStatus,
    HealthBatch,
    HealthMeasurement,
    MeasurementType,
    Status,
    Subcategory,
    WasteBatch,
    WasteReading,
    WeighbridgeTicket,
    WeighbridgeTickets,
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
    "Subcategory",
    "TopicError",
    "WasteBatch",
    "WasteReading",
    "WeighbridgeTicket",
    "WeighbridgeTickets",
    "decode_health",
    "decode_status",
    "decode_tickets",
    "decode_waste",
    "device_belongs",
    "encode",
    "now_ms",
    "pseudonymize",
]
