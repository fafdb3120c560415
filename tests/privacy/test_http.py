"""The HTTP routes, on a Starlette app wired as the server wires them."""

from __future__ import annotations

import httpx
import pytest

from baat.privacy import receipts
from baat.server.privacy.service import PrivacyService
from baat.server.storage.sql import SqlStore

from .conftest import make_user


async def test_public_routes(http: httpx.AsyncClient, service: PrivacyService) -> None:
    page = await http.get("/privacy", params={"jurisdiction": "in"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Digital Personal Data Protection Act" in page.text

    policy = await http.get("/v1/policy")
    assert policy.status_code == 200
    body = policy.json()
    assert body["version"] == service.policy.version and body["sha256"] == service.policy.sha256
    assert policy.headers["etag"] == f'"{body["sha256"]}"'
    ld = await http.get("/v1/policy", params={"format": "jsonld"})
    assert ld.headers["content-type"].startswith("application/ld+json")
    assert ld.json()["@graph"][0]["@type"] == "dpv:PrivacyNotice"

    keys = await http.get("/.well-known/baat/keys")
    assert keys.status_code == 200 and keys.json() == await service.jwks()
    assert all("d" not in k for k in keys.json()["keys"])

    report = await http.get("/v1/transparency")
    assert report.json()["format"] == "baat-transparency-report/1"
    assert (await http.get("/v1/transparency", params={"format": "md"})).text.startswith("# Baat")

    bad = await http.get("/privacy", params={"jurisdiction": "xx"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/consents"),
        ("POST", "/v1/consents/understand"),
        ("DELETE", "/v1/consents/understand"),
        ("GET", "/v1/me/export"),
        ("DELETE", "/v1/me"),
        ("PATCH", "/v1/me"),
    ],
)
async def test_user_routes_need_a_device_token(
    http: httpx.AsyncClient, store: SqlStore, method: str, path: str
) -> None:
    user = await make_user(store, "asha")
    for headers in (
        {},
        {"Authorization": "Basic x"},
        {"Authorization": f"Bearer {user.id}.1.wrong-token"},
        {"Authorization": f"Bearer {user.id}.2.{user.token}"},
        {"Authorization": f"Bearer {user.id}.x.{user.token}"},
    ):
        response = await http.request(method, path, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.json()["error"]["message"]


async def test_consent_over_http(
    http: httpx.AsyncClient, store: SqlStore, service: PrivacyService
) -> None:
    user = await make_user(store, "asha")
    listed = await http.get("/v1/consents", headers=user.auth)
    assert listed.status_code == 200
    assert not any(c["effective"] for c in listed.json()["consents"])

    granted = await http.post("/v1/consents/market", headers=user.auth)
    assert granted.status_code == 201
    receipt = granted.json()
    checked = receipts.verify(receipt["receipt"], (await http.get("/.well-known/baat/keys")).json())
    assert checked.record_id == receipt["record_id"]
    states = {
        c["purpose"]: c["effective"]
        for c in (await http.get("/v1/consents", headers=user.auth)).json()["consents"]
    }
    assert states["market"]

    withdrawn = await http.delete("/v1/consents/market", headers=user.auth)
    assert withdrawn.status_code == 200
    assert withdrawn.json()["record"]["state"].endswith("ConsentWithdrawn")

    for method, path, status, code in (
        ("DELETE", "/v1/consents/market", 409, "consent_not_given"),
        ("POST", "/v1/consents/nonsense", 404, "unknown_purpose"),
        ("POST", "/v1/consents/service", 400, "purpose_not_optional"),
    ):
        response = await http.request(method, path, headers=user.auth)
        assert response.status_code == status
        assert response.json()["error"]["code"] == code


async def test_rights_over_http(http: httpx.AsyncClient, store: SqlStore) -> None:
    user = await make_user(store, "asha")
    await make_user(store, "bilal")
    export = await http.get("/v1/me/export", headers=user.auth)
    assert export.status_code == 200 and export.json()["account_id"] == user.id

    corrected = await http.patch("/v1/me", headers=user.auth, json={"jurisdiction": "EU"})
    assert corrected.json() == {"username": "asha", "jurisdiction": "EU", "region": "eu"}
    for body, status, code in (
        ({"username": "bilal"}, 409, "username_taken"),
        ({"jurisdiction": "XX"}, 400, "unknown_jurisdiction"),
        ({"password": "x"}, 400, "invalid_correction"),
        ([1, 2], 400, "invalid_request"),
    ):
        response = await http.patch("/v1/me", headers=user.auth, json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    broken = await http.patch("/v1/me", headers=user.auth, content=b"{not json")
    assert broken.json()["error"]["code"] == "invalid_json"

    deleted = await http.delete("/v1/me", headers=user.auth)
    assert deleted.status_code == 200 and deleted.json()["deleted"]["accounts"] == 1
    after = await http.get("/v1/me/export", headers=user.auth)
    assert after.status_code == 401  # the device is gone with the account


async def test_unknown_routes_answer_in_json(store: SqlStore, service: PrivacyService) -> None:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException

    from baat.server.privacy.http import http_exception_as_json, routes

    app = Starlette(routes=routes(), exception_handlers={HTTPException: http_exception_as_json})
    app.state.store, app.state.privacy = store, service
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        missing = await c.get("/v1/nothing")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        wrong = await c.put("/v1/me")
        assert wrong.status_code == 405
        assert wrong.json()["error"]["code"] == "method_not_allowed"
