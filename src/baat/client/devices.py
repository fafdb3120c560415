"""Several devices per account, on the client (docs/GROUPS.md §2 and §4).

* **Trust**: the account identity key is the primary device's Ed25519 identity key, learned
  on first use (then compared as a safety number); every other device of an account counts
  only if the latest device list signed by that key names it (``verify_device_list``), and
  a list older than one already accepted is refused (``check_supersedes``).
* **Fan-out**: a pairwise message goes to every listed device of the recipient and to our
  own other devices (sync copies), so each device sees the conversation from the moment it
  joined ([WA] "Client Registration": companion devices receive every message).
* **Linking**: the primary creates a one-time code on the server and shows it as a
  :class:`~baat.crypto.LinkCode`; the new device registers with it and a commitment to its
  256-bit nonce, the primary reveals its own nonce, the new device reveals its nonce, and
  both show ``link_sas_committed`` (commit-then-reveal, docs/CRYPTO.md §16); the primary
  signs and publishes the new list once the user confirms.

The link code's 20-byte secret is the server's 18-byte one-time code followed by 2 random
bytes: the server code is what ``POST /v1/devices`` checks, the whole secret feeds the SAS.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import Connection, delete, insert, select, update

from baat.client import schema as s
from baat.client.core import ClientError, Content, IdentityChanged, NotConnected, UnknownContact
from baat.client.store import Contact, ProfileInfo
from baat.crypto import (
    CryptoError,
    DeviceList,
    LinkCode,
    PrekeyBundle,
    SessionRecord,
    add_session,
    check_link_commitment,
    check_supersedes,
    initiate_session,
    link_nonce,
    link_sas_committed,
    record_encrypt,
    sign_device_list,
    verify_device_list,
)
from baat.proto import OutgoingEnvelope

if TYPE_CHECKING:
    from baat.client.core import ClientCore


PRIMARY_DEVICE = 1
LINK_POLL_S = 0.2
_SERVER_CODE_BYTES = 18  # secrets.token_urlsafe(18) on the server: 24 characters, no padding


class DeviceError(Exception):
    """A device operation failed; ``code`` is stable (the server's when it refused)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _server_code(code: LinkCode) -> str:
    return base64.urlsafe_b64encode(code.secret[:_SERVER_CODE_BYTES]).decode()


def _list_body(blob: bytes) -> DeviceList:
    """The list inside a signed blob, before its signature is checked (to read the key
    a first-use list names for the primary)."""
    return DeviceList.decode(blob[1:-64])


class DeviceDirectory:
    """Verified device lists, kept in ``device_lists`` and cached in memory."""

    def __init__(self, client: ClientCore) -> None:
        self.client = client
        self._cache: dict[str, dict[int, bytes]] = {}

    @property
    def _me(self) -> ProfileInfo:
        return self.client.info

    # -- HTTP ------------------------------------------------------------------------------

    async def _http(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"authorization": self.client.credentials.header()}
        try:
            async with httpx.AsyncClient(base_url=self._me.server_url, timeout=15) as http:
                return await http.request(method, path, headers=headers, **kw)
        except httpx.HTTPError as exc:
            raise NotConnected(f"cannot reach the server: {exc}") from exc

    async def server_devices(self) -> list[dict[str, Any]]:
        """``GET /v1/devices``: this account's devices as the server has them."""
        r = await self._http("GET", "/v1/devices")
        if r.status_code != 200:
            raise DeviceError(*_error_of(r))
        return list(r.json()["devices"])

    # -- stored lists ----------------------------------------------------------------------

    def _row(self, tx: Connection, account_id: str) -> tuple[bytes, bytes, int] | None:
        row = tx.execute(
            select(s.device_lists).where(s.device_lists.c.account_id == account_id)
        ).first()
        if row is None:
            return None
        seal = self.client.store.sealer
        key = seal.open(f"device_lists.{account_id}.key", row.account_key_blob)
        blob = seal.open(f"device_lists.{account_id}.list", row.list_blob)
        return key, blob, int(row.version)

    def _save(self, tx: Connection, account_id: str, key: bytes, blob: bytes, version: int) -> None:
        seal = self.client.store.sealer
        values = {
            "version": version,
            "account_key_blob": seal.seal(f"device_lists.{account_id}.key", key),
            "list_blob": seal.seal(f"device_lists.{account_id}.list", blob),
        }
        table = s.device_lists
        if not tx.execute(
            update(table).where(table.c.account_id == account_id).values(**values)
        ).rowcount:
            tx.execute(insert(table).values(account_id=account_id, **values))

    def account_key(self, tx: Connection, account_id: str) -> bytes | None:
        """The account identity key this device trusts for ``account_id``."""
        if account_id == self._me.account_id and self.is_primary:
            return self.client.identity.identity_key
        row = self._row(tx, account_id)
        if row is not None:
            return row[0]
        contact = self.client.store.contact(tx, account_id)
        return None if contact is None else contact.identity_key

    def trust_account_key(self, tx: Connection, account_id: str, key: bytes) -> None:
        """Remember the account identity key (a linked device learns its primary's)."""
        if self._row(tx, account_id) is None:
            self._save(tx, account_id, key, b"", 0)

    def forget(self, tx: Connection, account_id: str) -> None:
        """Drop the stored list (after the user accepted a new account key)."""
        tx.execute(delete(s.device_lists).where(s.device_lists.c.account_id == account_id))
        self._cache.pop(account_id, None)

    def known(self, tx: Connection, account_id: str) -> dict[int, bytes] | None:
        """Device id -> identity key from the accepted list; None if there is none.

        Without a list only the primary is known, with the account key (first use)."""
        if account_id in self._cache:
            return self._cache[account_id]
        row = self._row(tx, account_id)
        if row is None or not row[1]:
            key = self.account_key(tx, account_id)
            return None if key is None else {PRIMARY_DEVICE: key}
        key, blob, _ = row
        listed = verify_device_list(key, blob, account_id=account_id)
        found = {e.device_id: e.identity_key for e in listed.devices}
        self._cache[account_id] = found
        return found

    @property
    def is_primary(self) -> bool:
        return self._me.device_id == PRIMARY_DEVICE

    # -- refreshing ------------------------------------------------------------------------

    async def refresh(self, account_id: str, username: str | None = None) -> dict[int, bytes]:
        """Fetch ``account_id``'s signed list and accept it if it verifies and is not older.

        Raises:
            UnknownContact: the server does not know the account (or the name is another's).
            IdentityChanged: the list is signed by another key than the trusted one.
            DeviceListRollback: the server offers a list older than one already accepted.
        """
        name = username or self._username(account_id)
        r = await self._http("GET", f"/v1/accounts/{name}")
        if r.status_code == 404:
            raise UnknownContact(f"no user named {name!r}")
        if r.status_code != 200:
            raise DeviceError(*_error_of(r))
        body = r.json()
        if body["account_id"] != account_id:
            raise UnknownContact(f"{name!r} is not the account {account_id}")
        signed = body.get("device_list")
        with self.client.store.transaction() as tx:
            trusted = self.account_key(tx, account_id)
            if signed is None:
                self._cache.pop(account_id, None)
                return {PRIMARY_DEVICE: trusted or b""}
            blob = base64.b64decode(signed["signed_list"])
            key = trusted
            if key is None:  # first use: the key the list names for the primary
                key = _list_body(blob).identity_key(PRIMARY_DEVICE) or b""
            try:
                listed = verify_device_list(key, blob, account_id=account_id)
            except CryptoError as exc:
                if trusted is not None and account_id != self._me.account_id:
                    self._mark_changed(tx, account_id)
                    raise IdentityChanged(
                        f"the device list of {name} is not signed by the key you trust"
                    ) from exc
                raise
            row = self._row(tx, account_id)
            last = _list_body(row[1]) if row is not None and row[1] else None
            if check_supersedes(last, listed):
                self._save(tx, account_id, key, blob, listed.version)
                live = {e.device_id for e in listed.devices}
                stale = set(self.client.store.session_devices(tx, account_id)) - live
                for device_id in stale:  # removed devices: their sessions go too
                    tx.execute(
                        delete(s.sessions).where(
                            s.sessions.c.account_id == account_id,
                            s.sessions.c.device_id == device_id,
                        )
                    )
            self._cache.pop(account_id, None)
            return self.known(tx, account_id) or {}

    def _mark_changed(self, tx: Connection, account_id: str) -> None:
        c = self.client.store.contact(tx, account_id)
        if c is not None:
            self.client.store.put_contact(
                tx, Contact(c.account_id, c.username, c.identity_key, c.verified, True)
            )

    def _username(self, account_id: str) -> str:
        if account_id == self._me.account_id:
            return self._me.username
        if account_id in self.client._names:
            return self.client._names[account_id]
        with self.client.store.transaction() as tx:
            contact = self.client.store.contact(tx, account_id)
        if contact is None:
            raise UnknownContact(f"no name known for account {account_id}")
        return contact.username

    async def devices_of(self, account_id: str) -> dict[int, bytes]:
        """The verified devices of an account, fetched once when nothing is stored."""
        with self.client.store.transaction() as tx:
            found = self.known(tx, account_id)
            has_list = self._row(tx, account_id) is not None
        if found is not None and (has_list or account_id != self._me.account_id):
            return found
        return await self.refresh(account_id)

    async def ensure(self, account_id: str, device_id: int, username: str | None) -> None:
        """Before accepting a message from a device not listed yet: fetch the list once."""
        with self.client.store.transaction() as tx:
            found = self.known(tx, account_id)
        if found is not None and device_id in found:
            return
        if device_id == PRIMARY_DEVICE and found is None:
            return  # first use: the primary's key comes with its first message
        try:
            await self.refresh(account_id, username)
        except (ClientError, DeviceError, CryptoError):
            return  # the message is then refused, with the reason, by the receiving path

    def expected_key(self, tx: Connection, account_id: str, device_id: int) -> bytes | None:
        """The identity key a device must have, or None if the device is not listed."""
        found = self.known(tx, account_id)
        return None if found is None else found.get(device_id)

    # -- pairwise fan-out ------------------------------------------------------------------

    async def encrypt(
        self,
        accounts: Iterable[str],
        payload: bytes,
        chat: str,
        fresh: Collection[tuple[str, int]] = (),
    ) -> list[OutgoingEnvelope]:
        """``payload`` to every verified device of ``accounts``; our own other devices get it
        wrapped (``type="sync"``) with the ``chat`` it belongs to, so that they file it there.
        The devices in ``fresh`` get a new session from a fresh bundle (retries.py).

        Raises:
            IdentityChanged, UnknownContact: as ``Client.send_text``.
        """
        me = self._me.account_id
        out: list[OutgoingEnvelope] = []
        targets = [a for a in dict.fromkeys(accounts) if a != me]
        for account_id in targets:
            devices = await self.devices_of(account_id)
            if devices:
                again = {d for a, d in fresh if a == account_id}
                out += await self.encrypt_account(account_id, devices, payload, again)
        if targets and not out:
            raise UnknownContact("the contact has no device that can receive messages yet")
        mine = dict(await self.devices_of(me))
        mine.pop(self._me.device_id, None)
        if mine:
            again = {d for a, d in fresh if a == me}
            out += await self.encrypt_account(me, mine, self.sync_copy(chat, payload), again)
        return out

    def sync_copy(self, chat: str, payload: bytes) -> bytes:
        """The copy of a message for our own other devices: the chat and the peer's name and
        account key travel with it, so a device that never talked to the peer can file it."""
        import msgspec

        names: dict[str, str] = {}
        key = None
        with self.client.store.transaction() as tx:
            contact = self.client.store.contact(tx, chat)
        if contact is not None:
            names, key = {chat: contact.username}, contact.identity_key
        elif chat in self.client._names:
            names = {chat: self.client._names[chat]}
        wrapped = Content(
            v=1,
            type="sync",
            sender_name=self._me.username,
            sent_at=self.client.clock(),
            to=chat,
            data=payload,
            names=names,
            key=key,
        )
        return msgspec.msgpack.encode(wrapped)

    async def encrypt_account(
        self,
        account_id: str,
        devices: dict[int, bytes],
        payload: bytes,
        fresh: Collection[int] = (),
    ) -> list[OutgoingEnvelope]:
        """Open sessions to listed devices that have none, and new ones to ``fresh`` devices
        (checking each bundle's identity key against the list), then encrypt ``payload``
        once per device on its active session."""
        c = self.client
        t = c._need()
        me = account_id == self._me.account_id
        with c.store.transaction() as tx:
            contact = None if me else c.store.contact(tx, account_id)
            have = set(c.store.session_devices(tx, account_id))
        if contact is not None and contact.identity_changed:
            raise IdentityChanged(f"{contact.username}'s identity changed")
        missing = [d for d in devices if d not in have or d in fresh]
        bundles = []
        for device_id in missing:
            result = await t.fetch_bundle(account_id, device_id)
            bundles += [d for d in result.devices if d.device_id == device_id]
        now = c.clock()
        out = []
        with c.store.transaction() as tx:
            for dev in bundles:
                if dev.signed_prekey is None or dev.kem_last_resort is None:
                    continue  # a device that never uploaded prekeys cannot be reached yet
                want = devices.get(dev.device_id) or (
                    contact.identity_key if contact is not None else b""
                )
                if want and want != dev.identity_key:
                    if not me:
                        self._mark_changed(tx, account_id)
                    raise IdentityChanged(f"a device of {account_id} has another identity key")
                if contact is None and not me:
                    name = c._names.get(account_id, account_id)
                    contact = Contact(account_id, name, dev.identity_key)
                    c.store.put_contact(tx, contact)
                bundle = PrekeyBundle.from_parts(
                    dev.identity_key,
                    dev.identity_dh_key,
                    dev.identity_dh_sig,
                    dev.signed_prekey,
                    dev.kem_last_resort,
                    dev.one_time_curve,
                    dev.one_time_kem,
                )
                state = initiate_session(c.identity, bundle, now // 1000)
                blob = c.store.session(tx, account_id, dev.device_id)
                old = None if blob is None else SessionRecord.from_bytes(blob)
                record = add_session(old, state)
                c.store.put_session(tx, account_id, dev.device_id, record.to_bytes())
            for device_id in c.store.session_devices(tx, account_id):
                if device_id not in devices:
                    continue
                blob = c.store.session(tx, account_id, device_id)
                assert blob is not None
                record, ciphertext = record_encrypt(
                    SessionRecord.from_bytes(blob), payload, now // 1000
                )
                c.store.put_session(tx, account_id, device_id, record.to_bytes())
                out.append(OutgoingEnvelope(account_id, device_id, ciphertext))
        return out

    # -- the primary's duties --------------------------------------------------------------

    async def create_link_code(self) -> tuple[LinkCode, int]:
        """A one-time code for a new device (primary only) and when it expires.

        Raises:
            DeviceError: ``not_primary``, ``too_many_devices``.
        """
        r = await self._http("POST", "/v1/devices/link-codes")
        if r.status_code != 201:
            raise DeviceError(*_error_of(r))
        body = r.json()
        raw = base64.urlsafe_b64decode(body["code"] + "=" * (-len(body["code"]) % 4))
        if len(raw) != _SERVER_CODE_BYTES:
            raise DeviceError("unsupported_code", "the server's link code has another length")
        secret = raw + secrets.token_bytes(2)
        code = LinkCode(
            secret=secret, account_id=self._me.account_id, server_url=self._me.server_url
        )
        code.to_bytes()  # validates
        return code, int(body["expires_at"])

    async def publish(self, include: Iterable[int] | None = None) -> DeviceList:
        """Sign and upload this account's device list (primary only): the server's current
        devices that are already listed, plus ``include`` (devices the user confirmed).

        Raises:
            DeviceError: not the primary, or the server refused.
        """
        if not self.is_primary:
            raise DeviceError("not_primary", "only the account's first device signs its list")
        me = self._me.account_id
        on_server = {
            int(d["device_id"]): base64.b64decode(d["identity_key"])
            for d in await self.server_devices()
        }
        with self.client.store.transaction() as tx:
            row = self._row(tx, me)
            listed = set(_list_body(row[1]).device_ids()) if row and row[1] else {PRIMARY_DEVICE}
            version = _list_body(row[1]).version if row and row[1] else 0
        keep = (listed | set(include or ())) & set(on_server)
        new = DeviceList.build(
            me, version + 1, [(d, on_server[d]) for d in keep], self.client.clock() // 1000
        )
        blob = sign_device_list(self.client.identity, new)
        r = await self._http(
            "PUT", "/v1/device-list", json={"version": new.version, "signed_list": _b64(blob)}
        )
        if r.status_code != 204:
            raise DeviceError(*_error_of(r))
        with self.client.store.transaction() as tx:
            self._save(tx, me, self.client.identity.identity_key, blob, new.version)
        self._cache.pop(me, None)
        return new

    async def republish_if_shrunk(self) -> None:
        """On the primary: a device that removed itself leaves the signed list; re-sign."""
        if not self.is_primary:
            return
        with self.client.store.transaction() as tx:
            row = self._row(tx, self._me.account_id)
        if row is None or not row[1]:
            await self.publish()
            return
        listed = set(_list_body(row[1]).device_ids())
        on_server = {int(d["device_id"]) for d in await self.server_devices()}
        if listed - on_server:
            await self.publish()

    async def remove(self, device_id: int) -> None:
        """Remove a device: the server closes it at once (``device_removed``); the primary
        re-signs the list so that senders stop encrypting to it.

        Raises:
            DeviceError: the server's code (``primary_device``, ``unknown_device``, ...).
        """
        r = await self._http("DELETE", f"/v1/devices/{device_id}")
        if r.status_code != 204:
            raise DeviceError(*_error_of(r))
        if self.is_primary:
            await self.publish()
            with self.client.store.transaction() as tx:
                tx.execute(
                    delete(s.sessions).where(
                        s.sessions.c.account_id == self._me.account_id,
                        s.sessions.c.device_id == device_id,
                    )
                )

    async def confirm_link(
        self, code: LinkCode, device_id: int, new_identity_key: bytes, timeout: float = 120
    ) -> str:
        """The primary's half of the commit-then-reveal for a device that just joined with
        ``code``: read its commitment, reveal our nonce, wait for its nonce, check it against
        the commitment; returns the SAS to show.

        Raises:
            LinkCommitmentMismatch: the revealed nonce does not open the commitment (remove
                the device).
            DeviceError: the server refused, or no nonce came within ``timeout`` seconds.
        """
        path = f"/v1/devices/{device_id}/link"
        first = await self._http("GET", path)
        if first.status_code != 200:
            raise DeviceError(*_error_of(first))
        commitment = base64.b64decode(first.json()["commitment"])
        mine = link_nonce()
        r = await self._http("PUT", path, json={"nonce": _b64(mine)})
        if r.status_code != 204:
            raise DeviceError(*_error_of(r))
        theirs = await _poll_nonce(self._http, path, timeout)
        check_link_commitment(commitment, theirs, new_identity_key)
        key = self.client.identity.identity_key
        return link_sas_committed(code, key, new_identity_key, mine, theirs)


async def _poll_nonce(http: Any, path: str, timeout: float) -> bytes:
    """GET ``path`` until it names the other side's nonce.

    Raises:
        DeviceError: the server refused, or ``timeout`` seconds passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        r = await http("GET", path)
        if r.status_code != 200:
            raise DeviceError(*_error_of(r))
        nonce = r.json().get("nonce")
        if nonce:
            return base64.b64decode(nonce)
        if time.monotonic() > deadline:
            raise DeviceError("link_timeout", "the other device did not reveal its nonce in time")
        await asyncio.sleep(LINK_POLL_S)


def _error_of(r: httpx.Response) -> tuple[str, str]:
    try:
        err = r.json()["error"]
        return str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        return "http_error", f"HTTP {r.status_code}"
