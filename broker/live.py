"""Live provisioning of gateways: the running broker brought to the registry, nothing restarted.

The broker's own identities (admin, ingest-N, monitor-N) are left as they are; gateways are the
clients that are none of those. `gateway_changes` (pure) says which gateways to add (active sites
without a broker identity) and which to remove (identities of sites retired or gone);
`gateway_commands` (pure) turns that into dynamic-security commands; `sync_gateways` asks the
running broker what it has (listClients, listRoles), sends the commands as the admin, keeps the
passwords file and the installable copy of the plugin's JSON in step, and returns what changed.
It is idempotent: a run after a partial failure does what is left.

Deleting a client makes the plugin disconnect its session at once (Mosquitto 2.0.11,
plugins/dynamic-security/clients.c: `mosquitto_kick_client_by_username` after deleteClient);
every other client keeps its connection.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker import dynsec
from broker.dynsec_control import run_commands
from cloud.registry import Registry
from runtime.mqtt import MqttEndpoint
from runtime.system import ServiceError

PAGE = 500  # names per listClients/listRoles answer: well under the broker's max_packet_size


is_service = dynsec.is_service_identity  # the broker's own identities: never touched here


@dataclass(frozen=True)
class GatewayChanges:
    """What the broker must do to match the registry."""

    add: tuple[str, ...]
    remove: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.add or self.remove)


def gateway_changes(registry: Registry, present: set[str]) -> GatewayChanges:
    """Gateways to add (active sites without an identity) and to remove (identities no active site has)."""
    active = {s.id for s in registry.sites if not s.retired}
    clash = sorted(s for s in active if is_service(s))
    if clash:
        raise ServiceError(f"site id {clash[0]} is the name of a broker service identity")
    gateways = {u for u in present if not is_service(u)}
    return GatewayChanges(tuple(sorted(active - gateways)), tuple(sorted(gateways - active)))


def _role_doc(ident: dynsec.Identity) -> dict[str, Any]:
    return {
        "command": "createRole",
        "rolename": ident.role,
        "textname": ident.textname,
        "acls": [
            {"acltype": a.acltype, "topic": a.topic, "priority": 0, "allow": True}
            for a in ident.acls
        ],
    }


def gateway_commands(
    changes: GatewayChanges, passwords: dict[str, str], roles_present: set[str]
) -> list[dict[str, Any]]:
    """The plugin's commands: a role and a client (bound client id) per new gateway; removals."""
    out: list[dict[str, Any]] = []
    for site in changes.add:
        ident = dynsec.gateway_identity(site)
        if ident.role not in roles_present:
            out.append(_role_doc(ident))
        out.append(
            {
                "command": "createClient",
                "username": site,
                "clientid": site,
                "password": passwords[site],
                "textname": ident.textname,
                "roles": [{"rolename": ident.role}],
            }
        )
    for site in changes.remove:
        out.append({"command": "deleteClient", "username": site})
        role = dynsec.gateway_identity(site).role
        if role in roles_present:
            out.append({"command": "deleteRole", "rolename": role})
    return out


def _names(endpoint: MqttEndpoint, command: str, key: str) -> set[str]:
    """Every name a list command returns, page by page."""
    names: set[str] = set()
    offset = 0
    while True:
        [answer] = run_commands(
            endpoint, [{"command": command, "verbose": False, "count": PAGE, "offset": offset}]
        )
        data = answer.get("data", {})
        page = [n for n in data.get(key, []) if isinstance(n, str)]
        names.update(page)
        offset += len(page)
        if not page or offset >= int(data.get("totalCount", 0)):
            return names


@dataclass(frozen=True)
class BrokerPaths:
    """Where a deployment keeps the gateways' passwords, and the installable copy of the plugin's JSON.

    dynsec_copy is None (or absent) when the only copy is the plugin's own file (the local
    stack): the plugin rewrites that itself after each command.
    """

    secrets: Path
    dynsec_copy: Path | None

    @classmethod
    def of_generated(cls, out: Path) -> BrokerPaths:
        """The layout `gumei broker gen --out OUT` wrote."""
        return cls(out / "secrets" / "mqtt.json", out / "dynamic-security.json")


def sync_gateways(registry: Registry, paths: BrokerPaths, admin: MqttEndpoint) -> GatewayChanges:
    """Bring the running broker's gateways to the registry (admin: the broker, as gumei-admin)."""
    from broker.generate import load_or_make_passwords, save_passwords, write_dynsec

    present = _names(admin, "listClients", "clients")
    changes = gateway_changes(registry, present)
    if not changes:
        return changes
    passwords = load_or_make_passwords(paths.secrets, [])
    for site in changes.add:
        passwords[site] = secrets.token_urlsafe(18)  # a new identity never reuses an old secret
    save_passwords(paths.secrets, passwords)  # before the broker knows it: never a lost password
    roles = _names(admin, "listRoles", "roles")
    run_commands(admin, gateway_commands(changes, passwords, roles))
    for site in changes.remove:
        passwords.pop(site, None)
    save_passwords(paths.secrets, passwords)
    if paths.dynsec_copy is not None and paths.dynsec_copy.exists():
        current = dynsec.read_config(paths.dynsec_copy) or {}
        services = [
            c["username"]
            for c in current.get("clients", [])
            if isinstance(c, dict) and is_service(str(c.get("username")))
        ]
        workers = sum(1 for u in services if u.startswith("ingest-"))
        monitors = sum(1 for u in services if u.startswith("monitor-"))
        write_dynsec(
            paths.dynsec_copy, dynsec.broker_identities(registry, workers, monitors), passwords
        )
    return changes
