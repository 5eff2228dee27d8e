"""Broker identities and their ACLs as data, and the dynamic security plugin's JSON file (Mosquitto 2.0).

Every identity has a bound client id (= its username): the plugin refuses any other id with
CONNACK "not authorized", so nobody can take over another's session. Default access is deny for
publishing, receiving, subscribing and unsubscribing; each role grants only what it lists.
The file format and the password hash (PBKDF2-HMAC-SHA512, 12-byte salt, base64) are those of
Mosquitto 2.0.11's plugins/dynamic-security/{clients,roles,auth}.c and mosquitto_ctrl's `dynsec init`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.registry import Registry, SiteKind, kind_of_id
from contract.topics import PREFIX, SHARED_INGEST, kind_of_site, status, weighbridge_tickets
from runtime.system import ServiceError

SALT_BYTES = 12  # SALT_LEN in Mosquitto's dynamic_security.h
HASH_BYTES = 64  # SHA-512
# Mosquitto's own default (PW_DEFAULT_ITERATIONS). Every password is 144 random bits
# (secrets.token_urlsafe(18)), so stretching adds nothing against guessing; a higher count only
# costs CPU on each of thousands of gateway (re)connects.
ITERATIONS = 101

ADMIN = "gumei-admin"
DEFAULT_WORKERS = 4
DEFAULT_MONITORS = 4
CONTROL_TOPICS = "$CONTROL/dynamic-security/#"
ALL_TOPICS = f"{PREFIX}/#"


def worker_name(i: int) -> str:
    """The broker identity (and MQTT client id) of ingestion worker i (1-based)."""
    return f"ingest-{i}"


def monitor_name(i: int) -> str:
    """The broker identity (and MQTT client id) of read-only monitor i (1-based)."""
    return f"monitor-{i}"


@dataclass(frozen=True)
class Acl:
    """One ACL entry of a role: acltype is publishClientSend, publishClientReceive, subscribeLiteral, …"""

    acltype: str
    topic: str


@dataclass(frozen=True)
class Identity:
    """A broker user: its client id is bound to its username; it holds one role of its own."""

    username: str
    role: str
    acls: tuple[Acl, ...]
    textname: str


def is_service_identity(username: str) -> bool:
    """The broker's own identities (admin, ingest-N, monitor-N): never a gateway."""
    return username == ADMIN or username.startswith(("ingest-", "monitor-"))


def gateway_identity(site_id: str, kind: SiteKind | None = None) -> Identity:
    """A gateway publishes only its own site's topics (readings, retained status, Last Will); reads nothing.

    A weighbridge (registry kind `weighbridge`, id WB-…) publishes exactly its tickets topic and
    its status topic, nothing else under its site (no readings: tonnage from a weighbridge comes
    only as tickets)."""
    if (kind or kind_of_id(site_id)) == "weighbridge":
        acls = tuple(
            Acl("publishClientSend", t)
            for t in (weighbridge_tickets(site_id), status("waste", site_id))
        )
        return Identity(site_id, f"gateway-{site_id}", acls, f"weighbridge gateway of {site_id}")
    own = f"{PREFIX}/{kind_of_site(site_id)}/{site_id}/+"
    return Identity(
        site_id, f"gateway-{site_id}", (Acl("publishClientSend", own),), f"gateway of {site_id}"
    )


def worker_identity(name: str) -> Identity:
    """An ingestion worker joins the one shared group and receives the contract topics; publishes nothing."""
    acls = (
        Acl("subscribeLiteral", SHARED_INGEST),
        Acl("unsubscribeLiteral", SHARED_INGEST),
        Acl("publishClientReceive", ALL_TOPICS),
    )
    return Identity(name, "ingest-worker", acls, "ingestion worker")


def monitor_identity(name: str) -> Identity:
    """A read-only watcher: plain (non-shared) subscriptions under gumei/v1/ only; publishes nothing."""
    acls = (
        Acl("subscribePattern", ALL_TOPICS),
        Acl("unsubscribePattern", ALL_TOPICS),
        Acl("publishClientReceive", ALL_TOPICS),
    )
    return Identity(name, "monitor", acls, "read-only monitor")


def admin_identity() -> Identity:
    """The operator's identity for the plugin's control topic (live changes); no contract topics."""
    acls = (
        Acl("publishClientSend", CONTROL_TOPICS),
        Acl("publishClientReceive", CONTROL_TOPICS),
        Acl("subscribePattern", CONTROL_TOPICS),
        Acl("unsubscribePattern", CONTROL_TOPICS),
    )
    return Identity(ADMIN, "dynsec-admin", acls, "dynamic security admin")


def broker_identities(
    registry: Registry, workers: int = DEFAULT_WORKERS, monitors: int = DEFAULT_MONITORS
) -> list[Identity]:
    """Everyone who may connect: active gateways, N workers, k monitors and the admin."""
    out = [admin_identity()]
    out += [worker_identity(worker_name(i)) for i in range(1, workers + 1)]
    out += [monitor_identity(monitor_name(i)) for i in range(1, monitors + 1)]
    out += [gateway_identity(s.id, s.kind) for s in registry.sites if not s.retired]
    return out


def hash_password(password: str, salt: bytes, iterations: int = ITERATIONS) -> bytes:
    """The plugin's hash: PBKDF2-HMAC-SHA512 of the UTF-8 password, 64 bytes."""
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, HASH_BYTES)


def password_fields(password: str, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """password/salt/iterations of a client entry; an entry that already matches is kept byte for byte."""
    if previous is not None and verifies(previous, password):
        return {k: previous[k] for k in ("password", "salt", "iterations")}
    salt = os.urandom(SALT_BYTES)
    return {
        "password": base64.b64encode(hash_password(password, salt)).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": ITERATIONS,
    }


def verifies(entry: dict[str, Any], password: str) -> bool:
    """Whether a client entry's hash is that of password."""
    try:
        salt = base64.b64decode(entry["salt"], validate=True)
        want = base64.b64decode(entry["password"], validate=True)
        iterations = int(entry["iterations"])
    except (KeyError, TypeError, ValueError):
        return False
    return (
        len(salt) == SALT_BYTES
        and iterations >= 1
        and hmac.compare_digest(hash_password(password, salt, iterations), want)
    )


def dynsec_config(
    identities: Iterable[Identity],
    passwords: dict[str, str],
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The plugin's whole JSON document: default-deny access, one client and one role per identity."""
    old = {c.get("username"): c for c in (previous or {}).get("clients", []) if isinstance(c, dict)}
    clients, roles = [], {}
    for ident in identities:
        clients.append(
            {
                "username": ident.username,
                "clientid": ident.username,
                "textname": ident.textname,
                **password_fields(passwords[ident.username], old.get(ident.username)),
                "roles": [{"rolename": ident.role}],
            }
        )
        roles[ident.role] = {
            "rolename": ident.role,
            "acls": [
                {"acltype": a.acltype, "topic": a.topic, "priority": 0, "allow": True}
                for a in ident.acls
            ],
        }
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": False,
        },
        "clients": clients,
        "groups": [],
        "roles": list(roles.values()),
    }


def read_config(path: Path) -> dict[str, Any] | None:
    """A plugin JSON file, or None when there is none yet."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ServiceError(f"{path} is not valid JSON: {exc}") from None
    return data if isinstance(data, dict) else None


def set_password(config: dict[str, Any], username: str, password: str) -> None:
    """Rehash one client's password in a plugin document; every other entry stays as it was."""
    for client in config.get("clients", []):
        if client.get("username") == username:
            client.update(password_fields(password))
            return
    raise KeyError(username)
