"""JSON routes for the account, chats, messages and contacts.

Everything is read from the local store on request (it is small and local; decrypting a
conversation takes milliseconds), so the browser never holds a second source of truth: it
reloads what an event names.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from baat.client.core import NotConnected
from baat.client.sdk import Client
from baat.client.store import Contact
from baat.crypto import safety_number
from baat.web.jsonapi import ApiError, api, body_of, ok, qr_svg, runtime_of, text_field
from baat.web.runtime import message_json, messages_json

MAX_TEXT = 16_000  # characters; the encrypted envelope must stay well under 64 KiB
MIN_PASSPHRASE = 8


# -- account -------------------------------------------------------------------------------


@api
async def state(request: Request) -> Response:
    return ok(runtime_of(request).describe())


def _passphrase(request: Request, body: dict[str, Any]) -> str:
    env = runtime_of(request).env_passphrase
    if env is not None and not body.get("passphrase"):
        return env
    value = text_field(body, "passphrase", limit=1024)
    return value


@api
async def register(request: Request) -> Response:
    runtime = runtime_of(request)
    body = await body_of(request)
    server_url = text_field(body, "server_url", limit=500).strip().rstrip("/")
    if not server_url.startswith(("http://", "https://")):
        raise ApiError(400, "invalid_server_url", "the server URL starts with http:// or https://")
    username = text_field(body, "username", limit=64).strip()
    passphrase = _passphrase(request, body)
    if len(passphrase) < MIN_PASSPHRASE:
        raise ApiError(
            400,
            "passphrase_too_short",
            f"use a passphrase of at least {MIN_PASSPHRASE} characters",
        )
    await runtime.register(server_url, username, passphrase)
    from baat.web.privacy_api import remember_policy_at_registration

    await remember_policy_at_registration(runtime)
    return ok(runtime.describe(), status=201)


@api
async def unlock(request: Request) -> Response:
    runtime = runtime_of(request)
    body = await body_of(request)
    await runtime.unlock(_passphrase(request, body))
    return ok(runtime.describe())


@api
async def reconnect(request: Request) -> Response:
    runtime = runtime_of(request)
    await body_of(request)
    runtime.need_client()
    runtime.poke()
    return ok(runtime.describe())


# -- chats and messages --------------------------------------------------------------------


def _contacts(client: Client) -> dict[str, Contact]:
    return {c.account_id: c for c in client.store.contacts()}


@api
async def chats(request: Request) -> Response:
    runtime = runtime_of(request)
    client = runtime.need_client()
    contacts = _contacts(client)
    rows: dict[str, dict[str, Any]] = {}
    for m in client.store.messages():  # ordered by time: the last one seen is the newest
        row = rows.setdefault(
            m.chat, {"chat": m.chat, "username": m.body.get("peer"), "unread": 0, "held": 0}
        )
        row["unread"] += m.status == "new"
        row["held"] += m.status == "held"
        row["last"] = message_json(m)
    for aid, c in contacts.items():
        row = rows.setdefault(aid, {"chat": aid, "unread": 0, "held": 0, "last": None})
        row.update(
            username=c.username,
            verified=c.verified,
            identity_changed=c.identity_changed,
            name_doubt=runtime.doubts.get(aid),
        )
    for row in rows.values():
        row["timer"] = client.features.timer(row["chat"])
        # An imported chat mapped to no contact keeps its own "wa:" id (client.importing):
        # nobody to write to, so the page shows it read-only.
        row["read_only"] = row["chat"].startswith("wa:")
    out = sorted(
        rows.values(),
        key=lambda r: (-(r["last"]["sent_at"] if r.get("last") else 0), str(r["username"])),
    )
    return ok({"chats": out})


@api
async def messages(request: Request) -> Response:
    """One chat's messages (``?chat=ID``), or every message (for the browser's search)."""
    client = runtime_of(request).need_client()
    chat = request.query_params.get("chat") or None
    return ok({"messages": messages_json(client.store.messages(chat=chat))})


@api
async def send(request: Request) -> Response:
    runtime = runtime_of(request)
    body = await body_of(request)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "invalid_request", "the message is empty")
    if len(text) > MAX_TEXT:
        raise ApiError(400, "too_long", f"a message holds at most {MAX_TEXT} characters")
    to = text_field(body, "to", limit=64)
    chat = body.get("chat") if isinstance(body.get("chat"), str) else None
    message_id, status = await runtime.send(chat, to, text)
    return ok({"id": message_id, "status": status})


@api
async def lookup(request: Request) -> Response:
    """Start a chat: check the name on the server, answer its account id."""
    client = runtime_of(request).need_client()
    body = await body_of(request)
    name = text_field(body, "username", limit=64).strip().casefold()
    try:
        account_id, canonical, _ = await client.lookup(name)
    except NotConnected:
        # Offline, a known contact can still be written to (the message waits).
        known = client.store.contact_by_name(name)
        if known is None:
            raise
        return ok({"chat": known.account_id, "username": known.username})
    if account_id == client.info.account_id:
        raise ApiError(400, "self", "that is you: pick someone else to talk to")
    return ok({"chat": account_id, "username": canonical})


MAX_SEEN = 1000  # message ids in one "seen" call


def seen_ids(body: dict[str, Any]) -> set[str]:
    """The ``ids`` of a "seen" call: the messages that were on screen.

    Raises:
        ApiError: ``invalid_request`` when ``ids`` is missing or not a list of strings.
    """
    ids = body.get("ids")
    if not isinstance(ids, list) or len(ids) > MAX_SEEN or not all(isinstance(i, str) for i in ids):
        raise ApiError(
            400, "invalid_request", f"ids: a list of at most {MAX_SEEN} message ids seen on screen"
        )
    return set(ids)


async def mark_seen(request: Request, chat: str) -> Response:
    """Only the messages the page saw on screen become read (``ids``): a message that
    arrived while the chat was scrolled away, hidden or unfocused stays "delivered" for its
    sender until the person actually sees it (docs/WEB.md, "Read means seen")."""
    runtime = runtime_of(request)
    client = runtime.need_client()
    ids = seen_ids(await body_of(request))
    fresh = [m for m in client.store.messages(chat=chat, status="new") if m.message_id in ids]
    # Read receipts go out at once (unless switched off): the sender's ticks turn now.
    client.features.mark_read(fresh)
    if fresh:
        await runtime.send_receipts(client)
    return ok({"seen": len(fresh)})


@api
async def seen(request: Request) -> Response:
    """Messages of a 1:1 chat were on screen: they become seen."""
    return await mark_seen(request, request.path_params["chat"])


# -- contacts and safety numbers -----------------------------------------------------------


def _contact(client: Client, chat: str) -> Contact:
    contact = _contacts(client).get(chat)
    if contact is None:
        raise ApiError(
            404, "unknown_contact", "not a contact yet: exchange a message to compare keys"
        )
    return contact


@api
async def contact(request: Request) -> Response:
    runtime = runtime_of(request)
    client = runtime.need_client()
    c = _contact(client, request.path_params["chat"])
    held = len(client.store.messages(chat=c.account_id, status="held"))
    return ok(
        {
            "chat": c.account_id,
            "username": c.username,
            "verified": c.verified,
            "identity_changed": c.identity_changed,
            "held": held,
            "name_doubt": runtime.doubts.get(c.account_id),
            "safety_number": client.safety_number(c),
            "me": client.info.username,
        }
    )


@api
async def contact_qr(request: Request) -> Response:
    """The safety number's QR payload as SVG, drawn here so no script library is needed."""
    client = runtime_of(request).need_client()
    c = _contact(client, request.path_params["chat"])
    number = safety_number(
        client.info.account_id, client.identity.identity_key, c.account_id, c.identity_key
    )
    return qr_svg(number.qr_payload(), f"Safety number QR code with {c.username}")


