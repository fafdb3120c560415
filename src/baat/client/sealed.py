"""Sealed sender on the device: the profile key, certificates, sealing and opening.

What a device does (docs/CRYPTO.md §18, docs/PROTOCOL.md "Sealed sender"):

1. On connect (``prepare``): pin the server's trust root from ``/.well-known/baat/keys`` the
   first time (a later root is accepted only if the server certificates name it and the
   pinned one, see §18.1), fetch a sender certificate when the one held expires within an
   hour, and register the SHA-256 of its delivery access key and the "sealed from anyone"
   setting (off by default) when they changed.
2. Every message a person sees carries the sender's profile key inside the end-to-end
   encryption (``Content.profile_key``); the recipient keeps it (``learn``), which is how
   contacts and group members get it, and a rotated key reaches them with the next message.
3. ``send`` seals the envelopes for every account whose profile key it holds and sends them
   as ``SealedSend`` on a connection that never authenticates; ``sealed_access_denied``
   (an old key, or none) sends those envelopes authenticated instead and counts the
   fallback, which the privacy screen and ``baat sealed status`` show.
4. ``open`` turns a sealed ``Deliver`` back into one that names its sender, after checking
   the certificate; a forged or expired one is an incident and the envelope is dropped.

Everything is kept in the encrypted local store's settings (``client.profile_keys``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import httpx
import msgspec

from baat.crypto import CryptoError, MalformedMessage
from baat.crypto.sealed import (
    PROFILE_KEY_BYTES,
    CertificateValidator,
    InvalidCertificate,
    SealCache,
    access_key,
    access_verifier,
    decode_server_certificate,
    decrypt_profile_field,
    encrypt_profile_field,
    new_profile_key,
    open_sealed,
    seal,
)
from baat.proto import (
    Deliver,
    Error,
    OutgoingEnvelope,
    RecipientResult,
    SealedEnvelope,
    SealedSend,
    SendResult,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from baat.client.core import ClientCore
    from baat.client.transport import Transport

log = logging.getLogger("baat.client.sealed")

# settings names (all in the encrypted store)
_OWN_KEY = "own"
_ANYONE = "sealed.anyone"
_REGISTERED = "sealed.registered"
_ROOTS = "roots"
_CERT = "certificate"
_STATS = "sealed.stats"
_CONTACT = "contact:"
CERT_REFRESH_MS = 3600 * 1000
DENIED = "sealed_access_denied"


class _Inner(msgspec.Struct, frozen=True, array_like=True):
    """Inside the sealed layer: the message id the sender chose (receipts and duplicate
    checks use it) and the envelope's ciphertext."""

    message_id: str
    content: bytes


