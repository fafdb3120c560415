"""JSON routes for the everyday features of a conversation, 1:1 or group alike: replies,
reactions, edits, deletes for everyone, the read-receipt and typing switches, typing
indicators and the disappearing-message timer (``client.features``, docs/GROUPS.md §5).

The SDK's refusals keep their codes (``unknown_message``, ``not_author``, ``too_late``,
``not_member``) through ``jsonapi.typed``. Every change is announced to all open tabs as a
``changed`` event naming the chat, as the runtime does for changes that arrive.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from baat.client.core import ClientError, IdentityChanged
from baat.client.features import DELETE_WINDOW_MS, EDIT_WINDOW_MS, READ_RECEIPTS, TYPING
from baat.client.group_messaging import GroupFailure, is_group_chat
from baat.client.sdk import Client
from baat.client.store import StoredMessage
from baat.web.api import MAX_TEXT
from baat.web.jsonapi import ApiError, body_of, ok, runtime_of, text_field, typed
from baat.web.runtime import Runtime

MAX_EMOJI = 16  # characters: one emoji, possibly with modifiers
MAX_TIMER = 4 * 7 * 86400  # four weeks; the page offers 30 s to 1 week
SETTINGS = {"read_receipts": READ_RECEIPTS, "typing": TYPING}


def _changed(runtime: Runtime, chat: str, kind: str) -> None:
    runtime.hub.publish({"type": "changed", "chat": chat, "kind": kind})


def _message(client: Client, body: dict[str, Any]) -> StoredMessage:
    message_id = text_field(body, "id", limit=64)
    with client.store.transaction() as tx:
        found = client.store.find_messages(tx, message_id)
    if not found:
        raise ApiError(404, "unknown_message", f"no message {message_id!r} here")
    return found[0]


def _writable(client: Client, chat: str) -> None:
    """Can this device write into ``chat`` now? The SDK's feature calls queue whatever
    they are given; a refusal here is clearer than an incident after the fact.

    Raises:
        GroupFailure: ``unknown_group``, ``not_member``.
        IdentityChanged: the contact's safety number changed and is not compared again.
        ApiError: ``unknown_contact``.
    """
    if is_group_chat(chat):
        _, state, _ = client.groups.find(chat)
        if not state.is_member(client.info.account_id):
            raise GroupFailure("not_member", f"you are not a member of {state.name!r}")
        return
    contact = next((c for c in client.store.contacts() if c.account_id == chat), None)
    if contact is None:
        raise ApiError(404, "unknown_contact", "not a contact: send a message first")
    if contact.identity_changed:
        raise IdentityChanged(f"{contact.username}'s safety number changed; compare it first")


def _text(body: dict[str, Any]) -> str:
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "invalid_request", "the message is empty")
    if len(text) > MAX_TEXT:
        raise ApiError(400, "too_long", f"a message holds at most {MAX_TEXT} characters")
    return text


# -- replies, reactions, edits, deletes ----------------------------------------------------


@typed
async def reply(request: Request) -> Response:
    runtime = runtime_of(request)
    client = runtime.need_client()
    body = await body_of(request)
    target = _message(client, body)
    text = _text(body)
    _writable(client, target.chat)
    message_id = await client.features.reply(target.message_id, text)
    _changed(runtime, target.chat, "reply")
    return ok({"id": message_id, "chat": target.chat})


@typed
async def react(request: Request) -> Response:
    runtime = runtime_of(request)
    client = runtime.need_client()
    body = await body_of(request)
    target = _message(client, body)
    emoji = body.get("emoji", "")
    if not isinstance(emoji, str) or len(emoji) > MAX_EMOJI:
        raise ApiError(400, "invalid_request", "emoji is one emoji, or empty to take it back")
    _writable(client, target.chat)
    await client.features.react(target.message_id, emoji)
    _changed(runtime, target.chat, "reaction")
    return ok({"reacted": emoji})


@typed
async def edit(request: Request) -> Response:
    runtime = runtime_of(request)
    client = runtime.need_client()
    body = await body_of(request)
    target = _message(client, body)
    text = _text(body)
    if target.body.get("deleted"):
        raise ApiError(409, "deleted", "a deleted message cannot be edited")
    _writable(client, target.chat)
    await client.features.edit(target.message_id, text)
    _changed(runtime, target.chat, "edit")
    return ok({"edited": target.message_id})


@typed
async def delete(request: Request) -> Response:
    runtime = runtime_of(request)
    client = runtime.need_client()
    body = await body_of(request)
    target = _message(client, body)
    _writable(client, target.chat)
    await client.features.delete(target.message_id)
    _changed(runtime, target.chat, "delete")
    return ok({"deleted": target.message_id})


# -- settings and typing -------------------------------------------------------------------


def _settings(client: Client) -> dict[str, Any]:
    return {
        **{key: client.features.enabled(name) for key, name in SETTINGS.items()},
        "edit_window_ms": EDIT_WINDOW_MS,
        "delete_window_ms": DELETE_WINDOW_MS,
    }


@typed
async def settings(request: Request) -> Response:
    return ok(_settings(runtime_of(request).need_client()))


@typed
async def change_settings(request: Request) -> Response:
    runtime = runtime_of(request)
    client = runtime.need_client()
    body = await body_of(request)
    changes = {k: v for k, v in body.items() if k in SETTINGS}
    if not changes or not all(isinstance(v, bool) for v in changes.values()):
        raise ApiError(400, "invalid_request", "give read_receipts and/or typing as true or false")
    for key, value in changes.items():
        client.features.set_enabled(SETTINGS[key], value)
    runtime.hub.publish({"type": "settings"})
    return ok(_settings(client))


@typed
async def typing(request: Request) -> Response:
    """The person is typing in ``chat`` (``typing: true``) or stopped. Sent only while
    connected: an indicator queued offline would arrive long after it meant anything."""
    client = runtime_of(request).need_client()
    body = await body_of(request)
    chat = text_field(body, "chat", limit=64)
    started = body.get("typing", True)
    if not isinstance(started, bool):
        raise ApiError(400, "invalid_request", "typing is true or false")
    try:
        # A chat not writable now (no contact yet, a changed safety number, left the
        # group) gets no indicator: nothing to refuse loudly while someone types.
        _writable(client, chat)
    except (ApiError, GroupFailure, IdentityChanged):
        return ok({"sent": False})
    if not client.connected or not client.features.enabled(TYPING):
        return ok({"sent": False})
    try:
        went = await client.features.typing(chat, started)
    except ClientError:  # the connection dropped meanwhile
        return ok({"sent": False})
    # Newer SDKs say whether it went (an indicator that could not go is dropped).
    return ok({"sent": went if isinstance(went, bool) else True})


# -- disappearing messages -----------------------------------------------------------------


@typed
async def timer(request: Request) -> Response:
    client = runtime_of(request).need_client()
    return ok({"timer": client.features.timer(str(request.path_params["chat"]))})


def _names_of(client: Client, chat: str) -> dict[str, Any]:
    """The names a message in ``chat`` carries (``peer``; ``group`` for a group)."""
    if is_group_chat(chat):
        _, state, _ = client.groups.find(chat)
        return {"peer": state.name, "group": state.name}
    contact = next((c for c in client.store.contacts() if c.account_id == chat), None)
    return {"peer": contact.username} if contact is not None else {}


@typed
async def set_timer(request: Request) -> Response:
    """Messages sent into the chat from now on disappear ``seconds`` after they arrive,
    on every device of every member (0 turns it off)."""
    runtime = runtime_of(request)
    client = runtime.need_client()
    chat = str(request.path_params["chat"])
    body = await body_of(request)
    seconds = body.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 <= seconds <= MAX_TIMER:
        raise ApiError(400, "invalid_timer", f"seconds is a whole number from 0 to {MAX_TIMER}")
    _writable(client, chat)
    await client.features.set_timer(chat, seconds, _names_of(client, chat))
    _changed(runtime, chat, "timer")
    return ok({"timer": client.features.timer(chat)})


@typed
async def message_info(request: Request) -> Response:
    """ "Message info" of one of our messages: per recipient, when it was delivered and
    read (``None`` while not yet), from the receipts this device logged."""
    client = runtime_of(request).need_client()
    m = _message(client, {"id": request.path_params["id"]})
    if m.direction != "out":
        raise ApiError(400, "not_author", "message info is kept for your own messages")
    return ok(
        {
            "id": m.message_id,
            "chat": m.chat,
            "status": m.status,
            "sent_at": m.sent_at,
            "recipients": client.features.receipt_details(m),
        }
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/api/reply", reply, methods=["POST"]),
        Route("/api/messages/{id}/info", message_info, methods=["GET"]),
        Route("/api/react", react, methods=["POST"]),
        Route("/api/edit", edit, methods=["POST"]),
        Route("/api/delete", delete, methods=["POST"]),
        Route("/api/settings", settings, methods=["GET"]),
        Route("/api/settings", change_settings, methods=["POST"]),
        Route("/api/typing", typing, methods=["POST"]),
        Route("/api/chats/{chat}/timer", timer, methods=["GET"]),
        Route("/api/chats/{chat}/timer", set_timer, methods=["POST"]),
    ]
