"""Run the server under uvicorn (uvloop and httptools where installed)."""

from __future__ import annotations

import logging
import sys

import uvicorn

from baat.server.app import create_app
from baat.server.config import ServerConfig


def serve(config: ServerConfig) -> None:
    """Serve until SIGINT/SIGTERM; shutdown flushes every accepted envelope first."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _check_schema(config)
    app = create_app(config)
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
        http="httptools",
        ws="websockets-sansio",
        # Frames between the protocol's limit and this one get a typed error from the
        # protocol layer; only absurd ones are cut by the transport (close code 1009).
        ws_max_size=config.limits.max_frame_bytes * 4,
        # Envelopes are ciphertext: compression gains nothing and costs ~38 KiB of memory
        # per connection and CPU per frame (bench/route.py, docs/PERFORMANCE.md).
        ws_per_message_deflate=False,
        ws_ping_interval=30.0,
        ws_ping_timeout=30.0,
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
