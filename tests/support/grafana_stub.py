"""A stand-in for the few Grafana HTTP API endpoints `dashboards push` calls (Grafana cannot be installed here).

Request and response shapes follow Grafana's documented HTTP API (Data source, Folder, Dashboard APIs):
bearer service-account tokens, 404 for unknown uids, 409 for duplicates, 412 version-mismatch when a
dashboard or folder is saved with a stale version and overwrite is false.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VERSION = "11.6.0"


class GrafanaStub:
    """In-memory Grafana API on 127.0.0.1:<free port>. Lifecycle: start(), use .url, stop()."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.datasources: dict[str, dict[str, Any]] = {}
        self.secrets: dict[str, dict[str, Any]] = {}
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[
            str, dict[str, Any]
        ] = {}  # uid -> {"dashboard": ..., "folderUid": ...}
        self.requests: list[tuple[str, str]] = []
        self.after_get_dashboard: Callable[[str], None] | None = None
        self._ids = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    # -- endpoints: (status, body) ------------------------------------------------------

    def route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        routes: list[tuple[str, str, Callable[..., tuple[int, Any]]]] = [
            (
                "GET",
                r"/api/frontend/settings",
                lambda: (
                    200,
                    {"buildInfo": {"version": VERSION, "commit": "stub", "edition": "Open Source"}},
                ),
            ),
            ("GET", r"/api/datasources/uid/([^/]+)", self.get_datasource),
            ("POST", r"/api/datasources", lambda: self.create_datasource(body)),
            ("PUT", r"/api/datasources/uid/([^/]+)", lambda uid: self.update_datasource(uid, body)),
            ("GET", r"/api/folders/([^/]+)", self.get_folder),
            ("POST", r"/api/folders", lambda: self.create_folder(body)),
            ("PUT", r"/api/folders/([^/]+)", lambda uid: self.update_folder(uid, body)),
            ("GET", r"/api/dashboards/uid/([^/]+)", self.get_dashboard),
            ("POST", r"/api/dashboards/db", lambda: self.save_dashboard(body)),
        ]
        for verb, pattern, fn in routes:
            match = re.fullmatch(pattern, path)
            if match and verb == method:
                with self._lock:
                    return fn(*match.groups())
        return 404, {"message": "Not found"}

    def get_datasource(self, uid: str) -> tuple[int, Any]:
        if uid not in self.datasources:
            return 404, {"message": "Data source not found"}
        return 200, self.datasources[uid]

    def _store_datasource(self, body: dict[str, Any], ds_id: int, version: int) -> dict[str, Any]:
        secure = body.get("secureJsonData") or {}
        stored = {k: v for k, v in body.items() if k != "secureJsonData"}
        stored.update(id=ds_id, version=version, orgId=1, readOnly=False)
        stored["secureJsonFields"] = {k: True for k, v in secure.items() if v}
        self.datasources[stored["uid"]] = stored
        self.secrets[stored["uid"]] = dict(secure)
        return stored

    def create_datasource(self, body: dict[str, Any]) -> tuple[int, Any]:
        if not body.get("name") or not body.get("type"):
            return 400, {"message": "bad request data"}
        if body.get("uid") in self.datasources or any(
            d["name"] == body["name"] for d in self.datasources.values()
        ):
            return 409, {"message": "data source with the same name already exists"}
        stored = self._store_datasource(body, self.next_id(), 1)
        return 200, {
            "datasource": stored,
            "id": stored["id"],
            "message": "Datasource added",
            "name": stored["name"],
        }

    def update_datasource(self, uid: str, body: dict[str, Any]) -> tuple[int, Any]:
        if uid not in self.datasources:
            return 404, {"message": "Data source not found"}
        old = self.datasources[uid]
        stored = self._store_datasource({**body, "uid": uid}, old["id"], old["version"] + 1)
        return 200, {
            "datasource": stored,
            "id": stored["id"],
            "message": "Datasource updated",
            "name": stored["name"],
        }

    def get_folder(self, uid: str) -> tuple[int, Any]:
        if uid not in self.folders:
            return 404, {"message": "folder not found", "status": "not-found"}
        return 200, self.folders[uid]

    def create_folder(self, body: dict[str, Any]) -> tuple[int, Any]:
        uid = body.get("uid") or f"f{self._ids + 1}"
        if uid in self.folders or any(
            f["title"] == body.get("title") for f in self.folders.values()
        ):
            return 409, {"message": "a folder with the same name already exists"}
        folder = {
            "id": self.next_id(),
            "uid": uid,
            "title": body["title"],
            "url": f"/dashboards/f/{uid}/",
            "version": 1,
            "hasAcl": False,
        }
        self.folders[uid] = folder
        return 200, folder

    def update_folder(self, uid: str, body: dict[str, Any]) -> tuple[int, Any]:
        if uid not in self.folders:
            return 404, {"message": "folder not found", "status": "not-found"}
        folder = self.folders[uid]
        if not body.get("overwrite") and body.get("version") != folder["version"]:
            return 412, {
                "message": "the folder has been changed by someone else",
                "status": "version-mismatch",
            }
        folder.update(title=body.get("title", folder["title"]), version=folder["version"] + 1)
        return 200, folder

    def get_dashboard(self, uid: str) -> tuple[int, Any]:
        if uid not in self.dashboards:
            return 404, {"message": "Dashboard not found"}
        entry = self.dashboards[uid]
        folder = self.folders.get(entry["folderUid"], {})
        meta = {
            "slug": uid,
            "url": f"/d/{uid}/{uid}",
            "folderUid": entry["folderUid"],
            "folderTitle": folder.get("title", "General"),
            "version": entry["dashboard"]["version"],
        }
        answer = {"dashboard": copy.deepcopy(entry["dashboard"]), "meta": meta}
        if self.after_get_dashboard is not None:
            self.after_get_dashboard(uid)
        return 200, answer

    def save_dashboard(self, body: dict[str, Any]) -> tuple[int, Any]:
        dash = copy.deepcopy(body.get("dashboard") or {})
        if not dash.get("title"):
            return 400, {"message": "Dashboard title cannot be empty"}
        folder_uid = body.get("folderUid") or ""
        if folder_uid and folder_uid not in self.folders:
            return 400, {"message": "folder not found"}
        uid = dash.get("uid") or f"d{self._ids + 1}"
        existing = self.dashboards.get(uid)
        if existing is not None and not body.get("overwrite"):
            if dash.get("version") != existing["dashboard"]["version"]:
                return 412, {
                    "message": "The dashboard has been changed by someone else",
                    "status": "version-mismatch",
                }
        elif existing is None and dash.get("id"):
            return 404, {"message": "Dashboard not found", "status": "not-found"}
        dash["uid"] = uid
        dash["id"] = existing["dashboard"]["id"] if existing else self.next_id()
        dash["version"] = existing["dashboard"]["version"] + 1 if existing else 1
        self.dashboards[uid] = {"dashboard": dash, "folderUid": folder_uid}
        return 200, {
            "id": dash["id"],
            "uid": uid,
            "url": f"/d/{uid}/{uid}",
            "status": "success",
            "version": dash["version"],
            "slug": uid,
        }


def _handler(stub: GrafanaStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            stub.requests.append((self.command, path))
            if (
                path.startswith("/api/")
                and self.headers.get("Authorization") != f"Bearer {stub.token}"
            ):
                status, body = (
                    401,
                    {
                        "message": "Invalid API key",
                        "messageId": "api-keys.invalid",
                        "statusCode": 401,
                    },
                )
            else:
                try:
                    status, body = stub.route(self.command, path, json.loads(raw) if raw else None)
                except (ValueError, KeyError, TypeError) as exc:
                    status, body = 400, {"message": f"bad request data: {exc}"}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

    return Handler
