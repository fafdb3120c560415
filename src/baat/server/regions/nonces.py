"""The nonces of signed region requests, remembered across the nodes of a region.

Each node refuses a nonce it has seen itself (``signing.RegionVerifier``); when the region
runs several nodes on a Redis bus, the nonce is also set there with ``SET NX`` for the
window a request time is accepted, so that a request recorded on its way to one node cannot
be replayed to another. If Redis cannot be reached the node's own memory still applies, and
the request is not refused for it: Redis going down costs this cross-node check only for
the time it is down, never the service (Redis keeps nothing the database needs).
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from baat.server.regions.signing import MAX_SKEW_S

log = logging.getLogger("baat.regions")


class SharedNonces:
    """``SET <prefix>:region-nonce:<region>:<nonce> NX EX 120`` on the region's Redis."""

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = prefix
        self._redis: aioredis.Redis = aioredis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2
        )

    async def first_time(self, region: str, nonce: str) -> bool:
        """False when another node of this region has already seen ``nonce`` from
        ``region``; True otherwise (also when Redis cannot be asked)."""
        key = f"{self.prefix}:region-nonce:{region}:{nonce}"
        try:
            return bool(await self._redis.set(key, b"1", nx=True, ex=2 * MAX_SKEW_S))
        except (RedisError, OSError) as exc:
            log.warning("region nonce not shared (Redis unavailable): %s", exc)
            return True

    async def close(self) -> None:
        await self._redis.aclose()
