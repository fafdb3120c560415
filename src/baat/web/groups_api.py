"""JSON routes for groups, this account's devices, and reactions.

Group changes and sends go through ``client.groups``; devices through ``client.devices``;
reactions through ``client.features``. Their typed errors (``GroupFailure``, ``GroupError``,
``DeviceError``, ``FeatureError``) keep their stable codes and messages here, so the page
can show why an action was refused (for example ``not_admin``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from baat.client.devices import DeviceError
from baat.client.features import FeatureError
from baat.client.group_messaging import GroupFailure, is_group_chat
from baat.client.groups import GroupError, GroupState
from baat.client.sdk import Client
from baat.web.api import MAX_TEXT
from baat.web.jsonapi import ApiError, api, body_of, ok, runtime_of, text_field
from baat.web.runtime import Runtime, message_json

Handler = Callable[[Request], Awaitable[Response]]
MAX_MEMBERS = 100
MAX_EMOJI = 16  # characters: one emoji, possibly with modifiers


def typed(handler: Handler) -> Handler:
    """``api`` plus the SDK's group, device and feature errors with their own codes."""

    @wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except (GroupFailure, GroupError, FeatureError) as exc:
            status = 404 if exc.code in ("unknown_group", "unknown_message") else 400
            if exc.code in ("not_admin", "not_member", "not_author"):
                status = 403
            raise ApiError(status, exc.code, str(exc)) from exc
        except DeviceError as exc:
            status = 404 if exc.code == "unknown_device" else 400
            raise ApiError(status, exc.code, str(exc)) from exc

    return api(wrapped)


def _usernames(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name, [])
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, "invalid_request", f"{name} is a list of usernames")
    names = [v.strip().casefold() for v in value if v.strip()]
    if len(names) > MAX_MEMBERS:
        raise ApiError(400, "too_many", f"at most {MAX_MEMBERS} members at once")
    return names


def _group_json(
    client: Client, chat: str, state: GroupState, meta: dict[str, Any]
) -> dict[str, Any]:
    me = client.info.account_id
    return {
        "id": chat,
        "name": state.name,
        "members": [
            {
                "name": client.groups.display(meta, m),
                "admin": state.is_admin(m),
                "you": m == me,
            }
            for m in state.members
        ],
        "admins": [client.groups.display(meta, a) for a in state.admins],
        "version": state.version,
        "member": state.is_member(me),
        "admin": state.is_admin(me),
    }


def _chat_of(request: Request) -> str:
    chat = str(request.path_params["chat"])
    if not is_group_chat(chat):
        raise ApiError(404, "unknown_group", "not a group chat")
    return chat


def _changed(runtime: Runtime, chat: str) -> None:
    runtime.hub.publish({"type": "group", "chat": chat})


# -- groups --------------------------------------------------------------------------------


@typed
async def groups(request: Request) -> Response:
    client = runtime_of(request).need_client()
    rows = []
    for chat, state, meta in client.groups.all():
        row = _group_json(client, chat, state, meta)
        msgs = client.store.messages(chat=chat)
        row["last"] = message_json(msgs[-1]) if msgs else None
        row["unread"] = sum(m.status == "new" for m in msgs)
        rows.append(row)
    return ok({"groups": rows})


@typed
async def create(request: Request) -> Response:
    runtime = runtime_of(request)
    client = runtime.need_client()
    body = await body_of(request)
    name = text_field(body, "name", limit=100).strip()
    members = _usernames(body, "members")
    if client.info.username.casefold() in members:
        members.remove(client.info.username.casefold())
    chat = await client.groups.create(name, members)
    _changed(runtime, chat)
    return ok(_group_json(client, *client.groups.find(chat)), status=201)


@typed
async def info(request: Request) -> Response:
    client = runtime_of(request).need_client()
    return ok(_group_json(client, *client.groups.find(_chat_of(request))))


@typed
async def add(request: Request) -> Response:
    runtime = runtime_of(request)
    client = runtime.need_client()
    chat = _chat_of(request)
    body = await body_of(request)
    members = _usernames(body, "members")
    if not members:
        raise ApiError(400, "invalid_request", "name at least one member to add")
    await client.groups.add(chat, members)
    _changed(runtime, chat)
    return ok(_group_json(client, *client.groups.find(chat)))


@typed
async def remove(request: Request) -> Response:
    runtime = runtime_of(request)
    client = runtime.need_client()
    chat = _chat_of(request)
    body = await body_of(request)
    await client.groups.remove(chat, text_field(body, "member", limit=64).strip())
    _changed(runtime, chat)
    return ok(_group_json(client, *client.groups.find(chat)))


