"""Nothing fails silently: retry requests for messages that cannot be decrypted
(docs/CRYPTO.md §15; WhatsApp's "retry receipts" play the same part).

1. **Receiver.** A pairwise message that no session decrypts (no session, MAC failure after
   every session was tried, a prekey that is gone) is acknowledged, reported as an
   ``undecryptable`` incident, and answered with a *retry request*: a ``Content`` of type
   ``retry`` naming the message id (``ref``) and the device that sent it (``kind``, in
   decimal: a new field would change how every ``Content`` encodes), and nothing else. It is
   encrypted to the sender's device in a fresh session, started from a fresh bundle, and
   goes to every device of the sender's account (the server takes a send only if it
   addresses all of them, docs/PROTOCOL.md); the others ignore a request that does not
   name them.
2. **Sender.** Every pairwise message sent is kept (sealed) for :data:`KEEP_MS`. On a retry
   request for one of them, the sender starts a new session to the failing device from a
   fresh bundle and re-sends the same content under the same message id (on the wire as
   ``ID~rN``, which receivers read as ``ID``, so the server's duplicate filter lets it
   through and receivers store it once). A message that was shown "delivered" or "read"
   goes back to "sent" until the recipient can read it.
3. **Bound.** At most :data:`MAX_RETRIES` re-sends per message; the next request marks it
   ``failed`` with the reason (``body["error"]``) and reports an ``undeliverable``
   incident. A receiver sends at most ``MAX_RETRIES + 1`` requests per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Final

import msgspec
from sqlalchemy import Connection, delete, func, insert, select, update

from baat.client import schema as s
from baat.client.core import ClientError, Content, Incident
from baat.client.devices import DeviceError
from baat.client.transport import TransportError

if TYPE_CHECKING:
    from baat.client.core import ClientCore


log = logging.getLogger("baat.client.retries")

MAX_RETRIES: Final = 3
KEEP_MS: Final = 7 * 86_400_000
KEEP_COUNT: Final = 2000
RETRY_TYPE: Final = "retry"


class Retries:
    """Both halves of the retry path for one client."""

    def __init__(self, client: ClientCore) -> None:
        self.client = client
        self._asked: dict[tuple[str, int, str], int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- sender: keep what was sent ---------------------------------------------------------

    def remember(self, tx: Connection, message_id: str, recipient: str, payload: bytes) -> None:
        """Keep a pairwise message just sent, sealed, so that it can be sent again."""
        c = self.client
        now = c.clock()
        t = s.resend
        tx.execute(delete(t).where(t.c.sent_at < now - KEEP_MS))
        tx.execute(delete(t).where(t.c.message_id == message_id))
        tx.execute(
            insert(t).values(
                message_id=message_id,
                recipient_account=recipient,
                payload_blob=c.store.sealer.seal(f"resend.{message_id}", payload),
                sent_at=now,
                attempts=0,
            )
        )
        extra = int(tx.scalar(select(func.count()).select_from(t)) or 0) - KEEP_COUNT
        if extra > 0:
            oldest = select(t.c.message_id).order_by(t.c.sent_at).limit(extra)
            tx.execute(delete(t).where(t.c.message_id.in_(oldest)))

    # -- receiver: ask again ---------------------------------------------------------------

    def request_soon(self, account_id: str, device_id: int, message_id: str) -> None:
        """``message_id`` from that device could not be decrypted: ask for it again."""
        key = (account_id, device_id, message_id)
        count = self._asked.get(key, 0)
        if count > MAX_RETRIES:
            return
        self._asked[key] = count + 1
        if len(self._asked) > KEEP_COUNT:
            self._asked.pop(next(iter(self._asked)))
        self._spawn(self._request(account_id, device_id, message_id))

    async def _request(self, account_id: str, device_id: int, message_id: str) -> None:
        c = self.client
        content = Content(
            v=1,
            type=RETRY_TYPE,
            sender_name=c.info.username,
            sent_at=c.clock(),
            ref=message_id,
            kind=str(device_id),
        )
        payload = msgspec.msgpack.encode(content)
        async with c._store_lock:
            devices = await c.devices.devices_of(account_id)
            if account_id == c.info.account_id:
                devices = {d: k for d, k in devices.items() if d != c.info.device_id}
            if device_id not in devices:
                return  # not a device we trust: it gets nothing, not even a request
            envelopes = await c.devices.encrypt_account(
                account_id, devices, payload, fresh={device_id}
            )
        await c.send_envelopes(f"retry-{time.time_ns():x}", envelopes)

    # -- sender: answer a request ------------------------------------------------------------

    def on_request(self, tx: Connection, account_id: str, device_id: int, content: Content) -> None:
        """A retry request arrived, decrypted, from trusted device ``device_id`` of
        ``account_id`` (the device that could not read the message)."""
        c = self.client
        if content.kind != str(c.info.device_id):
            return  # addressed to another of our devices
        t = s.resend
        row = tx.execute(select(t).where(t.c.message_id == content.ref)).first()
        if row is None:
            return  # not ours, or kept no longer: nothing to send again
        if account_id != row.recipient_account and account_id != c.info.account_id:
            return  # only a recipient of the message may ask for it
        messages = [m for m in c.store.find_messages(tx, content.ref) if m.direction == "out"]
        if row.attempts >= MAX_RETRIES:
            reason = (
                f"not delivered: a device of the recipient could not decrypt it after "
                f"{MAX_RETRIES} new sessions"
            )
            for m in messages:
                c.store.update_message(
                    tx,
                    dataclasses.replace(m, status="failed", body={**m.body, "error": reason}),
                )
            tx.execute(delete(t).where(t.c.message_id == content.ref))
            c._incident(Incident("undeliverable", row.recipient_account, reason))
            self._notify(content.ref, "failed")
            return
        attempts = int(row.attempts) + 1
        tx.execute(update(t).where(t.c.message_id == content.ref).values(attempts=attempts))
        for m in messages:
            if m.status in ("delivered", "read"):
                c.store.update_message(tx, dataclasses.replace(m, status="sent"))
        payload = c.store.sealer.open(f"resend.{content.ref}", row.payload_blob)
        self._spawn(
            self._resend(
                content.ref, str(row.recipient_account), payload, (account_id, device_id), attempts
            )
        )

    async def _resend(
        self,
        message_id: str,
        recipient: str,
        payload: bytes,
        asker: tuple[str, int],
        attempt: int,
    ) -> None:
        c = self.client
        async with c._store_lock:
            envelopes = await c.devices.encrypt([recipient], payload, chat=recipient, fresh={asker})
        result = await c.send_envelopes(f"{message_id}~r{attempt}", envelopes)
        log.info("re-sent %s (attempt %d): %s", message_id, attempt, result.results)

    def _notify(self, message_id: str, status: str) -> None:
        for listener in self.client.status_listeners:
            listener(message_id, status)

    def _spawn(self, job: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._guard(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guard(self, job: object) -> None:
        from baat.crypto import CryptoError

        try:
            await job  # type: ignore[misc]
        except (ClientError, DeviceError, TransportError, CryptoError) as exc:
            log.warning("retry path: %s", exc)

    async def wait(self, timeout: float = 30.0) -> None:
        """Let the requests and re-sends under way finish (a short-lived command)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
