"""Errors of the BLE decoders: one typed error with a short reason code for counting."""

from __future__ import annotations

from edge.errors import EdgeError, FrameError


class BleDecodeError(FrameError):
    """A GATT notification that cannot be decoded into a measurement.

    `reason` is a short code (e.g. ``too_short``, ``special_value``, ``bad_timestamp``,
    ``unsupported_characteristic``, ``measurement_unsuccessful``) used to count quarantines.
    """


class BleUnavailable(EdgeError):
    """An instrument cannot be reached or its link broke; reconnecting may help."""

    retryable = True
