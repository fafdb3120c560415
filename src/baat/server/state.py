"""What every route and session of one server process shares, and how HTTP calls prove who
they are.

A module of its own, imported by ``app.py`` (the wiring) and by every route module, so that
the routes are leaves: none imports the wiring back (docs/ARCHITECTURE.md, "Layers").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request

from baat.contract import BadCredentials, DeviceCredentials, parse_header
from baat.server.admission import Admission
from baat.server.auth import check_token
from baat.server.bundles import DrainLimiter
from baat.server.config import ServerConfig
from baat.server.delivery import Router
from baat.server.link_relay import LinkRelay
from baat.server.privacy.service import PrivacyService
from baat.server.regions.links import Regions
from baat.server.storage.sql import SqlStore, today

if TYPE_CHECKING:
    from baat.server.sealed import SealedGate


@dataclass
class ServerState:
    config: ServerConfig
    store: SqlStore
    router: Router
    privacy: PrivacyService | None = None
    regions: Regions | None = None
    prekey_drain: DrainLimiter = field(default_factory=DrainLimiter)
    link_relay: LinkRelay = field(default_factory=LinkRelay)
    # Sealed sender (server/sealed.py): certificates and the access check.
    sealed: SealedGate | None = None
    _seen: dict[str, int] = field(default_factory=dict)
    admission: Admission = field(init=False)

    def __post_init__(self) -> None:
        self.admission = Admission.from_config(self.config)

    async def touch(self, account_id: str) -> None:
        """Record the day of last connection (a day, never a time; written once a day)."""
        day = today()
        if self._seen.get(account_id) != day:
            self._seen[account_id] = day
            await self.store.touch_last_seen(account_id, day)


async def authenticate(request: Request) -> DeviceCredentials:
    """Check the bearer token of an HTTP request.

    Raises:
        BadCredentials: missing, malformed or wrong.
    """
    creds = parse_header(request.headers.get("authorization"))
    state: ServerState = request.app.state.server
    device = await state.store.device(creds.account_id, creds.device_id)
    if device is None or not check_token(creds.token, device.auth_token_hash):
        raise BadCredentials("unknown device or wrong token")
    return creds