@typed
async def leave(request: Request) -> Response:
    runtime = runtime_of(request)
    client = runtime.need_client()
    chat = _chat_of(request)
    await body_of(request)
    await client.groups.leave(chat)
    _changed(runtime, chat)
    return ok(_group_json(client, *client.groups.find(chat)))


def _message(m: Any) -> dict[str, Any]:
    out = message_json(m)
    reactions = m.body.get("reactions")
    out["reactions"] = reactions if isinstance(reactions, dict) and out["text"] is not None else {}
    return out


@typed
async def group_messages(request: Request) -> Response:
    client = runtime_of(request).need_client()
    chat = _chat_of(request)
    client.groups.find(chat)  # unknown_group when it is not one
    return ok({"messages": [_message(m) for m in client.store.messages(chat=chat)]})


@typed
async def group_send(request: Request) -> Response:
    client = runtime_of(request).need_client()
    chat = _chat_of(request)
    body = await body_of(request)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "invalid_request", "the message is empty")
    if len(text) > MAX_TEXT:
        raise ApiError(400, "too_long", f"a message holds at most {MAX_TEXT} characters")
    message_id = await client.groups.send_text(chat, text)
    return ok({"id": message_id})


@typed
async def group_seen(request: Request) -> Response:
    client = runtime_of(request).need_client()
    chat = _chat_of(request)
    await body_of(request)
    fresh = [m.row_id for m in client.store.messages(chat=chat, status="new")]
    client.store.mark_seen(fresh)
    return ok({"seen": len(fresh)})


# -- reactions -----------------------------------------------------------------------------


@typed
async def react(request: Request) -> Response:
    runtime = runtime_of(request)
    client = runtime.need_client()
    body = await body_of(request)
    message_id = text_field(body, "id", limit=64)
    emoji = body.get("emoji", "")
    if not isinstance(emoji, str) or len(emoji) > MAX_EMOJI:
        raise ApiError(400, "invalid_request", "emoji is one emoji, or empty to take it back")
    await client.features.react(message_id, emoji)
    found = [m for m in client.store.messages() if m.message_id == message_id]
    if found:
        runtime.hub.publish({"type": "contact", "chat": found[0].chat})
        runtime.hub.publish({"type": "group", "chat": found[0].chat})
    return ok({"reacted": emoji})


# -- devices -------------------------------------------------------------------------------


@typed
async def devices(request: Request) -> Response:
    client = runtime_of(request).need_client()
    found = await client.devices.server_devices()
    with client.store.transaction() as tx:
        known = client.devices.known(tx, client.info.account_id) or {}
    rows = [
        {
            "device_id": int(d["device_id"]),
            "created_day": d.get("created_day"),
            "primary": bool(d.get("primary")),
            "current": bool(d.get("current")),
            "listed": int(d["device_id"]) in known,
        }
        for d in found
    ]
    return ok({"devices": rows, "this_is_primary": client.devices.is_primary})


@typed
async def remove_device(request: Request) -> Response:
    client = runtime_of(request).need_client()
    await body_of(request)
    try:
        device_id = int(request.path_params["device"])
    except ValueError as exc:
        raise ApiError(404, "unknown_device", "no such device") from exc
    if device_id == client.info.device_id:
        raise ApiError(400, "current_device", "this is the device you are using")
    await client.devices.remove(device_id)
    return ok({"removed": device_id})


@typed
async def link_code(request: Request) -> Response:
    client = runtime_of(request).need_client()
    await body_of(request)
    code, expires_at = await client.devices.create_link_code()
    return ok({"code": code.to_text(), "expires_at": expires_at}, status=201)


def routes() -> list[BaseRoute]:
    return [
        Route("/api/groups", groups, methods=["GET"]),
        Route("/api/groups", create, methods=["POST"]),
        Route("/api/groups/{chat}", info, methods=["GET"]),
        Route("/api/groups/{chat}/add", add, methods=["POST"]),
        Route("/api/groups/{chat}/remove", remove, methods=["POST"]),
        Route("/api/groups/{chat}/leave", leave, methods=["POST"]),
        Route("/api/groups/{chat}/messages", group_messages, methods=["GET"]),
        Route("/api/groups/{chat}/send", group_send, methods=["POST"]),
        Route("/api/groups/{chat}/seen", group_seen, methods=["POST"]),
        Route("/api/react", react, methods=["POST"]),
        Route("/api/devices", devices, methods=["GET"]),
        Route("/api/devices/link-code", link_code, methods=["POST"]),
        Route("/api/devices/{device}/remove", remove_device, methods=["POST"]),
    ]
