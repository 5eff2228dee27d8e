"""The errors every `gumei` command reports as one line instead of a trace."""

from cloud.audit import AuditError
from cloud.auth import AuthError
from cloud.influx import InfluxError
from cloud.registry import RegistryError
from cloud.settings import SettingsError
from contract.errors import ContractError
from dashboards.push import PushError
from runtime.system import ServiceError

KNOWN_ERRORS: tuple[type[Exception], ...] = (
    AuditError,
    AuthError,
    ContractError,
    InfluxError,
    PushError,
    RegistryError,
    ServiceError,
    SettingsError,
    OSError,
)
