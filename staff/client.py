"""The cloud's health-role API as the staff tool calls it: pseudonyms only, never a name or card."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import httpx

from contract.models import RESIDENT_PATTERN
from staff.errors import StaffError
from staff.roster import private_file

FOLLOWUP = re.compile(r"^f-[0-9a-f]{20}$")
_RESIDENT = re.compile(RESIDENT_PATTERN)


def load_token(path: Path) -> str:
    """A health-role bearer token from its file (chmod 600)."""
    token = private_file(path, "token file").strip()
    if not token or any(c.isspace() for c in token):
        raise StaffError(f"token file {path} must hold one token")
    return token


class HealthApi:
    """A few health-role routes over HTTP(S)."""

    def __init__(
        self, url: str, token: str, timeout: float = 30.0, verify: bool | str = True
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            verify=verify,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HealthApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            r = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise StaffError(f"the API at {self.url} cannot be reached: {exc}") from None
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise StaffError(f"the API answered {r.status_code}: {str(detail)[:200]}")
        return r.json()

    def worklist(self, status: str = "active", reason: str | None = None) -> list[dict[str, Any]]:
        params = {"status": status} | ({"reason": reason} if reason else {})
        return list(self._call("GET", "/api/v1/health/followups", params=params)["followups"])

    def contacted(self, followup: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/api/v1/health/followups/{_followup(followup)}/contacted"))

    def close_followup(self, followup: str, outcome: str) -> dict[str, Any]:
        return dict(
            self._call(
                "POST",
                f"/api/v1/health/followups/{_followup(followup)}/close",
                json={"outcome": outcome},
            )
        )

    def observations(self, resident: str, start: dt.date, end: dt.date) -> list[dict[str, Any]]:
        if not _RESIDENT.match(resident):
            raise StaffError("not a resident pseudonym")
        doc = self._call(
            "GET",
            f"/api/v1/health/residents/{resident}/observations",
            params={"start": start.isoformat(), "end": end.isoformat()},
        )
        return list(doc["observations"])

    def report(self, resident: str, end: dt.date, months: int, png: bool = False) -> bytes:
        """The resident's take-home report (HTML, or the PNG page) as the API renders it."""
        if not _RESIDENT.match(resident):
            raise StaffError("not a resident pseudonym")
        path = f"/api/v1/health/residents/{resident}/report" + (".png" if png else "")
        try:
            r = self._http.get(path, params={"end": end.isoformat(), "months": months})
        except httpx.HTTPError as exc:
            raise StaffError(f"the API at {self.url} cannot be reached: {exc}") from None
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise StaffError(f"the API answered {r.status_code}: {str(detail)[:200]}")
        return r.content


def _followup(followup: str) -> str:
    if not FOLLOWUP.match(followup):
        raise StaffError(
            "a follow-up id is f- and 20 hex digits (as `gumei health worklist` shows)"
        )
    return followup
