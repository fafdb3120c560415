"""Chats with business accounts, on the device (docs/BUSINESS.md §3 and §4).

1. **Know whether a peer is a business.** The first time this device writes to or hears
   from an account it asks the server for a business profile (``GET /v1/business/ID``);
   "not a business" is remembered for a day, a business profile is fetched again before
   each send and each message received, at most every :data:`FRESH_S` seconds.
2. **Verify what is shown.** The profile must verify with the account identity key this
   device trusts (the key that signs the device list), and its version may never go back.
   The verified badge needs the operator's statement to verify with the server's published
   keys *and* to name the profile's current entity and country.
3. **Disclose, then accept.** Nothing is sent to a business, and nothing it sends is shown,
   until the user accepts the disclosure: a consent ``business-chat:<account>`` recorded in
   the server's ledger, whose signed receipt is checked here and kept. Withdrawing it makes
   the chat read-only. When the disclosure (hosts, processors, entity, purposes, retention:
   ``disclosure_digest``) changes, queued messages wait in the outbox and received ones are
   held until the user accepts again, like an identity change.
4. **Encrypt only to named devices.** Before each send the devices of the signed device list
   are compared with the devices the profile names; a device it does not name is refused
   and nothing is sent.

Errors (all ``SendRefused``, so that the outbox keeps the message and goes on with other
chats, ``sdk.RECIPIENT_REFUSALS``): ``DisclosureRequired``, ``BusinessChatReadOnly``,
``DeviceNotNamed``; and ``NotABusiness``.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any, Final

import httpx
from sqlalchemy import Connection, insert, select, update

from baat.client import schema as s
from baat.client.core import ClientCore, ClientError, NotConnected, SendRefused
from baat.crypto.business import (
    VERIFICATION_TYP,
    BusinessProfile,
    InvalidBusinessProfile,
    disclosure_digest,
    unnamed_devices,
    verify_business_profile,
)
from baat.privacy import receipts
from baat.privacy.errors import PrivacyError

FRESH_S: Final = 10.0
NOT_BUSINESS_RECHECK_S: Final = 86_400.0
PURPOSE_PREFIX: Final = "business-chat:"
# How the consent was collected, as the server records it in the consent record
# (``baat.server.privacy.receipt_fields``): "cli", "web" or "api".
COLLECTION_HEADER: Final = "Baat-Collection-Method"

NEW = "new"  # never accepted
ACCEPTED = "accepted"
CHANGED = "changed"  # accepted once; the disclosure changed since
WITHDRAWN = "withdrawn"


class NotABusiness(ClientError):
    code = "not_a_business"


class DisclosureRequired(SendRefused):
    """The disclosure was never accepted, or changed since: accept it first."""

    def __init__(self, message: str, code: str = "disclosure_required") -> None:
        super().__init__(code, message)


class BusinessChatReadOnly(SendRefused):
    def __init__(self, message: str) -> None:
        super().__init__("business_chat_read_only", message)


class DeviceNotNamed(SendRefused):
    def __init__(self, message: str) -> None:
        super().__init__("device_not_in_profile", message)


BUSINESS_REFUSALS = frozenset(
    {
        "disclosure_required",
        "disclosure_changed",
        "business_chat_read_only",
        "device_not_in_profile",
        "not_a_business",
    }
)


@dataclass(frozen=True)
class Disclosure:
    """What the user is shown before chatting with a business."""

    account_id: str
    username: str
    profile: BusinessProfile
    verified: bool
    state: str  # NEW | ACCEPTED | CHANGED | WITHDRAWN
    receipt: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        p = self.profile
        return {
            "account_id": self.account_id,
            "username": self.username,
            "display_name": p.display_name,
            "entity": p.entity,
            "country": p.country,
            "contact": p.contact,
            "purposes": list(p.purposes),
            "retention": p.retention,
            "version": p.version,
            "verified": self.verified,
            "state": self.state,
            "purpose": PURPOSE_PREFIX + self.account_id,
            # Who can read the chat: the business itself and every host or processor.
            "readers": [
                {
                    "name": p.entity,
                    "country": p.country,
                    "role": "the business",
                    "devices": list(p.devices),
                },
                *(
                    {
                        "name": q.name,
                        "country": q.country,
                        "role": q.role,
                        "devices": list(q.devices),
                    }
                    for q in p.processors
                ),
            ],
            "digest": disclosure_digest(p),
            "receipt": self.receipt,
        }


class Businesses:
    """Business state of the peers of one client."""

    def __init__(self, client: ClientCore) -> None:
        self.client = client
        self._fetched: dict[str, float] = {}  # account id -> monotonic time of last fetch
        self._jwks: dict[str, Any] | None = None

    # -- local state -------------------------------------------------------------------------

    def _load(self, tx: Connection, account_id: str) -> dict[str, Any] | None:
        row = tx.execute(
            select(s.business_chats.c.state_blob).where(s.business_chats.c.account_id == account_id)
        ).first()
        if row is None:
            return None
        data: dict[str, Any] = json.loads(
            self.client.store.sealer.open(f"business.{account_id}", row[0])
        )
        return data

    def _save(self, tx: Connection, account_id: str, data: dict[str, Any]) -> None:
        blob = self.client.store.sealer.seal(f"business.{account_id}", json.dumps(data).encode())
        t = s.business_chats
        if not tx.execute(
            update(t).where(t.c.account_id == account_id).values(state_blob=blob)
        ).rowcount:
            tx.execute(insert(t).values(account_id=account_id, state_blob=blob))

    def state(self, account_id: str) -> dict[str, Any] | None:
        with self.client.store.transaction() as tx:
            return self._load(tx, account_id)

    @staticmethod
    def _profile(data: dict[str, Any]) -> BusinessProfile | None:
        from baat.crypto.business import read_unverified

        blob = data.get("profile")
        # Verified before it was saved (``refresh``); the store is encrypted and authenticated.
        return None if not blob else read_unverified(base64.b64decode(blob))

    @staticmethod
    def _status(data: dict[str, Any], profile: BusinessProfile) -> str:
        if data.get("withdrawn"):
            return WITHDRAWN
        accepted = data.get("accepted_digest")
        if accepted is None:
            return NEW
        return ACCEPTED if accepted == disclosure_digest(profile) else CHANGED

    # -- talking to the server ---------------------------------------------------------------

    async def _http(self, method: str, path: str, **kw: Any) -> httpx.Response:
        c = self.client
        headers = {"authorization": c.credentials.header(), **kw.pop("headers", {})}
        try:
            async with httpx.AsyncClient(base_url=c.info.server_url, timeout=15) as http:
                return await http.request(method, path, headers=headers, **kw)
        except httpx.HTTPError as exc:
            raise NotConnected(f"cannot reach the server: {exc}") from exc

    async def _keys(self) -> dict[str, Any]:
        if self._jwks is None:
            r = await self._http("GET", "/.well-known/baat/keys")
            if r.status_code != 200:
                raise NotConnected(f"the server's keys are unavailable (HTTP {r.status_code})")
            self._jwks = r.json()
        return self._jwks

    async def _account_key(self, account_id: str) -> bytes:
        c = self.client
        await c.devices.devices_of(account_id)
        with c.store.transaction() as tx:
            key = c.devices.account_key(tx, account_id)
            contact = c.store.contact(tx, account_id)
        if key is None and contact is not None:
            key = contact.identity_key
        if not key:
            raise ClientError(f"no identity key known for {account_id} yet")
        return key

    async def refresh(self, account_id: str, force: bool = False) -> dict[str, Any] | None:
        """The business state of ``account_id`` after asking the server if it is due;
        None when the account is not a business.

        Raises:
            NotConnected: the server is unreachable.
            ClientError: the profile does not verify, or is older than one already seen.
        """
        if account_id == self.client.info.account_id:
            return None
        with self.client.store.transaction() as tx:
            data = self._load(tx, account_id)
        now = time.monotonic()
        if not force and data is not None:
            if not data.get("business"):
                if time.time() - data.get("checked_at", 0) < NOT_BUSINESS_RECHECK_S:
                    return None
            elif now - self._fetched.get(account_id, -1e9) < FRESH_S:
                return data
        r = await self._http("GET", f"/v1/business/{account_id}")
        self._fetched[account_id] = now
        data = dict(data or {})
        if r.status_code == 404:
            if data.get("business"):
                # A business does not stop being one: a server that says so hides the
                # disclosure. The last verified profile stays in force.
                return data
            data.update(business=False, checked_at=time.time())
            with self.client.store.transaction() as tx:
                self._save(tx, account_id, data)
            return None
        if r.status_code != 200:
            raise NotConnected(f"business profile unavailable (HTTP {r.status_code})")
        body = r.json()
        blob = base64.b64decode(body["signed_profile"])
        try:
            profile = verify_business_profile(
                await self._account_key(account_id), blob, account_id=account_id
            )
        except InvalidBusinessProfile as exc:
            raise ClientError(
                f"the business profile of {account_id} does not verify: {exc}"
            ) from exc
        if profile.version < int(data.get("version", 0)):
            raise ClientError(f"the server offers an older business profile of {account_id}")
        data.update(
            business=True,
            checked_at=time.time(),
            version=profile.version,
            profile=base64.b64encode(blob).decode(),
            verified=await self._verified(body.get("verification"), account_id, profile),
        )
        with self.client.store.transaction() as tx:
            self._save(tx, account_id, data)
        return data

    async def _verified(self, statement: object, account_id: str, profile: BusinessProfile) -> bool:
        """Whether the operator's statement verifies and names this profile's entity."""
        if not isinstance(statement, str):
            return False
        try:
            _, payload = receipts.verify_compact(statement, await self._keys(), VERIFICATION_TYP)
        except PrivacyError:
            return False
        return (
            isinstance(payload, dict)
            and payload.get("account_id") == account_id
            and payload.get("entity") == profile.entity
            and payload.get("country") == profile.country
        )

    # -- what the user sees and decides ------------------------------------------------------

    async def disclosure(self, username: str) -> Disclosure:
        """The disclosure card of the business ``username``.

        Raises:
            NotABusiness, UnknownContact, NotConnected, ClientError.
        """
        account_id, canonical, _ = await self.client.lookup(username.strip().casefold())
        return await self.disclosure_of(account_id, canonical)

    async def disclosure_of(self, account_id: str, username: str) -> Disclosure:
        """The card of ``account_id``, whose name is ``username``.

        Raises:
            NotABusiness, NotConnected, ClientError.
        """
        self.client._names.setdefault(account_id, username)  # to fetch its device list
        data = await self.refresh(account_id, force=True)
        if data is None:
            raise NotABusiness(f"{username} is not a business account")
        profile = self._profile(data)
        assert profile is not None
        return Disclosure(
            account_id,
            username,
            profile,
            bool(data.get("verified")),
            self._status(data, profile),
            data.get("receipt"),
        )

    async def accept(self, username: str, method: str = "cli") -> Disclosure:
        """Accept the current disclosure: a consent with a signed receipt, checked here;
        queued messages go and held ones are shown.

        Raises:
            NotABusiness, NotConnected, ClientError: also when the receipt does not verify.
        """
        shown = await self.disclosure(username)
        receipt = await self._consent("POST", shown.account_id, method)
        digest = disclosure_digest(shown.profile)
        with self.client.store.transaction() as tx:
            data = self._load(tx, shown.account_id) or {}
            data.update(accepted_digest=digest, withdrawn=False, receipt=receipt)
            self._save(tx, shown.account_id, data)
            contact = self.client.store.contact(tx, shown.account_id)
            if contact is None or not contact.identity_changed:
                tx.execute(
                    update(s.messages)
                    .where(
                        s.messages.c.chat == shown.account_id,
                        s.messages.c.direction == "in",
                        s.messages.c.status == "held",
                    )
                    .values(status="new")
                )
            tx.execute(
                update(s.messages)
                .where(
                    s.messages.c.chat == shown.account_id,
                    s.messages.c.direction == "out",
                    s.messages.c.status == "held",
                )
                .values(status="sending")
            )
        transport = self.client.transport
        if transport is not None and not transport.closed.is_set():
            await self.client.flush_outbox()
        return Disclosure(
            shown.account_id, shown.username, shown.profile, shown.verified, ACCEPTED, receipt
        )

    async def withdraw(self, username: str, method: str = "cli") -> dict[str, Any]:
        """Withdraw the consent: the chat becomes read-only. Returns the signed receipt.

        Raises:
            NotABusiness, NotConnected, ClientError.
        """
        shown = await self.disclosure(username)
        receipt = await self._consent("DELETE", shown.account_id, method)
        with self.client.store.transaction() as tx:
            data = self._load(tx, shown.account_id) or {}
            data.update(withdrawn=True, withdrawal=receipt)
            self._save(tx, shown.account_id, data)
        return receipt

    async def _consent(self, method: str, account_id: str, how: str) -> dict[str, Any]:
        r = await self._http(
            method,
            f"/v1/consents/{PURPOSE_PREFIX}{account_id}",
            headers={COLLECTION_HEADER: how},
        )
        if r.status_code not in (200, 201):
            try:
                err = r.json()["error"]
                code, message = str(err["code"]), str(err["message"])
            except (ValueError, KeyError, TypeError):
                code, message = "http_error", f"HTTP {r.status_code}"
            raise ClientError(f"{code}: {message}")
        body: dict[str, Any] = r.json()
        try:
            checked = receipts.verify(body["receipt"], await self._keys())
        except (PrivacyError, KeyError) as exc:
            raise ClientError(f"the consent receipt does not verify: {exc}") from exc
        if checked.record.get("purpose", {}).get("id") != PURPOSE_PREFIX + account_id:
            raise ClientError("the consent receipt is for another purpose")
        return body

    # -- hooks of the send and receive paths ---------------------------------------------------

    async def before_send(self, account_id: str) -> bool:
        """Called before a message to ``account_id`` is queued. True when it must be held
        (the disclosure changed since it was accepted).

        Raises:
            DisclosureRequired: never accepted.
            BusinessChatReadOnly: the consent was withdrawn.
            NotConnected: the state is unknown and the server unreachable.
        """
        try:
            data = await self.refresh(account_id)
        except NotConnected:
            # Offline: decide from what is stored. A peer never checked is queued; the
            # check before encryption (``check_recipient``) holds it if it is a business.
            data = self.state(account_id)
            if data is not None and not data.get("business"):
                data = None
        if data is None:
            return False
        profile = self._profile(data)
        assert profile is not None
        status = self._status(data, profile)
        if status == WITHDRAWN:
            raise BusinessChatReadOnly(
                "you withdrew your consent to this business chat: it is read-only"
            )
        if status == NEW:
            raise DisclosureRequired(
                f"{profile.display_name} is a business: read its disclosure ('baat business "
                "info NAME') and accept it before the first message"
            )
        return status == CHANGED

    async def check_recipient(self, account_id: str) -> None:
        """Before a queued message is encrypted: accepted, current, and every device named.

        Raises:
            DisclosureRequired (code ``disclosure_changed``), BusinessChatReadOnly,
            DeviceNotNamed, NotConnected.
        """
        if await self.before_send(account_id):
            raise DisclosureRequired(
                "the business changed who can read the chat: accept the new disclosure",
                "disclosure_changed",
            )
        data = self.state(account_id)
        if data is None or not data.get("business"):
            return
        profile = self._profile(data)
        assert profile is not None
        devices = await self.client.devices.devices_of(account_id)
        extra = unnamed_devices(profile, frozenset(devices))
        if extra:
            raise DeviceNotNamed(
                f"devices {extra} of this business are not named in its profile: refused"
            )

    async def before_receive(self, account_id: str) -> None:
        """Learn whether a sender is a business before its message is stored."""
        try:
            await self.refresh(account_id)
        except ClientError:
            return  # the stored state (or none) decides; receiving never stops for it

    def incoming_status(self, tx: Connection, account_id: str, device_id: int, status: str) -> str:
        """``status`` for a message from ``account_id``: "held" until the disclosure is
        accepted (and while it is withdrawn or changed).

        Raises:
            DecryptionError: the sending device is not named in the business profile.
        """
        data = self._load(tx, account_id)
        if data is None or not data.get("business"):
            return status
        profile = self._profile(data)
        assert profile is not None
        if unnamed_devices(profile, frozenset({device_id})):
            from baat.crypto import DecryptionError

            raise DecryptionError(
                f"device {device_id} of a business is not named in its profile: refused"
            )
        return status if self._status(data, profile) == ACCEPTED else "held"

    # -- the business's own side ---------------------------------------------------------------

    async def own_profile(self) -> BusinessProfile | None:
        """This account's published profile, verified with its own key; None if none.

        Raises:
            NotConnected, ClientError.
        """
        me = self.client.info.account_id
        r = await self._http("GET", f"/v1/business/{me}")
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise NotConnected(f"business profile unavailable (HTTP {r.status_code})")
        blob = base64.b64decode(r.json()["signed_profile"])
        key = self.client.identity.identity_key if self.client.info.device_id == 1 else None
        if key is None:
            key = await self._account_key(me)
        try:
            return verify_business_profile(key, blob, account_id=me)
        except InvalidBusinessProfile as exc:
            raise ClientError(f"the stored business profile does not verify: {exc}") from exc

    async def publish(self, **fields: Any) -> BusinessProfile:
        """Sign and publish the next version of this account's business profile: the
        fields given replace those of the current one (``display_name``, ``entity``,
        ``country``, ``contact``, ``purposes``, ``retention``, ``devices``, ``processors``).
        Only the primary device holds the key that signs it.

        Raises:
            ClientError: not the primary device, a field is invalid (``invalid_business_profile``)
                or the server refused.
            NotConnected.
        """
        from baat.crypto.business import (
            BUSINESS_PROFILE_FORMAT,
            Processor,
            sign_business_profile,
        )

        c = self.client
        if c.info.device_id != 1:
            raise ClientError("only the account's first device signs the business profile")
        current = await self.own_profile()
        base: dict[str, Any] = {
            "display_name": c.info.username,
            "entity": c.info.username,
            "country": "IN",
            "contact": "",
            "purposes": ("answering your messages",),
            "retention": "as long as the chat lasts",
            "devices": (1,),
            "processors": (),
        }
        if current is not None:
            base = {k: getattr(current, k) for k in base}
        base.update({k: v for k, v in fields.items() if v is not None})
        if not base["contact"]:
            base["contact"] = f"baat:{c.info.username}"
        procs = tuple(
            q
            if isinstance(q, Processor)
            else Processor(q["name"], q["country"], q["role"], tuple(q["devices"]))
            for q in base["processors"]
        )
        profile = BusinessProfile(
            v=BUSINESS_PROFILE_FORMAT,
            account_id=c.info.account_id,
            version=(current.version if current is not None else 0) + 1,
            display_name=base["display_name"],
            entity=base["entity"],
            country=str(base["country"]).upper(),
            contact=base["contact"],
            purposes=tuple(base["purposes"]),
            retention=base["retention"],
            devices=tuple(sorted(set(base["devices"]) | {1})),
            processors=procs,
            issued_at=int(time.time()),
        )
        try:
            blob = sign_business_profile(c.identity, profile)
        except InvalidBusinessProfile as exc:
            raise ClientError(f"invalid_business_profile: {exc}") from exc
        r = await self._http(
            "PUT", "/v1/business/profile", json={"signed_profile": base64.b64encode(blob).decode()}
        )
        if r.status_code != 204:
            try:
                err = r.json()["error"]
                raise ClientError(f"{err['code']}: {err['message']}")
            except (ValueError, KeyError, TypeError):
                raise ClientError(
                    f"the server refused the profile (HTTP {r.status_code})"
                ) from None
        return profile
