"""Create or update the Gumei data source, folder and dashboards in a Grafana, by uid, idempotently."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import niquests
from grafana_client import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaTimeoutError,
    GrafanaUnauthorizedError,
)

from dashboards import generate as gen
from dashboards.influxql import DATASOURCE_UID
from dashboards.provisioning import FOLDER_TITLE, FOLDER_UID, Auth, datasource_model

T = TypeVar("T")
_COMPARED_DS_KEYS = ("name", "type", "access", "url", "database", "user", "jsonData", "isDefault")


class PushError(RuntimeError):
    """Base of push failures; str() is one line that says what to fix."""


class GrafanaUnreachable(PushError):
    """Nothing answers at the URL, or what answers is not Grafana's HTTP API."""


class BadToken(PushError):
    """Grafana refused the token (401) or the token lacks the permission (403)."""


class VersionConflict(PushError):
    """The dashboard (or folder) changed in Grafana after it was read (HTTP 412)."""


@dataclass
class PushResult:
    """What push did to each object: created, updated or unchanged."""

    grafana_version: str = ""
    datasource: str = ""
    folder: str = ""
    dashboards: dict[str, str] = field(default_factory=dict)


class _Session:
    """One Grafana, with library errors translated to PushError at this boundary."""

    def __init__(self, url: str, token: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.api = GrafanaApi.from_url(self.url, credential=token, timeout=timeout)

    def close(self) -> None:
        """Close the HTTP connection pool (grafana-client has no close of its own)."""
        self.api.client.s.close()

    def call(self, what: str, fn: Callable[[], T], missing_ok: bool = False) -> T | None:
        try:
            return fn()
        except GrafanaUnauthorizedError as exc:
            raise BadToken(
                f"Grafana at {self.url} refused the token (401 {_message(exc)}): check the service-account token"
            ) from None
        except GrafanaTimeoutError as exc:
            raise GrafanaUnreachable(
                f"Grafana at {self.url} timed out ({exc}) while {what}"
            ) from None
        except GrafanaClientError as exc:
            if exc.status_code == 404 and missing_ok:
                return None
            if exc.status_code == 403:
                raise BadToken(
                    f"the token may not do this at {self.url} (403 {_message(exc)}) while {what}: it needs the Editor or Admin role"
                ) from None
            if exc.status_code == 412:
                raise VersionConflict(
                    f"{what}: changed in Grafana since it was read (412 {_message(exc)}); re-run push, or push with overwrite to replace it"
                ) from None
            raise PushError(
                f"Grafana at {self.url} answered {exc.status_code} {_message(exc)} while {what}"
            ) from None
        except GrafanaException as exc:
            raise PushError(f"Grafana at {self.url} failed while {what}: {_message(exc)}") from None
        except niquests.exceptions.RequestException as exc:
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise GrafanaUnreachable(f"cannot reach Grafana at {self.url}: {reason}") from None


def _message(exc: GrafanaException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "message" in response:
        return str(response["message"])
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _check_grafana(s: _Session) -> str:
    try:
        info = s.call("checking that this is Grafana", s.api.health.check)
    except PushError as exc:
        if isinstance(exc, BadToken | GrafanaUnreachable):
            raise
        raise GrafanaUnreachable(f"{s.url} does not look like Grafana's HTTP API ({exc})") from None
    if not isinstance(info, dict) or "version" not in info:
        raise GrafanaUnreachable(
            f"{s.url} does not look like Grafana's HTTP API (no buildInfo in /api/frontend/settings)"
        )
    return str(info["version"])


def _push_datasource(s: _Session, model: dict[str, Any]) -> str:
    current = s.call(
        "reading the data source",
        lambda: s.api.datasource.get_datasource_by_uid(DATASOURCE_UID),
        missing_ok=True,
    )
    if current is None:
        s.call("creating the data source", lambda: s.api.datasource.create_datasource(model))
        return "created"
    same = all(current.get(k) == model.get(k) for k in _COMPARED_DS_KEYS if k in model)
    if same and not any(model["secureJsonData"].values()):
        return "unchanged"
    s.call(
        "updating the data source",
        lambda: s.api.datasource.update_datasource_by_uid(
            DATASOURCE_UID, {**model, "id": current.get("id")}
        ),
    )
    return "updated"  # secrets cannot be read back, so given secrets are always written


def _push_folder(s: _Session) -> str:
    current = s.call(
        "reading the folder", lambda: s.api.folder.get_folder(FOLDER_UID), missing_ok=True
    )
    if current is None:
        s.call(
            "creating the folder", lambda: s.api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        )
        return "created"
    if current.get("title") == FOLDER_TITLE:
        return "unchanged"
    s.call(
        f"renaming folder {FOLDER_UID}",
        lambda: s.api.folder.update_folder(
            FOLDER_UID, title=FOLDER_TITLE, version=current.get("version")
        ),
    )
    return "updated"


def _strip(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("id", "version")}


def _push_dashboard(s: _Session, doc: dict[str, Any], overwrite: bool) -> str:
    uid = doc["uid"]
    current = s.call(
        f"reading dashboard {uid}", lambda: s.api.dashboard.get_dashboard(uid), missing_ok=True
    )
    body: dict[str, Any] = {
        "dashboard": dict(doc),
        "folderUid": FOLDER_UID,
        "overwrite": overwrite,
        "message": "gumei dashboards push",
    }
    if current is not None:
        same_folder = current.get("meta", {}).get("folderUid") == FOLDER_UID
        if same_folder and _strip(current["dashboard"]) == _strip(doc):
            return "unchanged"
        body["dashboard"]["id"] = current["dashboard"].get("id")
        body["dashboard"]["version"] = current["dashboard"].get("version")
    else:
        body["dashboard"]["id"] = None
    s.call(f"dashboard {uid}", lambda: s.api.dashboard.update_dashboard(body))
    return "created" if current is None else "updated"


def push(
    url: str,
    token: str,
    influx_url: str,
    influx_database: str = "gumei",
    influx_auth: Auth = "basic",
    influx_user: str = "",
    influx_password: str = "",
    influx_token: str = "",
    json_dir: Path = gen.JSON_DIR,
    overwrite: bool = False,
    timeout: float = 10.0,
) -> PushResult:
    """Push the data source (InfluxQL), the Gumei folder and every dashboard in json_dir to Grafana at url."""
    dashboards = gen.load(json_dir)
    if not dashboards:
        raise PushError(f"no dashboard JSON in {json_dir}: run `gumei dashboards generate` first")
    s = _Session(url, token, timeout)
    try:
        result = PushResult(grafana_version=_check_grafana(s))
        model = datasource_model(
            influx_url, influx_database, influx_auth, influx_user, influx_password, influx_token
        )
        result.datasource = _push_datasource(s, model)
        result.folder = _push_folder(s)
        for doc in dashboards.values():
            result.dashboards[doc["uid"]] = _push_dashboard(s, doc, overwrite)
        return result
    finally:
        s.close()
