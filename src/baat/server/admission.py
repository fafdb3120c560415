"""Who may create an account or link a device, and how often (THREAT_MODEL.md, "Limits").

Registration and device linking are the two doors open to anyone without an account, so
they are where one person could lock everyone else out. The rules:

1. A request is validated first (JSON shape, key sizes, proof of possession). Only a
   valid request is charged to the limiter, so malformed floods cost their sender a 400
   each and nobody else anything. The charge comes before the name is looked up, so that
   names cannot be probed faster than accounts can be made.
2. Each client address (an IPv4 address, or the /64 an IPv6 address sits in: one host
   usually holds a whole /64) has its own window of ``per_address`` charges a minute.
3. Above that, a server-wide ceiling bounds the total; ``per_address`` is kept below it,
   so a single address can never use the whole ceiling.
4. In ``invite`` mode a valid one-time code (``baat admin invite``) is also needed; its
   check comes after the limiter, so guessing codes is rate-limited too. A code used by a
   registration whose name turns out to be taken is given back.

Registration and linking each have their own ``AddressLimiter``: a burst of sign-ups does
not stop people adding a device, and the reverse.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from baat.server.accounts import RegistrationError
from baat.server.counters import COUNTS, bump
from baat.server.invites import consume_invite, restore_invite

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from baat.server.config import ServerConfig

WINDOW_S = 60.0


def address_key(host: str | None) -> str:
    """The unit an address is limited by: IPv4 as is, IPv6 by its /64."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


class AddressLimiter:
    """Sliding one-minute windows: one per client address, and one for the whole server.

    ``charge`` is called only for requests that passed validation (rule 1 above).
    """

    def __init__(
        self,
        per_address: int,
        ceiling: int,
        *,
        window: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_address < 1 or ceiling < 1:
            raise ValueError("registration limits must be at least 1 a minute")
        # Rule 3: one address may take at most half of the ceiling (when the ceiling allows
        # more than one charge at all).
        self.per_address = min(per_address, max(1, ceiling // 2))
        self.ceiling = ceiling
        self.window = window
        self.clock = clock
        self._all: deque[float] = deque()
        self._by_address: dict[str, deque[float]] = {}

    def _expire(self, now: float) -> None:
        while self._all and now - self._all[0] >= self.window:
            self._all.popleft()
        if len(self._by_address) > 4 * self.ceiling:
            # Entries are bounded by the ceiling; drop addresses whose window emptied.
            for key in [k for k, q in self._by_address.items() if now - q[-1] >= self.window]:
                del self._by_address[key]

    def charge(self, host: str | None) -> float:
        """Charge one request to ``host``; 0.0 if allowed, else seconds until one would be.

        Nothing is charged when the answer is a refusal.
        """
        now = self.clock()
        self._expire(now)
        key = address_key(host)
        mine = self._by_address.get(key)
        if mine is not None:
            while mine and now - mine[0] >= self.window:
                mine.popleft()
            if len(mine) >= self.per_address:
                return self.window - (now - mine[0])
        if len(self._all) >= self.ceiling:
            return self.window - (now - self._all[0])
        if mine is None:
            mine = self._by_address[key] = deque()
        mine.append(now)
        self._all.append(now)
        return 0.0


class AdmissionRefused(RegistrationError):
    """Registration or linking refused by a limit or for want of an invite."""

    def __init__(self, code: str, message: str, status: int, retry_after: float = 0.0) -> None:
        super().__init__(code, message, status)
        self.retry_after = retry_after
        # Made only to be raised at a refusal: counted here for the metrics.
        bump(COUNTS.http_refusals, code)

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))} if self.retry_after else {}


@dataclass
class Admission:
    """The server's doors for newcomers: registration (open or by invite) and linking."""

    mode: str
    registrations: AddressLimiter
    links: AddressLimiter

    @classmethod
    def from_config(cls, config: ServerConfig) -> Admission:
        return cls(
            mode=config.registration,
            registrations=AddressLimiter(
                config.registrations_per_address, config.registrations_per_minute
            ),
            links=AddressLimiter(config.links_per_address, config.links_per_minute),
        )

    async def admit_registration(
        self, engine: AsyncEngine, host: str | None, body: dict[str, object]
    ) -> tuple[str, int] | None:
        """Charge a valid registration from ``host`` and, in invite mode, use its code;
        returns the code used and its expiry (for ``give_back`` if the registration then
        fails), or None in open mode.

        Raises:
            AdmissionRefused: ``registration_closed`` (403), ``rate_limited`` (429) or
                ``invite_required`` (403).
            StorageUnavailable: the invite could not be checked.
        """
        if self.mode == "closed":
            # Set by ``baat admin registration closed`` (baat.server.operator_admin).
            raise AdmissionRefused(
                "registration_closed", "this server is not registering new accounts", 403
            )
        wait = self.registrations.charge(host)
        if wait:
            raise AdmissionRefused(
                "rate_limited",
                f"too many registrations; try again in {math.ceil(wait)} s",
                429,
                wait,
            )
        if self.mode != "invite":
            return None
        code = body.get("invite")
        expires_at = await consume_invite(engine, code)
        if expires_at is None or not isinstance(code, str):
            raise AdmissionRefused(
                "invite_required",
                "this server registers new accounts by invitation only: the invite code "
                "is missing, used or expired",
                403,
            )
        return code, expires_at

    @staticmethod
    async def give_back(engine: AsyncEngine, used: tuple[str, int] | None) -> None:
        """Restore an invite whose registration failed after it was used.

        Raises:
            StorageUnavailable: the database cannot be reached.
        """
        if used is not None:
            await restore_invite(engine, *used)

    def admit_link(self, host: str | None) -> None:
        """Charge a valid device link from ``host``.

        Raises:
            AdmissionRefused: ``rate_limited`` (429).
        """
        wait = self.links.charge(host)
        if wait:
            raise AdmissionRefused(
                "rate_limited",
                f"too many new devices; try again in {math.ceil(wait)} s",
                429,
                wait,
            )
