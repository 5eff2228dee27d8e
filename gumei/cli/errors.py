"""The errors every `gumei` command reports as one line instead of a trace."""

from cloud.audit import AuditError
from cloud.auth import AuthError
from cloud.influx import InfluxError
from cloud.registry import RegistryError
from cloud.settings import SettingsError
from contract.errors import ContractError
from dashboards.push import PushError
from runtime.system import ServiceError
from staff.errors import StaffError

KNOWN_ERRORS: tuple[type[Exception], ...] = (
    AuditError,
    AuthError,
    ContractError,
    InfluxError,
    PushError,
    RegistryError,
    ServiceError,
    SettingsError,
    StaffError,
    OSError,
)

# Modules of the optional extras ([project.optional-dependencies]): a command that needs one that is
# not installed says which extra to install instead of printing a trace.
OPTIONAL_MODULES = {"matplotlib": "render", "pandas": "bench", "bleak": "ble"}


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The one-line message for a missing optional module, or None when `exc` is about another."""
    top = (exc.name or "").split(".")[0]
    extra = OPTIONAL_MODULES.get(top)
    if extra is None:
        return None
    return f"this command needs {top}, which is in the optional extra [{extra}]: pip install 'gumei-iot[{extra}]'"
