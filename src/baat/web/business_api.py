"""JSON routes for chats with business accounts (docs/BUSINESS.md §3): the disclosure card,
accepting it (a consent with a signed receipt, collected "web") and withdrawing it.

``GET /api/business/{chat}`` answers ``{"business": false}`` for a person, else the card
(``baat.client.business.Disclosure.to_json``) with ``"business": true``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from baat.client.business import NotABusiness
from baat.client.sdk import Client
from baat.web.jsonapi import ApiError, api, body_of, ok, runtime_of, text_field


def _username(client: Client, chat: str, given: str | None) -> str:
    with client.store.transaction() as tx:
        contact = client.store.contact(tx, chat)
    if contact is not None:
        return contact.username
    if given:
        return given
    raise ApiError(404, "unknown_contact", "no such chat")


@api
async def card(request: Request) -> Response:
    client = runtime_of(request).need_client()
    chat = request.path_params["chat"]
    name = _username(client, chat, request.query_params.get("to"))
    try:
        shown = await client.business.disclosure_of(chat, name)
    except NotABusiness:
        return ok({"business": False})
    return ok({"business": True, **shown.to_json()})


@api
async def accept(request: Request) -> Response:
    runtime = runtime_of(request)
    client = runtime.need_client()
    body = await body_of(request)
    chat = request.path_params["chat"]
    name = _username(client, chat, text_field(body, "to", limit=64))
    shown = await client.business.accept(name, method="web")
    runtime.hub.publish({"type": "changed", "chat": chat})
    return ok({"business": True, **shown.to_json()})


@api
async def withdraw(request: Request) -> Response:
    runtime = runtime_of(request)
    client = runtime.need_client()
    body = await body_of(request)
    chat = request.path_params["chat"]
    name = _username(client, chat, text_field(body, "to", limit=64))
    receipt = await client.business.withdraw(name, method="web")
    shown = await client.business.disclosure_of(chat, name)
    return ok({"business": True, **shown.to_json(), "withdrawal": receipt})


def routes() -> list[BaseRoute]:
    return [
        Route("/api/business/{chat}", card, methods=["GET"]),
        Route("/api/business/{chat}/accept", accept, methods=["POST"]),
        Route("/api/business/{chat}/withdraw", withdraw, methods=["POST"]),
    ]
