"""Scale interfaces of the gateway: frame parsing and drivers yielding WeightSample."""

from edge.scales.ascii_frame import IndicatorFrame, parse_frame
from edge.scales.sample import SourceStats, WeighMode, WeightSample
from edge.scales.source import ScaleSource

__all__ = [
    "IndicatorFrame",
    "ScaleSource",
    "SourceStats",
    "WeighMode",
    "WeightSample",
    "parse_frame",
]
