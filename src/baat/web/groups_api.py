"""JSON routes for groups: list, create, members, admins, rename, leave, messages.

Group changes and sends go through ``client.groups``. Its typed errors (``GroupFailure``,
``GroupError``) keep their stable codes and messages (``jsonapi.typed``), so the page can
show why an action was refused (for example ``not_admin``). This account's devices are in
``devices_api.py``; replies, reactions, edits and the rest in ``features_api.py``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from baat.client.group_messaging import GroupFailure, is_group_chat
from baat.client.groups import GroupState
from baat.client.sdk import Client
from baat.web.api import MAX_TEXT, mark_seen
from baat.web.jsonapi import ApiError, body_of, ok, runtime_of, text_field, typed
from baat.web.runtime import Runtime, message_json, messages_json

MAX_MEMBERS = 100


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
        "timer": client.features.timer(chat),
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


@typed
async def rename(request: Request) -> Response:
    runtime = runtime_of(request)
    client = runtime.need_client()
    chat = _chat_of(request)
    body = await body_of(request)
    await client.groups.rename(chat, text_field(body, "name", limit=100).strip())
    _changed(runtime, chat)
    return ok(_group_json(client, *client.groups.find(chat)))


@typed
async def promote(request: Request) -> Response:
    """Make a member an admin. Members are named as the group shows them, so no server
    lookup is needed (a member need not be a contact)."""
    runtime = runtime_of(request)
    client = runtime.need_client()
    chat = _chat_of(request)
    body = await body_of(request)
    name = text_field(body, "member", limit=64).strip().casefold()
    chat, state, meta = client.groups.find(chat)
    found = [m for m in state.members if client.groups.display(meta, m).casefold() == name]
    if not found:
        raise GroupFailure("not_member", f"{name!r} is not a member of {state.name!r}")
    await client.groups.promote(chat, found)
    _changed(runtime, chat)
    return ok(_group_json(client, *client.groups.find(chat)))


@typed
async def group_messages(request: Request) -> Response:
    client = runtime_of(request).need_client()
    chat = _chat_of(request)
    client.groups.find(chat)  # unknown_group when it is not one
    return ok({"messages": messages_json(client.store.messages(chat=chat))})


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
    runtime_of(request).need_client()
    return await mark_seen(request, _chat_of(request))


def routes() -> list[BaseRoute]:
    return [
        Route("/api/groups", groups, methods=["GET"]),
        Route("/api/groups", create, methods=["POST"]),
        Route("/api/groups/{chat}", info, methods=["GET"]),
        Route("/api/groups/{chat}/add", add, methods=["POST"]),
        Route("/api/groups/{chat}/remove", remove, methods=["POST"]),
        Route("/api/groups/{chat}/leave", leave, methods=["POST"]),
        Route("/api/groups/{chat}/rename", rename, methods=["POST"]),
        Route("/api/groups/{chat}/promote", promote, methods=["POST"]),
        Route("/api/groups/{chat}/messages", group_messages, methods=["GET"]),
        Route("/api/groups/{chat}/send", group_send, methods=["POST"]),
        Route("/api/groups/{chat}/seen", group_seen, methods=["POST"]),
    ]
