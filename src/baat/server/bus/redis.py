"""The Redis bus: presence keys with expiry, one pub/sub channel per node.

Presence: ``<prefix>:presence:<account>:<device>`` = node id, expiring after
``PRESENCE_TTL_S`` unless the node refreshes it, so a crashed node's devices stop counting
as connected within that time. Delivery: ``PUBLISH <prefix>:node:<node id>`` with a batch of
``messages``; ``<prefix>:nodes`` reaches every node. The prefix (``baat:<region>`` from the
server) keeps deployments that share one Redis apart. Redis keeps nothing the database
does not also have: if it restarts or is unreachable, delivery falls back to the database
drain and the nodes reconnect by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from baat.server.bus.base import (
    PRESENCE_TTL_S,
    BusUnavailable,
    DeviceKey,
    Handler,
    RecoveryHandler,
)
from baat.server.bus.messages import NodeMessage, decode_batch, encode_batch

log = logging.getLogger("baat.bus")

# Delete the key only if it still names this node (another node may have claimed it).
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


DEFAULT_PREFIX = "baat"


def _glob_escape(value: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in value)


class RedisBus:
    def __init__(
        self,
        url: str,
        node_id: str,
        presence_ttl: int = PRESENCE_TTL_S,
        *,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self.url = url
        self.node_id = node_id
        self.prefix = prefix
        self._everyone = f"{prefix}:nodes"
        self.presence_ttl = presence_ttl
        # After a Redis restart the first command on a pooled connection fails; one retry
        # on a fresh connection is what it takes.
        self._redis: aioredis.Redis = aioredis.from_url(
            url,
            socket_timeout=2,
            socket_connect_timeout=2,
            health_check_interval=5,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        self._listener: asyncio.Task[None] | None = None
        self._healthy = False
        self._release = self._redis.register_script(_RELEASE)

    def _key(self, device: DeviceKey) -> str:
        return f"{self.prefix}:presence:{device[0]}:{device[1]}"

    def _channel(self, node_id: str) -> str:
        return f"{self.prefix}:node:{node_id}"

    @property
    def healthy(self) -> bool:
        return self._healthy

    async def start(self, on_messages: Handler, on_recovered: RecoveryHandler) -> None:
        self._subscribed = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(on_messages, on_recovered))
        # Serve only once subscribed, or a forward published meanwhile would be lost. If
        # Redis is down at start, serve anyway: the database drain covers delivery.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 5)

    async def _listen(self, on_messages: Handler, on_recovered: RecoveryHandler) -> None:
        delay = 0.1
        first = True
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel(self.node_id), self._everyone)
                self._healthy = True
                self._subscribed.set()
                delay = 0.1
                if not first:
                    log.info("bus reconnected")
                    await on_recovered()
                first = False
                while True:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is None or msg.get("type") != "message":
                        continue
                    try:
                        batch = decode_batch(msg["data"])
                    except (msgspec.DecodeError, msgspec.ValidationError):
                        log.warning("dropped a malformed bus message")
                        continue
                    await on_messages(batch)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            except (RedisError, OSError) as exc:
                if self._healthy:
                    log.warning("bus lost: %s; retrying", exc)
                self._healthy = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._redis.aclose()

    async def claim(self, device: DeviceKey) -> str | None:
        try:
            previous = await self._redis.set(
                self._key(device), self.node_id, ex=self.presence_ttl, get=True
            )
        except (RedisError, OSError) as exc:
            raise BusUnavailable(str(exc)) from exc
        return _text(previous) if isinstance(previous, bytes | str) else None

    async def release(self, device: DeviceKey) -> None:
        try:
            await self._release(keys=[self._key(device)], args=[self.node_id])
        except (RedisError, OSError) as exc:
            raise BusUnavailable(str(exc)) from exc

    async def locate(self, devices: list[DeviceKey]) -> dict[DeviceKey, str]:
        if not devices:
            return {}
        try:
            values = await self._redis.mget([self._key(d) for d in devices])
        except (RedisError, OSError) as exc:
            raise BusUnavailable(str(exc)) from exc
        return {d: _text(v) for d, v in zip(devices, values, strict=True) if v is not None}

    async def refresh(self, devices: list[DeviceKey]) -> None:
        if not devices:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for d in devices:
                    pipe.set(self._key(d), self.node_id, ex=self.presence_ttl)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BusUnavailable(str(exc)) from exc

    async def forget(self, account_id: str) -> int:
        # Account ids are urlsafe base64 with a region prefix; escape anyway, a glob
        # character would widen the match.
        pattern = f"{self.prefix}:presence:{_glob_escape(account_id)}:*"
        try:
            keys = [k async for k in self._redis.scan_iter(match=pattern, count=500)]
            return int(await self._redis.delete(*keys)) if keys else 0
        except (RedisError, OSError) as exc:
            raise BusUnavailable(str(exc)) from exc

    async def publish(self, node_id: str, messages: list[NodeMessage]) -> None:
        await self._publish(self._channel(node_id), messages)

    async def broadcast(self, messages: list[NodeMessage]) -> None:
        await self._publish(self._everyone, messages)

    async def _publish(self, channel: str, messages: list[NodeMessage]) -> None:
        try:
            await self._redis.publish(channel, encode_batch(messages))
        except (RedisError, OSError) as exc:
            raise BusUnavailable(str(exc)) from exc
