"""Wiring: storage, router, privacy and the HTTP/WebSocket routes in one Starlette app.

HTTP handlers are thin: parse, call the rule in ``accounts`` or the store, answer JSON.
Every error body is ``{"error": {"code": STABLE_CODE, "message": TEXT}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from baat.contract import BadCredentials
from baat.privacy import residency
from baat.privacy.errors import PrivacyError
from baat.privacy.policy import Policy
from baat.server import upgrade
from baat.server.accounts import RegistrationError, normalize_username, register
from baat.server.admission import AdmissionRefused
from baat.server.blobs import expire_blobs
from baat.server.blobs import routes as blob_routes
from baat.server.bundles import public_details
from baat.server.bus import Bus, LocalBus
from baat.server.bus.redis import RedisBus
from baat.server.business import routes as business_routes
from baat.server.config import ServerConfig
from baat.server.delivery import Router
from baat.server.devices import routes as device_routes
from baat.server.erasable import register_stores
from baat.server.health import routes as health_routes
from baat.server.linking import routes as link_routes
from baat.server.privacy.http import http_exception_as_json
from baat.server.privacy.http import routes as privacy_routes
from baat.server.privacy.regions import RegionGate
from baat.server.privacy.service import PrivacyService
from baat.server.quotas import SendQuotas
from baat.server.regions.links import Regions, RegionUnavailable
from baat.server.regions.nonces import SharedNonces
from baat.server.regions.routes import routes as region_routes
from baat.server.regions.signing import RegionSigner, load_private_key
from baat.server.sealed import open_gate
from baat.server.sealed_routes import routes as sealed_routes
from baat.server.state import ServerState, authenticate
from baat.server.storage.base import StorageUnavailable, UsernameTaken
from baat.server.storage.sql import SqlStore

log = logging.getLogger("baat.server")

EXPIRY_INTERVAL_S = 3600.0
COUNT_INTERVAL_S = 5.0


def error(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def create_account(request: Request) -> Response:
    state: ServerState = request.app.state.server
    try:
        body = await request.json()
    except ValueError:
        return error("invalid_request", "the body must be JSON", 400)
    regions = state.regions
    refused = _residency_refusal(state, body)
    if refused is not None:
        return refused
    taken = regions.username_taken if regions is not None else None
    host = request.client.host if request.client else None

    used: list[tuple[str, int] | None] = []

    async def admit(valid: dict[str, object]) -> None:
        used.append(await state.admission.admit_registration(state.store.engine, host, valid))

    try:
        reg = await register(state.store, body, state.config.region, taken, admit)
    except AdmissionRefused as exc:
        response = error(exc.code, exc.message, exc.status)
        response.headers.update(exc.headers)
        return response
    except RegistrationError as exc:
        return error(exc.code, exc.message, exc.status)
    except UsernameTaken:
        await state.admission.give_back(state.store.engine, used[0] if used else None)
        return error("username_taken", "that username is taken; choose another", 409)
    except RegionUnavailable as exc:
        await state.admission.give_back(state.store.engine, used[0] if used else None)
        return error("region_unavailable", f"cannot check the name in every region: {exc}", 503)
    return JSONResponse(
        {
            "account_id": reg.account_id,
            "username": reg.username,
            "device_id": reg.device_id,
            "token": reg.token,
            "region": state.config.region,
        },
        status_code=201,
    )


def _residency_refusal(state: ServerState, body: object) -> Response | None:
    """Accounts are stored only where the served notice says (privacy/residency.py): a
    jurisdiction of a linked region registers there, one of a region this deployment
    neither serves nor declares is refused, naming that region."""
    if state.privacy is None or state.privacy.residency is None or not isinstance(body, dict):
        return None
    try:
        placed = state.privacy.residency.placement(str(body.get("jurisdiction", "ZZ")))
    except KeyError:
        return None  # registration refuses an unknown jurisdiction itself
    if placed.kind == residency.LINKED:
        return JSONResponse(
            {
                "error": {
                    "code": "wrong_region",
                    "message": f"accounts of this jurisdiction are stored in region "
                    f"{placed.region!r}; register at {placed.url}",
                    "region": placed.region,
                    "server": placed.url,
                }
            },
            status_code=421,
        )
    if placed.kind == residency.REFUSED:
        return JSONResponse(
            {
                "error": {
                    "code": "region_not_served",
                    "message": f"accounts of jurisdiction {placed.jurisdiction} are stored in "
                    f"region {placed.region!r}, which this server does not serve; register "
                    f"with a deployment of region {placed.region!r}",
                    "region": placed.region,
                }
            },
            status_code=403,
        )
    return None


async def lookup_account(request: Request) -> Response:
    state: ServerState = request.app.state.server
    try:
        await authenticate(request)
    except BadCredentials as exc:
        return error("unauthorized", str(exc), 401)
    try:
        name = normalize_username(request.path_params["username"])
    except RegistrationError:
        return error("unknown_account", "no such user", 404)
    account = await state.store.account_by_username(name)
    if account is not None:
        return JSONResponse(await public_details(state.store, account))
    if state.regions is not None:
        try:
            found = await state.regions.lookup(name)
        except RegionUnavailable as exc:
            return error("region_unavailable", str(exc), 503)
        if found is not None:
            return JSONResponse(found)
    return error("unknown_account", f"no user named {name!r}", 404)


async def _storage_error_handler(request: Request, exc: Exception) -> Response:
    return error("storage_unavailable", f"storage unavailable, retry: {exc}", 503)


def create_app(config: ServerConfig) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        store = await SqlStore.open(config.db_url, migrate=False)
        await upgrade.prepare(store, auto=config.migrate)
        regions = _make_regions(config)
        router = Router(
            store,
            bus=_make_bus(config),
            regions=regions,
            ack_grace=config.ack_grace,
            fanout_hold=config.fanout_hold,
            envelopes_per_second=config.envelopes_per_second,
            envelope_burst=config.envelope_burst,
            quotas=SendQuotas(
                store.engine,
                config.max_queued_envelopes,
                config.max_queued_bytes,
                config.recipient_envelopes_per_second,
            ),
        )
        if regions is not None:
            await regions.start()
        await router.start()
        state = ServerState(config, store, router, regions=regions)
        state.privacy = await _open_privacy(store, config)
        state.sealed = open_gate(config, store)
        app.state.sealed_keys = state.sealed.keys
        register_stores(state)
        app.state.server = state
        app.state.store = store
        app.state.privacy = state.privacy
        expiry = asyncio.create_task(_expiry_loop(state))
        counts = asyncio.create_task(_count_loop(state))
        try:
            yield
        finally:
            expiry.cancel()
            counts.cancel()
            await router.stop()
            if regions is not None:
                await regions.close()
                await _flush_counts(state)
            await store.close()

    routes: list[BaseRoute] = [
        *health_routes(),
        Route("/v1/accounts", create_account, methods=["POST"]),
        Route("/v1/accounts/{username}", lookup_account),
        # /v1/ws is not an ASGI route: baat.server.transport takes the upgrade itself.
        *privacy_routes(),
        *blob_routes(),
        *device_routes(),
        *business_routes(),
        *link_routes(),
        *region_routes(),
        *sealed_routes(),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            StorageUnavailable: _storage_error_handler,
            HTTPException: http_exception_as_json,
        },
    )


def _make_bus(config: ServerConfig) -> Bus:
    if config.bus is None:
        return LocalBus(config.node_id)
    if not config.bus.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"unsupported bus URL {config.bus!r}: use redis://host:port/db")
    # Keys and channels carry the region, so that regions may share one Redis safely.
    return RedisBus(config.bus, config.node_id, prefix=f"baat:{config.region}")


def _make_regions(config: ServerConfig) -> Regions | None:
    if not config.peers:
        return None
    gate = RegionGate(Policy.current(), config.region, time.time)
    signer = RegionSigner(load_private_key(config.region_key)) if config.region_key else None
    # Several nodes share a Redis bus: they share the nonces of region requests there too.
    nonces = SharedNonces(config.bus, f"baat:{config.region}") if config.bus else None
    return Regions(config.region, config.peers, signer, config.peer_keys, gate, nonces=nonces)


async def _flush_counts(state: ServerState) -> None:
    if state.regions is None:
        return
    try:
        await state.regions.gate.flush(state.store.engine)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("region transfer counts kept for the next flush: %s", exc)


async def _count_loop(state: ServerState) -> None:
    """Write the counts of transfers between regions every few seconds."""
    while True:
        await asyncio.sleep(COUNT_INTERVAL_S)
        await _flush_counts(state)


async def _open_privacy(store: SqlStore, config: ServerConfig) -> PrivacyService:
    where = residency.Residency(
        Policy.current(), config.region, dict(config.peers), config.unserved_jurisdictions
    )
    service = await PrivacyService.open(
        store,
        data_dir=config.data_dir,
        region=config.region,
        affiliate_url=config.affiliate_url,
        support_url=config.support_url,
        policy=where.deployment_policy(),
    )
    service.residency = where
    return service


async def _expiry_loop(state: ServerState) -> None:
    """Hourly: every retention period of the inventory, through the erasure path's stores
    (privacy/erasure.py): envelopes and blobs after 30 days, recent sends after 24 hours,
    logs after a year."""
    while True:
        try:
            if state.privacy is not None:
                done = await state.privacy.run_retention(time.time())
                if any(done.values()):
                    log.info("retention: %s", done)
            else:
                removed = await state.router.expire()
                blobs = await expire_blobs(state)
                if removed or blobs:
                    log.info("expired %d undelivered envelopes and %d blobs", removed, blobs)
        except (StorageUnavailable, PrivacyError) as exc:
            log.warning("expiry skipped: %s", exc)
        except SQLAlchemyError as exc:
            log.warning("expiry failed, retried in an hour: %s", exc)
        await asyncio.sleep(EXPIRY_INTERVAL_S)
