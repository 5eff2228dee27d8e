"""The one error of the staff tool: one line, never a card number or a name."""


class StaffError(ValueError):
    """The roster, the key, the token or the API cannot be used; the message says why in one line."""
