"""Topic builders and the one topic parser of contract v1."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, TypeGuard

from contract.errors import TopicError
from contract.models import ID_PATTERN

PREFIX = "gumei/v1"
Kind = Literal["waste", "health"]
Channel = Literal["readings", "measurements", "tickets", "status"]
_CHANNELS: dict[str, tuple[Channel, ...]] = {
    "waste": ("readings", "tickets", "status"),
    "health": ("measurements", "status"),
}
_ID = re.compile(ID_PATTERN)
SHARED_INGEST = "$share/ingest/gumei/v1/#"


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed contract topic: gumei/v1/{kind}/{site}/{channel}."""

    kind: Kind
    site: str
    channel: Channel

    def __str__(self) -> str:
        return f"{PREFIX}/{self.kind}/{self.site}/{self.channel}"


def waste_readings(site: str) -> str:
    """Topic a waste gateway publishes its readings on."""
    return str(Topic("waste", site, "readings"))


def weighbridge_tickets(site: str) -> str:
    """Topic a weighbridge gateway publishes its tickets on (gumei.weighbridge.tickets.v1)."""
    return str(Topic("waste", site, "tickets"))


def health_measurements(site: str) -> str:
    """Topic a health hut publishes its measurements on."""
    return str(Topic("health", site, "measurements"))


def status(kind: Kind, site: str) -> str:
    """Retained status (and Last Will) topic of a gateway."""
    return str(Topic(kind, site, "status"))


def kind_of_site(site: str) -> Kind:
    """Health huts are HH-…, everything else is a waste station."""
    return "health" if site.startswith("HH-") else "waste"


def shared_subscription(group: str = "ingest") -> str:
    """The MQTT v5 shared subscription all ingestion workers join."""
    if not _ID.match(group):
        raise TopicError(f"bad shared subscription group {group!r}")
    return f"$share/{group}/{PREFIX}/#"


def _is_kind(kind: str) -> TypeGuard[Kind]:
    return kind in _CHANNELS


def _is_channel_of(channel: str, kind: Kind) -> TypeGuard[Channel]:
    return channel in _CHANNELS[kind]


def parse(topic: str) -> Topic:
    """Parse a contract topic, or raise TopicError saying what is wrong."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != PREFIX:
        raise TopicError(f"not a gumei/v1 topic: {topic[:200]!r}")
    kind, site, channel = parts[2], parts[3], parts[4]
    if not _is_kind(kind):
        raise TopicError(f"unknown kind {kind[:40]!r} in topic")
    if not _ID.match(site):
        raise TopicError(f"bad site id {site[:80]!r} in topic")
    if not _is_channel_of(channel, kind):
        raise TopicError(f"unknown channel {channel[:40]!r} for {kind}")
    return Topic(kind, site, channel)
