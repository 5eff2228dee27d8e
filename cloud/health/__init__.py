"""Cloud side of the smart health hut: flags, FHIR export, daily statistics, line protocol."""

from cloud.health.fhir import bundle, observations
from cloud.health.flags import Flag, flag, implausible, screen
from cloud.health.lines import health_line, health_lines
from cloud.health.stats import HutDay, StatRow, daily_stats

__all__ = [
    "Flag",
    "HutDay",
    "StatRow",
    "bundle",
    "daily_stats",
    "flag",
    "health_line",
    "health_lines",
    "implausible",
    "observations",
    "screen",
]
