"""Liveness, readiness and health, for supervisors and load balancers (docs/DEPLOY.md).

- ``/livez``: 200 whenever the event loop answers. It checks nothing else on purpose: a
  supervisor restarts a process that fails it, and restarting cures no database outage.
- ``/readyz``: 200 only when (1) the database answers a query within ``PROBE_TIMEOUT_S``,
  (2) its schema is this code's (migrations done), (3) the bus is connected and (4) the
  writer's last pass succeeded; 503 otherwise, naming the checks that failed. A balancer
  sends no new connections to a node that is not ready.
- ``/healthz``: the summary it always was (``status`` ``ok`` or ``degraded``, version,
  protocol, node, region, bus); degraded is the opposite of ready, and answers 503.

The database probe runs at most once per ``PROBE_CACHE_S`` whatever the number of
balancers asking: concurrent requests share one probe, so health checks never compete with
the writer for SQLite's single connection.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from baat import __version__
from baat.proto import PROTOCOL_VERSION
from baat.server.storage.schema import schema_version
from baat.server.upgrade import LATEST

if TYPE_CHECKING:
    from baat.server.state import ServerState

PROBE_TIMEOUT_S = 3.0
PROBE_CACHE_S = 1.0


@dataclass
class Probe:
    """The last database probe: ``None`` when it answered with this code's schema, else
    what was wrong."""

    database: str | None = "not probed yet"
    schema: str | None = None
    at: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


async def _probe(request: Request) -> Probe:
    app_state = request.app.state
    probe: Probe | None = getattr(app_state, "health_probe", None)
    if probe is None:
        probe = app_state.health_probe = Probe()
    state: ServerState = app_state.server
    async with probe.lock:
        if time.monotonic() - probe.at < PROBE_CACHE_S:
            return probe
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                async with state.store.engine.connect() as conn:
                    version = (
                        await conn.execute(select(func.max(schema_version.c.version)))
                    ).scalar()
            probe.database = None
            current = int(version or 0)
            probe.schema = (
                None if current == LATEST else f"at version {current}, this code needs {LATEST}"
            )
        except TimeoutError:
            probe.database = f"no answer within {PROBE_TIMEOUT_S:g} s"
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            probe.database = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        probe.at = time.monotonic()
        return probe


async def checks(request: Request) -> dict[str, str]:
    """Each readiness check: ``"ok"`` or what is wrong."""
    probe = await _probe(request)
    state: ServerState = request.app.state.server
    bus = state.router.bus
    writer = state.router.storage_error
    return {
        "database": probe.database or "ok",
        "schema": "ok" if probe.database else probe.schema or "ok",
        "bus": "ok" if bus is not None and bus.healthy else "down",
        "writer": writer or "ok",
    }


async def livez(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    found = await checks(request)
    ready = all(v == "ok" for v in found.values())
    return JSONResponse({"ready": ready, "checks": found}, status_code=200 if ready else 503)


async def healthz(request: Request) -> Response:
    state: ServerState = request.app.state.server
    found = await checks(request)
    degraded = any(v != "ok" for v in found.values())
    body = {
        "status": "degraded" if degraded else "ok",
        "version": __version__,
        "protocol": PROTOCOL_VERSION,
        "node": state.config.node_id,
        "region": state.config.region,
    }
    storage_error = state.router.storage_error or (
        found["database"] if found["database"] != "ok" else None
    )
    if storage_error:
        body["storage_error"] = storage_error
    body["bus"] = found["bus"]
    return JSONResponse(body, status_code=503 if degraded else 200)


def routes() -> list[Route]:
    return [Route("/livez", livez), Route("/readyz", readyz), Route("/healthz", healthz)]
