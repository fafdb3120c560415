"""Run the server under uvicorn (uvloop and httptools where installed)."""

from __future__ import annotations

import functools
import gc
import logging
import socket
import sys

import uvicorn

from baat import __version__
from baat.server import listen, logs
from baat.server.app import create_app
from baat.server.config import ServerConfig
from baat.server.transport import (
    BodyLimit,
    ConnectionGuard,
    GuardedHttpProtocol,
    Hub,
    WebSocketProtocol,
)

log = logging.getLogger("baat.server")


def serve(
    config: ServerConfig,
    sock: socket.socket | None = None,
    metrics_sock: socket.socket | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; shutdown flushes every accepted envelope first.

    Start-up order (docs/DEPLOY.md, "Start-up and logs"): logs, then the listening socket
    (a taken port ends the process at once with status 1, before anything else is done),
    then the schema check or migration, then the application; "listening" is logged only
    once the application has started and the socket accepts connections.
    """
    if sock is None:  # called directly, not by ``baat serve`` (which binds first)
        logs.configure(config.log_level, config.log_format, config.log_interval)
        sock = listen.bind(config.host, config.port)
        if config.metrics is not None:
            metrics_sock = listen.bind(*config.metrics, what="metrics")
    where = logs.redact(config.db_url if config.db else str(config.data_dir / "baat.sqlite3"))
    log.info(
        "baat %s starting: node %s, region %s, database %s (%s), bus %s",
        __version__,
        config.node_id,
        config.region,
        logs.database_kind(config.db_url),
        where,
        logs.redact(config.bus) if config.bus else "in-process",
        extra={
            "baat": {
                "event": "starting",
                "version": __version__,
                "node": config.node_id,
                "region": config.region,
                "database": logs.database_kind(config.db_url),
            }
        },
    )
    _check_schema(config)
    inner = create_app(config)
    settings = config.transport
    # Region calls carry forwarded sends: room for a few maximal frames.
    app = BodyLimit(inner, settings.max_json_body, max(settings.max_json_body, 8 * 1024 * 1024))
    guard = ConnectionGuard(settings)
    hub = Hub(
        settings,
        guard,
        lambda: getattr(inner.state, "server", None),
        # Frames between the protocol's limit and this one get a typed error from the
        # protocol layer; only absurd ones are cut by the codec (close code 1009).
        max_message=config.limits.max_frame_bytes * 4,
    )
    if metrics_sock is not None:
        from baat.server import metrics

        metrics.install(hub, lambda: getattr(inner.state, "server", None))
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
        # Logging is baat.server.logs's: uvicorn's loggers propagate to its handler.
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    server = _Server(uv, config, metrics_sock)
    server.run(sockets=[sock])
    if not server.started:
        # The application did not start (uvicorn logged why): a supervisor must see it.
        sys.exit(3)
    sys.stdout.flush()


class _Server(uvicorn.Server):
    """uvicorn's server, announcing only once it listens and logging its shutdown."""

    def __init__(
        self, uv: uvicorn.Config, config: ServerConfig, metrics_sock: socket.socket | None
    ) -> None:
        super().__init__(uv)
        self.baat = config
        self.metrics_sock = metrics_sock

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started:
            return
        # Everything loaded so far (modules, classes, SQLAlchemy's tables, the policy) lives
        # as long as the process: keep it out of the cyclic collector's full passes, which
        # otherwise walk it all on the event loop's thread (docs/PERFORMANCE.md, "Tail
        # latency").
        gc.freeze()
        config = self.baat
        if self.metrics_sock is not None:
            from baat.server import metrics

            await metrics.serve(self.metrics_sock)
        from baat.server.upgrade import LATEST

        log.info(
            "baat server listening on http://%s:%d (WebSocket ws://%s:%d/v1/ws, schema "
            "version %d%s)",
            config.host,
            config.port,
            config.host,
            config.port,
            LATEST,
            f", metrics on http://{config.metrics[0]}:{config.metrics[1]}/metrics"
            if config.metrics
            else "",
            extra={
                "baat": {
                    "event": "listening",
                    "host": config.host,
                    "port": config.port,
                    "schema_version": LATEST,
                }
            },
        )

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        log.info(
            "baat server shutting down: closing connections, writing accepted envelopes",
            extra={"baat": {"event": "shutting_down"}},
        )
        await super().shutdown(sockets)
        log.info("baat server stopped", extra={"baat": {"event": "stopped"}})


def _check_schema(config: ServerConfig) -> None:
    """Migrate (or check) before serving, and end the process with one clear line: status 2
    for a schema this code cannot run on (a restart cannot help, docs/UPGRADE.md), 1 for a
    database that cannot be reached (a restart later may)."""
    from baat.server import upgrade
    from baat.server.storage.base import StorageUnavailable

    config.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        applied = upgrade.preflight(config.db_url, auto=config.migrate)
    except upgrade.SchemaError as exc:
        log.critical("baat serve: %s", exc, extra={"baat": {"event": "schema_refused"}})
        sys.exit(2)
    except StorageUnavailable as exc:
        log.critical(
            "baat serve: cannot reach the database: %s",
            exc,
            extra={"baat": {"event": "database_unreachable"}},
        )
        sys.exit(1)
    if applied:
        log.info(
            "migrated the database schema to version %d (applied %s)",
            applied[-1],
            ", ".join(map(str, applied)),
            extra={"baat": {"event": "migrated", "applied": applied}},
        )