_inner_decoder = msgspec.msgpack.Decoder(_Inner)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class SealedSender:
    def __init__(self, client: ClientCore) -> None:
        self.client = client
        self.cache = SealCache()
        self._validator: CertificateValidator | None = None
        self._anon: Transport | None = None
        self._anon_lock = asyncio.Lock()
        self._results: dict[str, asyncio.Future[SendResult | Error]] = {}
        self._reader: asyncio.Task[None] | None = None

    # -- keys and settings -------------------------------------------------------------------

    @property
    def _store(self) -> Any:
        return self.client.store

    def _get(self, name: str, default: Any = None) -> Any:
        from sqlalchemy import select

        from baat.client import schema as s

        table = s.sealed_keys
        with self._store.transaction() as tx:
            row = tx.execute(select(table).where(table.c.name == name)).first()
        if row is None:
            return default
        return json.loads(self._store.sealer.open(f"sealed_keys.{name}", row.value_blob))

    def _put(self, tx: Connection, name: str, value: Any) -> None:
        from sqlalchemy import insert, update

        from baat.client import schema as s

        table = s.sealed_keys
        blob = self._store.sealer.seal(f"sealed_keys.{name}", json.dumps(value).encode())
        if not tx.execute(
            update(table).where(table.c.name == name).values(value_blob=blob)
        ).rowcount:
            tx.execute(insert(table).values(name=name, value_blob=blob))

    @property
    def primary(self) -> bool:
        return self.client.info.device_id == 1

    def own_key(self) -> bytes | None:
        """This account's profile key. The first device makes it on first use and owns it;
        a linked device has it once a copy from the first device carried it (``adopt``)."""
        raw = self._get(_OWN_KEY)
        if raw is not None:
            return base64.b64decode(raw)
        if not self.primary:
            return None
        key = new_profile_key()
        with self._store.transaction() as tx:
            self._put(tx, _OWN_KEY, _b64(key))
        return key

    def profile_key(self) -> bytes:
        """Raises: ValueError: a linked device that has not received the key yet."""
        key = self.own_key()
        if key is None:
            raise ValueError("the profile key has not reached this linked device yet")
        return key

    def adopt(self, tx: Connection, device_id: int, content: Any) -> None:
        """A copy from our first device carries the account's profile key: use it."""
        if device_id != 1 or self.primary:
            return
        key = content.profile_key
        if key is None and content.type == "sync" and content.data:
            from baat.client.core import _content_decoder

            with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                key = _content_decoder.decode(content.data).profile_key
        if key is not None and len(key) == PROFILE_KEY_BYTES:
            self._put(tx, _OWN_KEY, _b64(key))

    def rotate_profile_key(self) -> bytes:
        """A new profile key (first device only): the old access key stops working once
        ``register_access`` runs; contacts get the new key with the next message they
        receive.

        Raises:
            ValueError: on a linked device.
        """
        if not self.primary:
            raise ValueError("only the first device rotates the profile key")
        key = new_profile_key()
        with self._store.transaction() as tx:
            self._put(tx, _OWN_KEY, _b64(key))
        return key

    def contact_key(self, account_id: str) -> bytes | None:
        raw = self._get(_CONTACT + account_id)
        return None if raw is None else base64.b64decode(raw)

    def learn(self, tx: Connection, account_id: str, key: bytes | None, device_id: int = 0) -> None:
        """Keep the profile key a contact sent inside an end-to-end message; one from our
        own first device (a group message, say) is the account's key."""
        if key is None or len(key) != PROFILE_KEY_BYTES or account_id == "":
            return
        if account_id == self.client.info.account_id:
            if device_id == 1 and not self.primary:
                self._put(tx, _OWN_KEY, _b64(key))
            return
        self._put(tx, _CONTACT + account_id, _b64(key))

    def share(self) -> bytes | None:
        """The profile key to put into an outgoing message people see."""
        return self.own_key()

    @property
    def anyone(self) -> bool:
        return bool(self._store.setting(_ANYONE, False))

    def set_anyone(self, on: bool) -> None:
        with self._store.transaction() as tx:
            self._store.put_setting(tx, _ANYONE, on)

    def stats(self) -> dict[str, Any]:
        found: dict[str, Any] = self._store.setting(_STATS, None) or {
            "sealed": 0,
            "fallback": 0,
            "last_fallback": None,
        }
        return found

    def _count(self, sealed: int = 0, fallback: int = 0, reason: str = "") -> None:
        stats = self.stats()
        stats["sealed"] += sealed
        stats["fallback"] += fallback
        if fallback:
            stats["last_fallback"] = {"at": int(time.time()), "reason": reason}
        with self._store.transaction() as tx:
            self._store.put_setting(tx, _STATS, stats)

    def status(self) -> dict[str, Any]:
        """What the privacy screen and ``baat sealed status`` show."""
        cert = self._get(_CERT)
        return {
            "sealed_from_anyone": self.anyone,
            "access_key_registered": self._store.setting(_REGISTERED) is not None,
            "certificate_expires_ms": None if cert is None else cert["expires_ms"],
            "trust_roots": len(self._get(_ROOTS, [])),
            "contacts_with_profile_key": self._contacts_with_keys(),
            **self.stats(),
        }

    def _contacts_with_keys(self) -> int:
        from sqlalchemy import func, select

        from baat.client import schema as s

        with self._store.transaction() as tx:
            count = tx.execute(
                select(func.count()).where(s.sealed_keys.c.name.like(_CONTACT + "%"))
            ).scalar_one()
        return int(count)

    # -- talking to the server (step 1) -----------------------------------------------------

    async def _http(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"authorization": self.client.credentials.header()}
        async with httpx.AsyncClient(base_url=self.client.info.server_url, timeout=15) as http:
            return await http.request(method, path, headers=headers, **kw)

    async def prepare(self) -> None:
        """Pin the root, refresh the certificate, register the access key. A server without
        sealed sender (or unreachable now) leaves every send authenticated.

        Raises: nothing (failures are logged; sends fall back).
        """
        try:
            await self._pin_roots()
            await self._refresh_certificate()
            await self.register_access()
        except (httpx.HTTPError, ValueError, KeyError, CryptoError) as exc:
            log.warning("sealed sender not ready, sends stay authenticated: %s", exc)

    async def _pin_roots(self) -> None:
        r = await self._http("GET", "/.well-known/baat/keys")
        published = r.json().get("sealed_sender")
        if published is None:
            return
        root = base64.b64decode(published["trust_root"])
        pinned: list[str] = self._get(_ROOTS, [])
        if not pinned:
            # Trust on first use, as for contacts' identity keys (THREAT_MODEL.md).
            pinned = [_b64(root)]
        elif _b64(root) not in pinned:
            # A new root is taken only when the server certificates it publishes verify
            # under a root already pinned (a rotation the old root vouched for, §18.1).
            certs = [
                decode_server_certificate(base64.b64decode(c))
                for c in published["server_certificates"]
            ]
            validator = CertificateValidator([base64.b64decode(p) for p in pinned])
            if not any(validator.vouches(c) for c in certs):
                log.warning("the server's sealed-sender root changed without a handover")
                return
            pinned = [*pinned, _b64(root)]
        with self._store.transaction() as tx:
            self._put(tx, _ROOTS, pinned)
        self._validator = None

    async def _refresh_certificate(self, force: bool = False) -> None:
        cert = self._get(_CERT)
        now = int(time.time() * 1000)
        if not force and cert is not None and cert["expires_ms"] - now > CERT_REFRESH_MS:
            return
        r = await self._http("GET", "/v1/certificate/delivery")
        if r.status_code != 200:
            return
        body = r.json()
        with self._store.transaction() as tx:
            self._put(
                tx, _CERT, {"certificate": body["certificate"], "expires_ms": body["expires_ms"]}
            )

    async def register_access(self) -> None:
        """Tell the server the SHA-256 of the current access key and the setting (the
        first device does; the key and the setting are the account's)."""
        if not self.primary:
            return
        verifier = access_verifier(access_key(self.profile_key()))
        wanted = {"verifier": _b64(verifier), "anyone": self.anyone}
        if self._store.setting(_REGISTERED) == wanted:
            return
        r = await self._http("PUT", "/v1/profile/access", json=wanted)
        if r.status_code == 200:
            with self._store.transaction() as tx:
                self._store.put_setting(tx, _REGISTERED, wanted)

    async def publish_profile(self, name: str, avatar: bytes | None = None) -> None:
        """Store this account's display name (and avatar) on the server, encrypted under
        the profile key (§18.4)."""
        key = self.profile_key()
        body = {
            "version": int(time.time()),
            "name": _b64(encrypt_profile_field(key, "name", name.encode())),
            "avatar": None
            if avatar is None
            else _b64(encrypt_profile_field(key, "avatar", avatar)),
        }
        r = await self._http("PUT", "/v1/profile", json=body)
        r.raise_for_status()

    async def fetch_profile(self, account_id: str) -> dict[str, Any] | None:
        """A contact's profile, decrypted with the profile key it shared; None without one.

        Raises:
            DecryptionError: the stored profile was made under another key.
        """
        key = self.contact_key(account_id)
        if key is None:
            return None
        r = await self._http("GET", f"/v1/profile/{account_id}")
        if r.status_code != 200:
            return None
        body = r.json()
        avatar = body.get("avatar")
        return {
            "name": decrypt_profile_field(key, "name", base64.b64decode(body["name"])).decode(),
            "avatar": None
            if avatar is None
            else decrypt_profile_field(key, "avatar", base64.b64decode(avatar)),
        }

    # -- sending (step 3) -------------------------------------------------------------------

    def _certificate(self) -> bytes | None:
        cert = self._get(_CERT)
        if cert is None or cert["expires_ms"] <= int(time.time() * 1000):
            return None
        return base64.b64decode(cert["certificate"])

    def _outer_id(self, message_id: str, account_id: str) -> str:
        # Stable across retries (the server drops a repeated one) but unlinkable to the
        # message id inside or to this device.
        secret = self.client.identity.sign(b"Baat sealed message ids v1")[:32]
        mac = hmac.new(secret, f"{message_id}\0{account_id}".encode(), "sha256").hexdigest()
        return "s" + mac[:31]

    async def send(
        self,
        message_id: str,
        envelopes: list[OutgoingEnvelope],
        plain: Any,
    ) -> SendResult:
        """Send one message: sealed to every account that allows it, the rest through
        ``plain`` (the authenticated ``Send``). Results come back in envelope order.

        Raises:
            SendRefused, NotConnected: as for an authenticated send.
        """
        from baat.client.core import SendRefused

        cert = self._certificate()
        by_account: dict[str, list[int]] = {}
        for i, env in enumerate(envelopes):
            by_account.setdefault(env.recipient_account, []).append(i)
        results: list[RecipientResult | None] = [None] * len(envelopes)
        unsealed: list[int] = []
        for account_id, indexes in by_account.items():
            if account_id == self.client.info.account_id:
                # Copies for our own devices go authenticated: the server expects every
                # device of the account but the sender's, which it must not learn here.
                unsealed += indexes
                continue
            key = self.contact_key(account_id)
            sealed = None
            if cert is not None and key is not None:
                try:
                    sealed = await self._send_sealed(
                        message_id, account_id, key, cert, [envelopes[i] for i in indexes]
                    )
                    if sealed is None:
                        self._count(fallback=len(indexes), reason="no session key")
                except SendRefused as exc:
                    if exc.code != DENIED:
                        raise
                    self._count(fallback=len(indexes), reason=exc.code)
            elif cert is not None:
                self._count(fallback=len(indexes), reason="no profile key")
            if sealed is None:
                unsealed += indexes
                continue
            self._count(sealed=len(indexes))
            for i, r in zip(indexes, sealed.results, strict=False):
                results[i] = r
        if unsealed:
            plain_result: SendResult = await plain(message_id, [envelopes[i] for i in unsealed])
            for i, r in zip(unsealed, plain_result.results, strict=False):
                results[i] = r
        return SendResult(message_id, [r for r in results if r is not None])

    async def _send_sealed(
        self,
        message_id: str,
        account_id: str,
        profile_key: bytes,
        cert: bytes,
        envelopes: list[OutgoingEnvelope],
    ) -> SendResult | None:
        from baat.client.core import NotConnected, SendRefused

        keys = self._device_keys(account_id, [e.recipient_device for e in envelopes])
        if keys is None:
            return None
        me = self.client.identity.dh_pair
        sealed = [
            SealedEnvelope(
                e.recipient_device,
                seal(
                    keys[e.recipient_device],
                    me,
                    cert,
                    msgspec.msgpack.encode(_Inner(message_id, e.content)),
                    cache=self.cache,
                ),
            )
            for e in envelopes
        ]
        outer = self._outer_id(message_id, account_id)
        frame = SealedSend(outer, account_id, access_key(profile_key), sealed)
        fut: asyncio.Future[SendResult | Error] = asyncio.get_running_loop().create_future()
        self._results[outer] = fut
        try:
            transport = await self._anonymous()
            await transport.send(frame)
            answer = await asyncio.wait_for(fut, 30)
        except TimeoutError as exc:
            raise NotConnected(f"the server did not confirm {message_id}") from exc
        except Exception as exc:
            from baat.client.transport import TransportError

            if isinstance(exc, TransportError):
                raise NotConnected(str(exc), exc.code) from exc
            raise
        finally:
            self._results.pop(outer, None)
        if isinstance(answer, Error):
            raise SendRefused(answer.code, answer.message, answer.retry_after_ms)
        return SendResult(message_id, answer.results)

    def _device_keys(self, account_id: str, devices: list[int]) -> dict[int, bytes] | None:
        """Each device's X25519 identity key, from the session the envelope was made in."""
        from baat.crypto.records import SessionRecord

        keys: dict[int, bytes] = {}
        with self._store.transaction() as tx:
            for device in devices:
                blob = self._store.session(tx, account_id, device)
                if blob is None:
                    return None
                record = SessionRecord.from_bytes(blob)
                active = record.active
                if active is None:
                    return None
                keys[device] = active.remote_identity.identity_dh_key
        return keys

    async def _anonymous(self) -> Transport:
        from baat.client.transport import Transport

        async with self._anon_lock:
            if self._anon is None or self._anon.closed.is_set():
                self._anon = await Transport.connect_anonymous(self.client.info.server_url)
                self._reader = asyncio.create_task(self._read(self._anon))
            return self._anon

    async def _read(self, t: Transport) -> None:
        while True:
            frame = await t.next_frame()
            if frame is None:
                break
            if isinstance(frame, SendResult | Error):
                key = frame.message_id
                fut = self._results.get(key)
                if fut is not None and not fut.done():
                    fut.set_result(frame)
        for fut in self._results.values():
            if not fut.done():
                from baat.client.core import NotConnected

                fut.set_exception(NotConnected(f"connection lost: {t.close_reason}"))

    async def close(self) -> None:
        if self._anon is not None:
            await self._anon.close()
            self._anon = None
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    # -- receiving (step 4) -----------------------------------------------------------------

    def _roots(self) -> CertificateValidator:
        if self._validator is None:
            roots = [base64.b64decode(r) for r in self._get(_ROOTS, [])]
            self._validator = CertificateValidator(roots)
        return self._validator

    def open(self, d: Deliver) -> Deliver:
        """The sealed envelope as the sender's ``Deliver``.

        Raises:
            InvalidCertificate: forged, expired, or not the identity this device knows for
                that sender.
            DecryptionError, MalformedMessage: not a sealed message for this device.
        """
        opened = open_sealed(
            d.content,
            self.client.identity.dh_pair,
            self._roots(),
            int(time.time() * 1000),
            self.cache,
        )
        sender = opened.sender
        with self._store.transaction() as tx:
            known = self.client.devices.expected_key(tx, sender.account_id, sender.device_id)
        if known is not None and known != sender.identity_key:
            raise InvalidCertificate(
                "the certificate's identity key is not the one this device knows",
                (sender.account_id, sender.device_id),
            )
        try:
            inner = _inner_decoder.decode(opened.inner)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise MalformedMessage("sealed content does not parse") from None
        return msgspec.structs.replace(
            d,
            sender_account=sender.account_id,
            sender_device=sender.device_id,
            message_id=inner.message_id,
            content=inner.content,
        )


__all__ = ["DENIED", "InvalidCertificate", "SealedSender"]
