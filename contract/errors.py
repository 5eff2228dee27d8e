"""The one exception hierarchy of the contract package, and one-line validation messages."""

from pydantic import ValidationError


class ContractError(ValueError):
    """Base: something does not follow contract v1."""


class TopicError(ContractError):
    """A topic that is not a contract v1 topic."""


class PayloadRejected(ContractError):
    """A whole payload is rejected; `code` is a short reason for counting."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def first_error(exc: ValidationError) -> str:
    """The first problem of a pydantic ValidationError as one line: `loc.path: message`."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}" if loc else str(err["msg"])
