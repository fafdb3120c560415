"""Fixtures of the privacy suite.

Every database test runs on SQLite, and on PostgreSQL when ``BAAT_TEST_POSTGRES`` names a
server (the database fixtures of ``tests/conftest.py``).
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from baat.privacy.policy import Policy
from baat.server.auth import token_hash
from baat.server.privacy.http import routes
from baat.server.privacy.service import PrivacyService
from baat.server.storage.base import Account, Device
from baat.server.storage.sql import SqlStore

DAY = 86_400
TODAY = 20_400  # 2025-11-08, in days since the epoch

# pg_url, db_url and store come from tests/conftest.py.


@dataclass
class Clock:
    now: float = TODAY * DAY + 12 * 3600

    def __call__(self) -> float:
        return self.now

    def advance(self, days: float) -> None:
        self.now += days * DAY


@pytest.fixture
def clock() -> Clock:
    return Clock()


OpenService = Callable[..., Awaitable[PrivacyService]]


@pytest.fixture
def open_service(store: SqlStore, tmp_path: Path, clock: Clock) -> OpenService:
    async def open_(
        *,
        policy: Policy | None = None,
        affiliate_url: str | None = None,
        region: str = "in",
        data_dir: Path | None = None,
    ) -> PrivacyService:
        return await PrivacyService.open(
            store,
            data_dir=data_dir or tmp_path / "data",
            region=region,
            affiliate_url=affiliate_url,
            clock=clock,
            policy=policy,
        )

    return open_


@pytest.fixture
async def service(open_service: OpenService) -> PrivacyService:
    return await open_service()


@dataclass
class User:
    account: Account
    token: str

    @property
    def id(self) -> str:
        return self.account.account_id

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.id}.1.{self.token}"}


async def make_user(
    store: SqlStore,
    name: str,
    *,
    jurisdiction: str = "IN",
    region: str | None = None,
    created_day: int = TODAY - 100,
    last_seen_day: int = TODAY,
    devices: int = 1,
    account_id: str | None = None,
) -> User:
    from baat.privacy.purposes import region_for

    account = Account(
        account_id or secrets.token_hex(16),
        name,
        region or region_for(jurisdiction),
        jurisdiction,
        created_day,
        last_seen_day,
    )
    token = secrets.token_urlsafe(16)

    def device(n: int, token: str) -> Device:
        return Device(
            account.account_id,
            n,
            secrets.token_bytes(32),
            secrets.token_bytes(32),
            secrets.token_bytes(64),
            created_day,
            token_hash(token),
        )

    await store.create_account(account, device(1, token))
    for n in range(2, devices + 1):
        from baat.server.storage.schema import devices as devices_table

        d = device(n, secrets.token_urlsafe(16))
        async with store.engine.begin() as conn:
            await conn.execute(
                devices_table.insert().values(**{k: getattr(d, k) for k in d.__slots__})
            )
    return User(account, token)


@pytest.fixture
def app(store: SqlStore, service: PrivacyService) -> Starlette:
    application = Starlette(routes=routes())
    application.state.store = store
    application.state.privacy = service
    return application


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://baat.test") as client:
        yield client


@dataclass
class Receiver:
    """A real HTTP server standing in for the affiliate."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def affiliate() -> Iterator[Receiver]:
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            receiver.received.append(json.loads(self.rfile.read(length)))
            self.send_response(receiver.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/baat"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
