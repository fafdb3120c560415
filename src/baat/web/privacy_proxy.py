"""Every call the web app makes to the server's privacy API, in one place.

The contract is ``docs/PRIVACY.md`` and ``baat.server.privacy.http``: ``GET /v1/policy``,
``GET /v1/consents``, ``POST``/``DELETE /v1/consents/{purpose}``, ``GET /v1/me/export``,
``DELETE /v1/me``. Authenticated calls carry the device's bearer credentials, which never
reach the browser: the browser talks to this process, this process to the server.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from baat.contract import DeviceCredentials

TIMEOUT = 20.0


class ServerError(Exception):
    """The server refused (its error code and status) or could not be reached
    (``not_connected``, status 502)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class PrivacyProxy:
    def __init__(self, server_url: str, credentials: DeviceCredentials | None = None) -> None:
        self.server_url = server_url.rstrip("/")
        self.credentials = credentials

    @property
    def notice_url(self) -> str:
        """The server's human-readable notice, for a link in the UI."""
        return self.server_url + "/privacy"

    async def policy(self) -> dict[str, Any]:
        return await self._call("GET", "/v1/policy", auth=False)

    async def keys(self) -> dict[str, Any]:
        """The server's published signing keys (receipts and ledger heads)."""
        return await self._call("GET", "/.well-known/baat/keys", auth=False)

    async def consents(self) -> dict[str, Any]:
        return await self._call("GET", "/v1/consents")

    async def grant(self, purpose: str) -> dict[str, Any]:
        return await self._call("POST", f"/v1/consents/{quote(purpose, safe='')}")

    async def withdraw(self, purpose: str) -> dict[str, Any]:
        return await self._call("DELETE", f"/v1/consents/{quote(purpose, safe='')}")

    async def export(self) -> dict[str, Any]:
        return await self._call("GET", "/v1/me/export")

    async def delete_account(self) -> dict[str, Any]:
        return await self._call("DELETE", "/v1/me")

    async def _call(self, method: str, path: str, *, auth: bool = True) -> dict[str, Any]:
        # Consent records name how consent was collected (``baat.server.privacy.receipt_fields``).
        headers = {"accept": "application/json", "baat-collection-method": "web"}
        if auth:
            if self.credentials is None:
                raise ServerError(409, "locked", "unlock the profile first")
            headers["authorization"] = self.credentials.header()
        try:
            async with httpx.AsyncClient(base_url=self.server_url, timeout=TIMEOUT) as http:
                r = await http.request(method, path, headers=headers)
        except httpx.HTTPError as exc:
            raise ServerError(502, "not_connected", f"cannot reach the server: {exc}") from exc
        try:
            body = r.json()
        except ValueError:
            body = None
        if r.is_error or not isinstance(body, dict):
            err = body.get("error") if isinstance(body, dict) else None
            if isinstance(err, dict):
                raise ServerError(r.status_code, str(err.get("code")), str(err.get("message", "")))
            # A server without the privacy layer answers 404 or 405 without our shape.
            raise ServerError(r.status_code, "http_error", f"the server answered {r.status_code}")
        return body
