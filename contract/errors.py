"""The one exception hierarchy of the contract package."""


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
