"""Request body limits, enforced while the body is read (issue 14, item 3).

Every request with a body is read here, up to its limit, before the application sees it:
the JSON endpoints get ``max_json_body`` (64 KiB by default), region-to-region calls a
limit sized for a forwarded ``Send``, and blob uploads (``PATCH /v1/blobs/{id}``) pass
through untouched because ``server/blobs.py`` streams them to disk under its own
``max_blob_bytes``. A declared ``Content-Length`` over the limit is refused before a byte
of the body is read; a chunked body is refused as soon as it crosses the limit. Memory per
request is therefore bounded by the limit, whatever the client claims or sends.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

BLOB_UPLOAD_PREFIX = "/v1/blobs/"
REGION_PREFIX = "/v1/regions/"


class BodyLimit:
    """ASGI middleware: ``413 body_too_large`` past the limit of the request's route."""

    def __init__(self, app: ASGIApp, json_limit: int, region_limit: int) -> None:
        self.app = app
        self.json_limit = json_limit
        self.region_limit = region_limit

    def limit_for(self, method: str, path: str) -> int | None:
        if method == "PATCH" and path.startswith(BLOB_UPLOAD_PREFIX):
            return None  # streamed to disk by the blob handler, under its own limit
        if path.startswith(REGION_PREFIX):
            return self.region_limit
        return self.json_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        if limit is None:
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _error(send, 400, "invalid_request", "invalid Content-Length")
                    return
                if declared > limit:
                    await _too_large(send, limit)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await _too_large(send, limit)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(send: Send, limit: int) -> None:
    await _error(send, 413, "body_too_large", f"request bodies here are limited to {limit} bytes")


async def _error(send: Send, status: int, code: str, message: str) -> None:
    body = ('{"error": {"code": "%s", "message": "%s"}}' % (code, message)).encode()  # noqa: UP031
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body is never read: the connection cannot be reused.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
