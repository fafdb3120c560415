"""JSON routes of the privacy screen: consents with receipts, what the server holds, the
policy and what changed in it, downloading everything, deleting the account.

Which policy the person has seen is kept as the whole document in the profile directory
(``policy-seen.json``; the notice is public, so it needs no encryption). When the server
publishes a new version, the diff between the two documents is what the screen shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from baat.client.ledger_watch import LedgerWatch
from baat.web.jsonapi import ApiError, api, body_of, ok, runtime_of, text_field
from baat.web.privacy_proxy import PrivacyProxy, ServerError
from baat.web.runtime import SEEN_POLICY_FILE, Runtime, message_json


def _proxy(runtime: Runtime) -> PrivacyProxy:
    client = runtime.need_client()
    return PrivacyProxy(client.info.server_url, client.credentials)


def _ledger_watch(runtime: Runtime, proxy: PrivacyProxy) -> LedgerWatch:
    """The newest ledger head and receipts this profile saw (shared with the CLI)."""
    return LedgerWatch.for_profile(runtime.profile, proxy.server_url)


# -- which policy version the person has seen ----------------------------------------------


def _load_seen(runtime: Runtime) -> dict[str, Any] | None:
    path = runtime.profile / SEEN_POLICY_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and "sha256" in doc else None


def _save_seen(runtime: Runtime, doc: dict[str, Any]) -> None:
    path = runtime.profile / SEEN_POLICY_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


async def remember_policy_at_registration(runtime: Runtime) -> None:
    """The onboarding screen links the notice: that is the version the person joined under.
    Best effort: a server without the privacy API yet simply has no version to remember."""
    with contextlib.suppress(ServerError, OSError):
        _save_seen(runtime, await _proxy(runtime).policy())


def _changes(seen: dict[str, Any], current: dict[str, Any]) -> dict[str, Any] | None:
    if seen.get("sha256") == current.get("sha256"):
        return None
    # Imported here: the privacy package is large and only this path needs it.
    from baat.privacy.diff import diff

    try:
        return diff(seen, current).to_json()
    except (KeyError, TypeError, ValueError):
        # An unreadable old document: still say that the policy changed.
        return {
            "old_version": seen.get("version"),
            "new_version": current.get("version"),
            "expands": True,
            "expanded_purposes": [],
            "changes": [],
        }


@api
async def overview(request: Request) -> Response:
    """Everything the privacy screen shows at first: the policy, each optional purpose
    with its plain description and state, and what changed since the version last seen."""
    runtime = runtime_of(request)
    proxy = _proxy(runtime)
    policy, consents, keys = await asyncio.gather(proxy.policy(), proxy.consents(), proxy.keys())
    seen = _load_seen(runtime)
    if seen is None:
        _save_seen(runtime, policy)
        seen = policy
    described = {p["id"]: p for p in policy.get("purposes", [])}
    purposes = []
    for c in consents.get("consents", []):
        p = described.get(c["purpose"], {})
        purposes.append(
            {
                **c,
                "description": p.get("description", ""),
                "recipients": p.get("recipients", []),
            }
        )
    watch = _ledger_watch(runtime, proxy)
    warnings = watch.check_listing(consents.get("consents", []), consents.get("ledger_head"), keys)
    watch.save()
    changes = _changes(seen, policy)
    # The server decides whose consent stopped counting (``needs_reconsent``); the diff
    # adds the purposes that are on and whose scope grew, for the person to review.
    reconsent = [c["purpose"] for c in purposes if c.get("needs_reconsent")]
    expanded = set((changes or {}).get("expanded_purposes", []))
    review = [c["purpose"] for c in purposes if c.get("effective") and c["purpose"] in expanded]
    return ok(
        {
            "policy": policy,
            "notice_url": proxy.notice_url,
            "purposes": purposes,
            "seen_version": seen.get("version"),
            "changes": changes,
            "reconsent": reconsent,
            "review": review,
            "ledger_warnings": warnings,
            "sealed": runtime.need_client().sealed.status(),
        }
    )


@api
async def sealed(request: Request) -> Response:
    """``POST {anyone: bool}``: take sealed messages from anyone, or only from contacts
    holding the profile key (docs/PRIVACY.md, "Sealed sender"). Answers the new status."""
    client = runtime_of(request).need_client()
    body = await body_of(request)
    anyone = body.get("anyone")
    if not isinstance(anyone, bool):
        raise ApiError(400, "invalid_request", "anyone must be true or false")
    client.sealed.set_anyone(anyone)
    await client.sealed.register_access()
    return ok(client.sealed.status())


@api
async def policy_seen(request: Request) -> Response:
    """The person read what changed: remember the version they were shown."""
    runtime = runtime_of(request)
    body = await body_of(request)
    sha = text_field(body, "sha256", limit=100)
    current = await _proxy(runtime).policy()
    if current.get("sha256") != sha:
        raise ApiError(409, "policy_changed", "the policy changed again: read the new changes")
    _save_seen(runtime, current)
    return ok({"seen_version": current.get("version")})


@api
async def consent(request: Request) -> Response:
    """Grant (POST) or withdraw (DELETE) one purpose; answers the signed receipt."""
    runtime = runtime_of(request)
    await body_of(request)
    purpose = request.path_params["purpose"]
    proxy = _proxy(runtime)
    if request.method == "POST":
        receipt = await proxy.grant(purpose)
    else:
        receipt = await proxy.withdraw(purpose)
    watch = _ledger_watch(runtime, proxy)
    warnings = watch.observe_receipt(receipt, await proxy.keys())
    watch.save()
    runtime.hub.publish({"type": "consents"})
    return ok(
        {**receipt, "ledger_warnings": warnings}, status=201 if request.method == "POST" else 200
    )


def _attachment(name: str) -> dict[str, str]:
    return {"content-disposition": f'attachment; filename="{name}"'}


@api
async def export(request: Request) -> Response:
    """What the server holds about me (``?download=1`` to save it as a file)."""
    data = await _proxy(runtime_of(request)).export()
    headers = _attachment("baat-server-export.json") if request.query_params.get("download") else {}
    return ok(data, headers=headers)


@api
async def download(request: Request) -> Response:
    """All my data: the server's export and this device's decrypted contacts and history."""
    runtime = runtime_of(request)
    client = runtime.need_client()
    try:
        server: dict[str, Any] | None = await _proxy(runtime).export()
        server_error = None
    except ServerError as exc:
        server, server_error = None, {"code": exc.code, "message": exc.message}
    data = {
        "format": "baat-my-data/1",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "account": {
            "username": client.info.username,
            "account_id": client.info.account_id,
            "device_id": client.info.device_id,
            "server_url": client.info.server_url,
        },
        "server": server,
        "server_error": server_error,
        "device": {
            "contacts": [
                {
                    "username": c.username,
                    "account_id": c.account_id,
                    "verified": c.verified,
                    "identity_changed": c.identity_changed,
                    "safety_number": client.safety_number(c),
                }
                for c in client.store.contacts()
            ],
            "messages": [message_json(m) for m in client.store.messages()],
        },
    }
    return ok(data, headers=_attachment("baat-my-data.json"))


@api
async def delete_account(request: Request) -> Response:
    """Erase the account on the server, then this device's keys and history."""
    runtime = runtime_of(request)
    client = runtime.need_client()
    body = await body_of(request)
    if body.get("confirm") != client.info.username:
        raise ApiError(400, "confirm", "type your username to confirm")
    result = await _proxy(runtime).delete_account()
    await runtime.forget_profile()
    return ok(result)


def routes() -> list[BaseRoute]:
    return [
        Route("/api/privacy", overview, methods=["GET"]),
        Route("/api/privacy/policy/seen", policy_seen, methods=["POST"]),
        Route("/api/privacy/consents/{purpose}", consent, methods=["POST", "DELETE"]),
        Route("/api/privacy/export", export, methods=["GET"]),
        Route("/api/privacy/sealed", sealed, methods=["POST"]),
        Route("/api/privacy/download", download, methods=["GET"]),
        Route("/api/account/delete", delete_account, methods=["POST"]),
    ]
