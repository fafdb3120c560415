"""Run the server under uvicorn (uvloop and httptools where installed)."""

from __future__ import annotations

import functools
import logging
import sys

import uvicorn

from baat.server.app import create_app
from baat.server.config import ServerConfig
from baat.server.transport import (
    BodyLimit,
    ConnectionGuard,
    GuardedHttpProtocol,
    Hub,
    WebSocketProtocol,
)


def serve(config: ServerConfig) -> None:
    """Serve until SIGINT/SIGTERM; shutdown flushes every accepted envelope first."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _check_schema(config)
    inner = create_app(config)
    settings = config.transport
    # Region calls carry forwarded sends: room for a few maximal frames.
    app = BodyLimit(inner, settings.max_json_body, max(settings.max_json_body, 8 * 1024 * 1024))
    hub = Hub(
        settings,
        ConnectionGuard(settings),
        lambda: getattr(inner.state, "server", None),
        # Frames between the protocol's limit and this one get a typed error from the
        # protocol layer; only absurd ones are cut by the codec (close code 1009).
        max_message=config.limits.max_frame_bytes * 4,
    )
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:  # pragma: no cover
        loop = "asyncio"
    uv = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        loop=loop,
        # uvicorn parses HTTP; the upgrade to /v1/ws is taken over by GuardedHttpProtocol,
        # which hands the socket to WebSocketProtocol (never instantiated by uvicorn, but
        # naming it makes uvicorn pass upgrades on). docs/ARCHITECTURE.md says why.
        http=functools.partial(GuardedHttpProtocol, hub=hub),  # type: ignore[arg-type]
        ws=WebSocketProtocol,
        timeout_keep_alive=int(settings.keep_alive_timeout) or 1,
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    where = config.db_url if config.db else str(config.data_dir / "baat.sqlite3")
    print(
        f"baat server listening on http://{config.host}:{config.port} "
        f"(WebSocket ws://{config.host}:{config.port}/v1/ws, storage {_redact(where)})",
        flush=True,
    )
    uvicorn.Server(uv).run()
    sys.stdout.flush()


def _check_schema(config: ServerConfig) -> None:
    """Migrate (or check) before binding, and end the process with one clear line: status 2
    for a schema this code cannot run on (a restart cannot help, docs/UPGRADE.md), 1 for a
    database that cannot be reached (a restart later may)."""
    from baat.server import upgrade
    from baat.server.storage.base import StorageUnavailable

    config.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        applied = upgrade.preflight(config.db_url, auto=config.migrate)
    except upgrade.SchemaError as exc:
        print(f"baat serve: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    except StorageUnavailable as exc:
        print(f"baat serve: cannot reach the database: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    if applied:
        print(f"baat serve: migrated the database schema to version {applied[-1]}", flush=True)


def _redact(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}@{host}"
    return url
