"""``Client``: register a device, keep prekeys topped up, send and receive end-to-end
encrypted messages, store them locally, acknowledge only what is stored.

The errors it raises (``ClientError`` and its tree) are drawn in ``core.py``.

Attachments (``send_file``, fetching what arrives) are in ``media.py``; several devices per
account in ``devices.py``; groups in ``group_messaging.py``; replies, reactions, edits,
deletes, receipts, typing and disappearing messages in ``features.py``; ``expiry.py``
deletes disappearing messages on time while the client is open.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
from sqlalchemy import Connection, update

from baat.client import schema as s
from baat.client.business import Businesses
from baat.client.closing import sdk_errors
from baat.client.core import (
    RECIPIENT_REFUSALS,
    UNCONFIRMED,
    ClientError,
    Content,
    IdentityChanged,
    Incident,
    NotConnected,
    RegistrationFailed,
    SendRefused,
    UnknownContact,
    _content_decoder,
)
from baat.client.devices import DeviceDirectory, DeviceError
from baat.client.expiry import ExpiryTimer
from baat.client.features import Features
from baat.client.group_messaging import GroupMessaging, is_group_chat, is_group_message
from baat.client.media import Attachments, Progress
from baat.client.peers import check_sender, name_of_new_sender, split_send
from baat.client.prekeys import PrekeyKeeper
from baat.client.retries import RETRY_TYPE, Retries
from baat.client.sealed import SealedSender
from baat.client.store import Contact, ProfileInfo, Store, StoredMessage
from baat.client.transport import Transport, TransportError
from baat.contract import DeviceCredentials, registration_message
from baat.crypto import (
    PREKEY_KIND_CURVE_ONE_TIME,
    PREKEY_KIND_CURVE_SIGNED,
    PREKEY_KIND_KEM_LAST_RESORT,
    PREKEY_KIND_KEM_ONE_TIME,
    CryptoError,
    DecryptionError,
    DuplicateMessage,
    IdentityKeyPair,
    PrivatePrekey,
    RecordDecryption,
    SessionRecord,
    SessionState,
    compare_safety_numbers,
    generate_prekeys,
    record_decrypt,
    safety_number,
)
from baat.crypto.sealed import InvalidCertificate
from baat.proto import (
    Ack,
    Deliver,
    Error,
    OutgoingEnvelope,
    PrekeyRecord,
    PrekeysLow,
    QueueDrained,
    Send,
    SendResult,
    UploadPrekeys,
)

log = logging.getLogger("baat.client")

ONE_TIME_CURVE_BATCH = 40
ONE_TIME_KEM_BATCH = 10
REFILL_BELOW = 10


def _now_ms() -> int:
    """Message timestamps are milliseconds; the crypto layer takes whole seconds."""
    return int(time.time() * 1000)


class Client:
    def __init__(self, store: Store, identity: IdentityKeyPair, creds: dict[str, Any]) -> None:
        self.store = store
        self.identity = identity
        self.creds = creds
        assert store.info is not None
        self.info: ProfileInfo = store.info
        self.transport: Transport | None = None
        self.removed = False  # the server closed this device with device_removed
        self.incidents: list[Incident] = []
        # Signed prekeys made at registration, published on the first connect.
        self._pending_signed: list[Any] = []
        # Names of users looked up but not yet contacts (known once a bundle arrives).
        self._names: dict[str, str] = {}
        # One task reads every frame; senders wait on futures keyed by message id.
        self._pump_task: asyncio.Task[None] | None = None
        self._results: dict[str, asyncio.Future[SendResult]] = {}
        self._drained = asyncio.Event()
        self._store_lock = asyncio.Lock()
        self._flush_lock = asyncio.Lock()
        self.message_listeners: list[Callable[[StoredMessage], None]] = []
        # Stored since the last receive() returned, including while connect() ran.
        self._unreturned: list[StoredMessage] = []
        # Whether messages are kept for the next ``sync()`` to return. A long-running app
        # that takes them from ``message_listeners`` and never calls ``sync()`` turns it off,
        # or they would pile up for as long as it runs.
        self.keep_for_sync = True
        self.status_listeners: list[Callable[[str, str], None]] = []
        self.incident_listeners: list[Callable[[Incident], None]] = []
        self.attachment_listeners: list[Callable[[StoredMessage], None]] = []
        self.attachments = Attachments(self)
        # Milliseconds; tests inject a clock to expire disappearing messages.
        self.clock: Callable[[], int] = _now_ms
        self.devices = DeviceDirectory(self)
        self.groups = GroupMessaging(self)
        self.features = Features(self)
        # (chat, message ids) of disappearing messages just deleted, so views can refresh.
        self.expiry_listeners: list[Callable[[str, list[str]], None]] = []
        # Runs from the first connect() (or expiry.start()) until close(), connected or not.
        self.expiry = ExpiryTimer(self)
        # Signed-prekey rotation and one-time refills while connected (prekeys.py).
        self.prekeys = PrekeyKeeper(self)
        # Retry requests for what could not be decrypted, both ways (retries.py).
        self.retries = Retries(self)
        # Business peers: disclosure, acceptance, named devices (business.py).
        self.business = Businesses(self)
        # Sealed sender: profile key, certificate, sealing and opening (sealed.py).
        self.sealed = SealedSender(self)

    # -- set-up ----------------------------------------------------------------------------

    @classmethod
    async def register(
        cls,
        profile: Path,
        passphrase: str,
        server_url: str,
        username: str,
        jurisdiction: str = "ZZ",
        invite: str | None = None,
    ) -> Client:
        """Create a profile, register the account and device, upload prekeys. ``invite``
        is the one-time code a server that registers by invitation asks for.

        Raises:
            RegistrationFailed: the server refused (e.g. code ``username_taken``).
            NotConnected: the server is unreachable.
            ProfileExists: the directory already has a profile.
        """
        identity = IdentityKeyPair.generate()
        name = username.strip().casefold()
        body = {
            "username": username,
            "identity_key": _b64(identity.identity_key),
            "identity_dh_key": _b64(identity.identity_dh_key),
            "identity_dh_sig": _b64(identity.identity_dh_sig),
            "proof": _b64(
                identity.sign(
                    registration_message(name, identity.identity_key, identity.identity_dh_key)
                )
            ),
            "jurisdiction": jurisdiction,
        }
        if invite is not None:
            body["invite"] = invite
        try:
            async with httpx.AsyncClient(base_url=server_url, timeout=15) as http:
                r = await http.post("/v1/accounts", json=body)
            home = _home_region_server(r)
            if home is not None:
                # Accounts are stored only in their home region: that region's deployment
                # becomes this profile's server (docs/DEPLOY.md, "Regions").
                server_url = home
                async with httpx.AsyncClient(base_url=server_url, timeout=15) as http:
                    r = await http.post("/v1/accounts", json=body)
        except httpx.HTTPError as exc:
            raise NotConnected(f"cannot reach {server_url}: {exc}") from exc
        if r.status_code != 201:
            err = _error_of(r)
            raise RegistrationFailed(err[0], err[1])
        reg = r.json()
        from baat.client.store import Store

        store = Store.create(profile, passphrase)
        creds = {"token": reg["token"]}
        store.save_identity(identity.to_bytes(), creds)
        store.set_info(
            ProfileInfo(server_url, reg["username"], reg["account_id"], reg["device_id"])
        )
        return await cls.finish_registration(store, identity, creds)

    @classmethod
    async def finish_registration(
        cls, store: Store, identity: IdentityKeyPair, creds: dict[str, Any]
    ) -> Client:
        """Make the signed prekeys of a device just registered (published on connect)."""
        client = cls(store, identity, creds)
        with store.transaction() as tx:
            signed = generate_prekeys(identity, PREKEY_KIND_CURVE_SIGNED, [1])
            signed += generate_prekeys(identity, PREKEY_KIND_KEM_LAST_RESORT, [1])
            store.put_prekeys(
                tx, [(p.private.kind, p.private.key_id, p.private.to_bytes()) for p in signed]
            )
        client._pending_signed = [p.public for p in signed]
        return client

    @classmethod
    def open(cls, profile: Path, passphrase: str) -> Client:
        """Open an existing profile.

        Raises:
            NoProfile, WrongPassphrase: from the store.
        """
        store = Store.open(profile, passphrase)
        ident, creds = store.load_identity()
        return cls(store, IdentityKeyPair.from_bytes(ident), creds)

    @property
    def credentials(self) -> DeviceCredentials:
        return DeviceCredentials(self.info.account_id, self.info.device_id, self.creds["token"])

    async def connect(self) -> None:
        """Connect, authenticate, and top up one-time prekeys.

        Raises:
            NotConnected: the server is unreachable or refused the device.
        """
        try:
            self.transport = await Transport.connect(
                self.info.server_url, self.info.account_id, self.info.device_id, self.identity.sign
            )
        except TransportError as exc:
            if exc.code == "auth_failed":
                raise NotConnected(
                    "the server does not know this device: it was removed from its account "
                    "(or the account was deleted)",
                    exc.code,
                ) from exc
            raise NotConnected(str(exc), exc.code) from exc
        self._drained = asyncio.Event()
        self._pump_task = asyncio.create_task(self._pump(self.transport))
        self.expiry.start()
        try:
            await self._top_up()
            await self.prekeys.rotate_if_due()
        except TransportError as exc:
            raise NotConnected(str(exc), exc.code) from exc
        self.prekeys.start()
        await self.sealed.prepare()
        # The primary keeps its signed device list in step with the server (a device that
        # removed itself, or the first list after registering), docs/GROUPS.md §2.
        try:
            await self.devices.republish_if_shrunk()
        except (ClientError, DeviceError) as exc:
            log.warning("device list not published: %s", exc)

    async def disconnect(self) -> None:
        await self.attachments.stop()
        await self.prekeys.stop()
        await self.retries.stop()
        await self.sealed.close()
        if self.transport is not None:
            await self.transport.close()
            self.transport = None
        if self._pump_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
            self._pump_task = None

    async def close(self) -> None:
        await self.expiry.stop()
        await self.disconnect()
        self.store.close()

    @property
    def connected(self) -> bool:
        return self.transport is not None and not self.transport.closed.is_set()

    async def _pump(self, t: Transport) -> None:
        """Dispatch every pushed frame: deliveries, send results, the end of the queue."""
        while True:
            frame = await t.next_frame()
            if frame is None:
                break
            if isinstance(frame, Deliver):
                try:
                    stored = await self._handle_deliver(frame)
                except Exception as exc:  # one bad envelope must not stop receiving
                    log.exception("delivery %s failed", frame.message_id)
                    self._incident(Incident("undecryptable", frame.sender_account, str(exc)))
                    continue
                if stored is not None:
                    if self.keep_for_sync:
                        self._unreturned.append(stored)
                    for listener in self.message_listeners:
                        listener(stored)
            elif isinstance(frame, SendResult):
                fut = self._results.pop(frame.message_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(frame)
            elif isinstance(frame, QueueDrained):
                self._drained.set()
            elif isinstance(frame, PrekeysLow):
                self.prekeys.refill_soon()
            elif isinstance(frame, Error):
                fut = self._results.pop(frame.message_id, None) if frame.message_id else None
                if fut is not None and not fut.done():
                    fut.set_exception(SendRefused(frame.code, frame.message, frame.retry_after_ms))
                elif frame.code == "device_removed":
                    self.removed = True
                    self._incident(
                        Incident(
                            "device_removed",
                            self.info.account_id,
                            "this device was removed from the account; it receives nothing "
                            "more (register it again with a new link code)",
                        )
                    )
                else:
                    log.warning("server error %s: %s", frame.code, frame.message)
        reason = f"connection lost: {t.close_reason or 'closed'}"
        for fut in self._results.values():
            if not fut.done():
                fut.set_exception(NotConnected(reason))
        self._results.clear()
        self._drained.set()

    def _incident(self, incident: Incident) -> None:
        self.incidents.append(incident)
        for listener in self.incident_listeners:
            listener(incident)

    def _need(self) -> Transport:
        if self.transport is None or self.transport.closed.is_set():
            raise NotConnected("not connected to the server")
        return self.transport

    async def _top_up(self) -> None:
        t = self._need()
        signed = [
            PrekeyRecord(p.kind, p.key_id, p.public_key, p.signature) for p in self._pending_signed
        ]
        status = await t.upload_prekeys(UploadPrekeys(0, signed, []))
        self._pending_signed = []
        curve = status.counts.get(PREKEY_KIND_CURVE_ONE_TIME, 0)
        kem = status.counts.get(PREKEY_KIND_KEM_ONE_TIME, 0)
        if curve >= REFILL_BELOW and kem >= REFILL_BELOW:
            return
        with self.store.transaction() as tx:
            ids = self.store.allocate_prekey_ids(tx, ONE_TIME_CURVE_BATCH + ONE_TIME_KEM_BATCH)
            pairs = []
            if curve < REFILL_BELOW:
                pairs += generate_prekeys(
                    self.identity, PREKEY_KIND_CURVE_ONE_TIME, ids[:ONE_TIME_CURVE_BATCH]
                )
            if kem < REFILL_BELOW:
                pairs += generate_prekeys(
                    self.identity, PREKEY_KIND_KEM_ONE_TIME, ids[ONE_TIME_CURVE_BATCH:]
                )
            self.store.put_prekeys(
                tx, [(p.private.kind, p.private.key_id, p.private.to_bytes()) for p in pairs]
            )
        # Stored privately first, published second: a crash in between wastes ids, never
        # publishes a key whose private half is lost.
        records = [
            PrekeyRecord(p.public.kind, p.public.key_id, p.public.public_key, p.public.signature)
            for p in pairs
        ]
        await t.upload_prekeys(UploadPrekeys(0, [], records))

    # -- contacts ------------------------------------------------------------------------

    async def lookup(self, username: str) -> tuple[str, str, list[int]]:
        """(account id, canonical username, device ids) of a user.

        Raises:
            UnknownContact: no such user.
            NotConnected: the server is unreachable.
        """
        try:
            async with httpx.AsyncClient(base_url=self.info.server_url, timeout=15) as http:
                r = await http.get(
                    f"/v1/accounts/{username}",
                    headers={"authorization": self.credentials.header()},
                )
        except httpx.HTTPError as exc:
            raise NotConnected(f"cannot reach the server: {exc}") from exc
        if r.status_code == 404:
            raise UnknownContact(f"no user named {username!r}")
        if r.status_code != 200:
            raise NotConnected(_error_of(r)[1])
        body = r.json()
        return body["account_id"], body["username"], list(body["devices"])

    def safety_number(self, contact: Contact) -> str:
        """60 digits both people compare (crypto.fingerprint)."""
        return safety_number(
            self.info.account_id,
            self.identity.identity_key,
            contact.account_id,
            contact.identity_key,
        ).display()

    def verify(self, username: str, number: str) -> bool:
        """Mark a contact verified if ``number`` matches; accept a changed identity too.

        Raises:
            UnknownContact: not a contact.
        """
        contact = self.store.contact_by_name(username)
        if contact is None:
            raise UnknownContact(f"{username!r} is not a contact")
        if not compare_safety_numbers(self.safety_number(contact), number):
            return False
        with self.store.transaction() as tx:
            self.store.put_contact(
                tx,
                Contact(contact.account_id, contact.username, contact.identity_key, True, False),
            )
            # The accepted key signs the account's device list from now on: fetch it again.
            self.devices.forget(tx, contact.account_id)
            # Messages held while the identity was in doubt are now shown.
            tx.execute(
                update(s.messages)
                .where(s.messages.c.chat == contact.account_id, s.messages.c.status == "held")
                .values(status="new")
            )
        return True

    # -- sending -------------------------------------------------------------------------

    async def send_text(self, username: str, text: str, reply_to: str = "") -> str:
        """Store the message and queue it; it is sent now if connected, else on next connect.
        ``reply_to`` quotes a message id of the same chat.

        Raises:
            UnknownContact: no such user (needs the server once per new contact).
            IdentityChanged: the contact's identity changed and is not verified again.
            NotConnected: the connection closed under the send (e.g. the server restarts);
                the message stays in the outbox and goes on the next connection.
        """
        account_id, canonical = await self.resolve(username)
        # A business: refused before its disclosure is accepted or after it is withdrawn;
        # held in the outbox while a changed disclosure waits (docs/BUSINESS.md §3).
        held = await self.business.before_send(account_id)
        content = Content(
            v=1, type="text", sender_name=self.info.username, sent_at=0, text=text, ref=reply_to
        )
        message_id = await self.features.post(account_id, content, {"peer": canonical})
        if held:
            with self.store.transaction() as tx:
                self.store.set_status(tx, message_id, "held")
        return message_id

    async def resolve(self, username: str) -> tuple[str, str]:
        """(account id, canonical name) of a contact or a user the server knows.

        Raises:
            UnknownContact, IdentityChanged: as ``send_text``.
        """
        name = username.strip().casefold()
        contact = self.store.contact_by_name(name)
        if contact is None:
            account_id, canonical, _ = await self.lookup(name)
            self._names[account_id] = canonical
            return account_id, canonical
        if contact.identity_changed:
            raise IdentityChanged(
                f"{contact.username}'s safety number changed; compare it and run 'baat verify'"
            )
        return contact.account_id, contact.username

    async def send_file(
        self,
        username: str,
        path: Path,
        caption: str | None = None,
        progress: Progress | None = None,
    ) -> str:
        """Upload ``path`` encrypted and send it with ``caption``; see ``Attachments.send``."""
        return await self.attachments.send(username, path, caption, progress)

    async def flush_outbox(self) -> list[SendResult]:
        """Encrypt and send everything queued, oldest first, one message at a time (so
        that per-recipient order holds). A refused send stays queued for the next flush.

        Raises:
            NotConnected: not connected, or the connection dropped meanwhile.
        """
        results = []
        # Chats whose recipient's queue is full (or rate exceeded): their later messages
        # wait behind the refused one, so that per-recipient order holds; other chats go on.
        held: set[str] = set()
        async with self._flush_lock:
            for message_id, recipient, payload in self.store.outbox():
                self._need()
                if recipient in held:
                    continue
                try:
                    result = await sdk_errors(self._send_item(message_id, recipient, payload))
                except IdentityChanged as exc:
                    self._incident(Incident("identity_changed", recipient, str(exc)))
                    continue
                except UnknownContact as exc:
                    self._incident(Incident("undeliverable", recipient, str(exc)))
                    continue
                except SendRefused as exc:
                    self._incident(Incident("send_refused", recipient, str(exc)))
                    if exc.code in RECIPIENT_REFUSALS:
                        held.add(recipient)
                        continue
                    break
                status = self._settle(message_id, result)
                if status != "failed" and not is_group_chat(recipient):
                    with self.store.transaction() as tx:
                        self.retries.remember(tx, message_id, recipient, payload)
                for listener in self.status_listeners:
                    listener(message_id, status)
                results.append(result)
        return results

    async def _send_item(self, message_id: str, recipient: str, payload: bytes) -> SendResult:
        """One queued message: pairwise to a person's devices (and ours), or once with the
        group's sender key. ``stale_devices`` refreshes the device lists of the accounts
        concerned, drops sessions of removed devices and retries once (docs/PROTOCOL.md)."""
        for attempt in (0, 1):
            try:
                if is_group_chat(recipient):
                    return await self.groups.send(message_id, recipient, payload)
                async with self._store_lock:
                    envelopes = await self._encrypt_for(recipient, payload)
                return await self.send_envelopes(message_id, envelopes)
            except SendRefused as exc:
                if exc.code != "stale_devices" or attempt:
                    raise
                accounts = self.groups.members_of(recipient) if is_group_chat(recipient) else []
                for account_id in dict.fromkeys([*accounts, recipient, self.info.account_id]):
                    if not is_group_chat(account_id):
                        await self.devices.refresh(account_id)
        raise AssertionError("unreachable")

    async def send_envelopes(
        self, message_id: str, envelopes: list[OutgoingEnvelope]
    ) -> SendResult:
        """Send one message and return its result. A message too large for one frame
        (a group's fan-out) goes in several ``Send``s, each addressing whole accounts (the
        server checks every device of an account per send), with ids ``ID~n`` that
        receivers read as ``ID``.

        Raises:
            SendRefused: the server refused it (e.g. ``stale_devices``).
            NotConnected: no result within 30 s, or the connection dropped.
        """
        parts = split_send(envelopes)
        if len(parts) == 1:
            return await self._send_one(message_id, envelopes)
        results = []
        for i, part in enumerate(parts):
            results += (await self._send_one(f"{message_id}~{i}", part)).results
        return SendResult(message_id, results)

    async def _send_one(self, message_id: str, envelopes: list[OutgoingEnvelope]) -> SendResult:
        self._need()
        return await self.sealed.send(message_id, envelopes, self._send_plain)

    async def _send_plain(self, message_id: str, envelopes: list[OutgoingEnvelope]) -> SendResult:
        """An authenticated ``Send`` (the fallback of a sealed one)."""
        t = self._need()
        fut: asyncio.Future[SendResult] = asyncio.get_running_loop().create_future()
        self._results[message_id] = fut
        try:
            await t.send(Send(message_id, envelopes))
            return await asyncio.wait_for(fut, 30)
        except TimeoutError as exc:
            raise NotConnected(f"the server did not confirm {message_id}") from exc
        finally:
            # Nobody waits for it any more: a later close must not fail it unretrieved.
            self._results.pop(message_id, None)

    def _settle(self, message_id: str, result: SendResult) -> str:
        ok = [r for r in result.results if r.status in ("delivered", "stored", "duplicate")]
        # The server's "delivered" means a device took the envelope, not that it could
        # decrypt it: "delivered" comes only with the recipient's receipt (retries.py).
        status = "sent" if ok else "failed"
        with self.store.transaction() as tx:
            for r in result.results:
                if r.status == "unknown_device":
                    # That device is gone: forget its session; a new one gets a new session.
                    tx.execute(
                        s.sessions.delete().where(
                            s.sessions.c.account_id == r.recipient_account,
                            s.sessions.c.device_id == r.recipient_device,
                        )
                    )
            self.features.settled(tx, message_id, status)
            self.store.done_out(tx, message_id)
        return status

    async def _encrypt_for(self, account_id: str, payload: bytes) -> list[OutgoingEnvelope]:
        """``payload`` to every device of ``account_id``; our other devices get a copy
        wrapped with the chat it belongs to (``type="sync"``). A business's devices must be
        the ones its accepted profile names (business.py)."""
        await self.business.check_recipient(account_id)
        return await self.devices.encrypt([account_id], payload, chat=account_id)

    # -- receiving -----------------------------------------------------------------------

    async def receive(
        self, wait: float = 0.0, on_message: Callable[[StoredMessage], None] | None = None
    ) -> list[StoredMessage]:
        """Process everything queued on the server, send the outbox, then keep listening
        for ``wait`` seconds. Returns every message stored since the previous call (also
        those that arrived while ``connect()`` ran), held ones included; ``on_message`` is
        called for each as it arrives.

        Raises:
            NotConnected: not connected.
        """
        self._need()
        if on_message is not None:
            for m in self._unreturned:
                on_message(m)

        def collect(m: StoredMessage) -> None:
            if on_message is not None:
                on_message(m)

        self.message_listeners.append(collect)
        try:
            self.features.expire()
            await asyncio.wait_for(self._drained.wait(), 60)
            if self.connected:
                self.features.queue_receipts()
                await self.flush_outbox()
            if wait > 0:
                assert self.transport is not None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.transport.closed.wait(), wait)
                if self.connected:
                    self.features.queue_receipts()
                    await self.flush_outbox()
            await self.attachments.wait()
            await self.retries.wait()
            self.features.expire()
        finally:
            self.message_listeners.remove(collect)
        got, self._unreturned = self._unreturned, []
        return got

    async def _handle_deliver(self, d: Deliver) -> StoredMessage | None:
        """Decrypt, store with the new ratchet state in one transaction, then acknowledge."""
        if not d.sender_account:
            opened = self._open_sealed(d)
            if opened is None:
                if self.transport is not None:
                    with contextlib.suppress(TransportError):
                        await self.transport.send(Ack([d.guid]))
                return None
            d = opened
        if "~" in d.message_id:  # one part of a message sent in several parts
            d = msgspec.structs.replace(d, message_id=d.message_id.split("~", 1)[0])
        async with self._store_lock:
            name = None
            if not is_group_message(d.content):
                if d.sender_account != self.info.account_id:
                    name = await name_of_new_sender(self, d)
                    await self.business.before_receive(d.sender_account)
                confirmed = name if name and not name.startswith(UNCONFIRMED) else None
                await self.devices.ensure(d.sender_account, d.sender_device, confirmed)
            stored = self._store_delivery(d, name)
        if self.transport is not None:
            with contextlib.suppress(TransportError):
                await self.transport.send(Ack([d.guid]))
        if stored is not None:  # fetched only now: a slow download never holds the pump
            self.attachments.delivered(stored)
        return stored

    def _open_sealed(self, d: Deliver) -> Deliver | None:
        """A sealed envelope with its sender, or None (an incident) when its certificate
        is forged or expired or it does not open (docs/CRYPTO.md §18.2)."""
        try:
            return self.sealed.open(d)
        except InvalidCertificate as exc:
            account, device = exc.claimed
            self._incident(
                Incident(
                    "sealed_sender_invalid",
                    account,
                    f"a sealed message claiming to be from {account or 'an unknown sender'}"
                    f"{f'/{device}' if account else ''} was rejected: {exc}",
                )
            )
        except CryptoError as exc:
            self._incident(Incident("undecryptable", "", f"a sealed message was rejected: {exc}"))
        return None

    def _store_delivery(self, d: Deliver, new_name: str | None = None) -> StoredMessage | None:
        now = self.clock()
        if is_group_message(d.content):
            return self.groups.receive(d, now)
        stored: StoredMessage | None = None
        decrypted = False
        try:
            with self.store.transaction() as tx:
                result = self._decrypt_record(tx, d, now // 1000)
                decrypted = True
                content = _content_decoder.decode(result.plaintext)
                identity = result.session.remote_identity_key
                record = result.record.to_bytes()
                expected = self.devices.expected_key(tx, d.sender_account, d.sender_device)
                if d.sender_account == self.info.account_id:
                    if expected != identity:
                        raise DecryptionError("a copy from a device not in our own device list")
                    self.store.put_session(tx, d.sender_account, d.sender_device, record)
                    if content.type == RETRY_TYPE:
                        self.retries.on_request(tx, d.sender_account, d.sender_device, content)
                        return None
                    self.sealed.adopt(tx, d.sender_device, content)
                    return self.features.from_own_device(tx, d, content, now)
                contact, status = check_sender(self, tx, d, identity, expected, content, new_name)
                status = self.business.incoming_status(
                    tx, d.sender_account, d.sender_device, status
                )
                self.store.put_session(tx, d.sender_account, d.sender_device, record)
                self.sealed.learn(tx, d.sender_account, content.profile_key)
                if content.type == RETRY_TYPE:
                    self.retries.on_request(tx, d.sender_account, d.sender_device, content)
                    return None
                stored = self.features.receive(tx, d, content, contact, status, now)
        except DuplicateMessage:
            pass  # already stored: acknowledging again is all that is left
        except (CryptoError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._incident(
                Incident(
                    "undecryptable",
                    d.sender_account,
                    f"message {d.message_id} from {d.sender_account} was rejected: {exc}",
                )
            )
            if not decrypted:  # asked again in a fresh session; a bad content is not
                self.retries.request_soon(d.sender_account, d.sender_device, d.message_id)
        return stored

    def _decrypt(self, tx: Connection, d: Deliver, now: int) -> tuple[SessionState, bytes]:
        """``now`` in Unix seconds, as the ratchet's skipped-key expiry counts."""
        result = self._decrypt_record(tx, d, now)
        return result.session, result.plaintext

    def _decrypt_record(self, tx: Connection, d: Deliver, now: int) -> RecordDecryption:
        """Decrypt with the sender device's sessions (several, docs/CRYPTO.md §13); one-time
        prekeys a new session used are deleted in ``tx``. The caller stores the record."""
        blob = self.store.session(tx, d.sender_account, d.sender_device)
        record = None if blob is None else SessionRecord.from_bytes(blob)

        def lookup(kind: int, key_id: int) -> PrivatePrekey | None:
            raw = self.store.get_prekey(tx, kind, key_id)
            return None if raw is None else PrivatePrekey.from_bytes(raw)

        result = record_decrypt(record, d.content, now, self.identity, lookup)
        if result.used is not None:
            self.store.drop_prekeys(tx, result.used.one_time())
        return result


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _home_region_server(r: httpx.Response) -> str | None:
    """The URL a ``wrong_region`` refusal points registration to, if that is what ``r`` is."""
    if r.status_code != 421:
        return None
    try:
        err = r.json()["error"]
    except (ValueError, KeyError, TypeError):
        return None
    server = err.get("server") if isinstance(err, dict) else None
    if err.get("code") != "wrong_region" or not isinstance(server, str):
        return None
    return server if server.startswith(("http://", "https://")) else None


def _error_of(r: httpx.Response) -> tuple[str, str]:
    try:
        err = r.json()["error"]
        return str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        return "http_error", f"HTTP {r.status_code}"