@api
async def verify(request: Request) -> Response:
    runtime = runtime_of(request)
    client = runtime.need_client()
    body = await body_of(request)
    c = _contact(client, request.path_params["chat"])
    number = text_field(body, "number", limit=200)
    named = client.store.contact_by_name(c.username)
    if named is None or named.account_id != c.account_id:
        # The SDK verifies by name; with two contacts of one name it could pick the other.
        raise ApiError(409, "ambiguous_name", f"two contacts are named {c.username!r}")
    matched = client.verify(c.username, number)
    if matched:
        # Held messages are released: every tab reloads the conversation.
        runtime.hub.publish({"type": "contact", "chat": c.account_id})
    return ok({"verified": matched})


def routes() -> list[BaseRoute]:
    return [
        Route("/api/state", state, methods=["GET"]),
        Route("/api/register", register, methods=["POST"]),
        Route("/api/unlock", unlock, methods=["POST"]),
        Route("/api/reconnect", reconnect, methods=["POST"]),
        Route("/api/chats", chats, methods=["GET"]),
        Route("/api/messages", messages, methods=["GET"]),
        Route("/api/send", send, methods=["POST"]),
        Route("/api/lookup", lookup, methods=["POST"]),
        Route("/api/chats/{chat}/seen", seen, methods=["POST"]),
        Route("/api/contacts/{chat}", contact, methods=["GET"]),
        Route("/api/contacts/{chat}/qr.svg", contact_qr, methods=["GET"]),
        Route("/api/contacts/{chat}/verify", verify, methods=["POST"]),
    ]
