"""The one exception hierarchy of the edge (gateway) package."""

from __future__ import annotations


class EdgeError(Exception):
    """Base of every error raised by the edge package."""

    retryable: bool = False


class FrameError(EdgeError):
    """A device frame that is malformed; `reason` is a short code for counting."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ScaleUnavailable(EdgeError):
    """A scale cannot be reached or has gone silent; reconnecting may help."""

    retryable = True


class ConfigError(EdgeError):
    """A gateway setting or secret is missing or wrong."""


class QueueError(EdgeError):
    """The durable local queue cannot do what was asked."""
