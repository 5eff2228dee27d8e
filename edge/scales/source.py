"""The tiny interface every scale driver implements."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from edge.scales.sample import SourceStats, WeightSample


@runtime_checkable
class ScaleSource(Protocol):
    """A weighing device seen as a stream of WeightSample.

    Lifecycle: construct (no I/O) -> open() -> iterate samples() -> close().
    open() connects and raises ScaleUnavailable when the device cannot be
    reached. samples() blocks for the next good sample; malformed frames are
    skipped and counted in `stats`; it raises ScaleUnavailable when the device
    goes silent or the link breaks (the caller may close() and open() again),
    and it ends when close() is called.

    Threading: one consumer thread iterates samples(); close() is the one
    method that may be called from any other thread, to stop that consumer.
    `stats` may be read from any thread (values are plain counters).
    """

    stats: SourceStats

    def open(self) -> None:
        """Connect to the device."""

    def samples(self) -> Iterator[WeightSample]:
        """Yield good samples until close(); raise ScaleUnavailable on link loss."""

    def close(self) -> None:
        """Disconnect; idempotent and safe from another thread."""
