"""What the client's feature modules share with ``Client`` (sdk.py) without importing it.

``Client`` is composed of features (``media.Attachments``, ``devices.DeviceDirectory``,
``group_messaging.GroupMessaging``, ``features.Features``, ``expiry.ExpiryTimer``,
``prekeys.PrekeyKeeper``, ``retries.Retries``, and the functions of ``peers.py``). Each
receives the client as a ``ClientCore``: the narrow, typed interface below of what it uses
(the store, the clock, sending envelopes, resolving names, ...), and the other features it
calls as the small protocols beside it. sdk.py imports the features; no feature imports
sdk.py back (docs/ARCHITECTURE.md, "Layers").

Errors::

    ClientError
    ├── RegistrationFailed   the server refused the registration (code from the server)
    ├── UnknownContact       no such user on the server
    ├── IdentityChanged      the contact's identity key changed; verify before sending
    ├── NotConnected         the operation needs the server and it is unreachable
    └── SendRefused          the server refused a send; it stays in the outbox
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from baat.client.store import ProfileInfo, Store, StoredMessage
    from baat.client.transport import Transport
    from baat.contract import DeviceCredentials
    from baat.crypto import IdentityKeyPair, SessionState
    from baat.proto import Deliver, OutgoingEnvelope, SendResult

# Prefix of a contact name the server has not confirmed; never a valid username character.
UNCONFIRMED = "~"


class ClientError(Exception):
    code = "client_error"


class RegistrationFailed(ClientError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class UnknownContact(ClientError):
    code = "unknown_contact"


class IdentityChanged(ClientError):
    code = "identity_changed"


class NotConnected(ClientError):
    """``code`` is the server's when it refused (e.g. ``auth_failed`` after the account was
    deleted elsewhere), else ``not_connected``."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code or "not_connected"


# Refusals about one recipient only (docs/PROTOCOL.md, "Quotas"): the message stays in the
# outbox and the other chats' messages are still sent.
# A business chat waiting for the user's acceptance, or refusing a device its profile does
# not name (client/business.py), holds that chat only, the same way.
RECIPIENT_REFUSALS = frozenset(
    {
        "recipient_queue_full",
        "recipient_rate_limited",
        "disclosure_required",
        "disclosure_changed",
        "business_chat_read_only",
        "device_not_in_profile",
    }
)


class SendRefused(ClientError):
    """The server refused a send (rate limit, size, storage down); it stays queued."""

    def __init__(self, code: str, message: str, retry_after_ms: int = 0) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.retry_after_ms = retry_after_ms


class Content(msgspec.Struct, frozen=True, omit_defaults=True):
    """What travels inside the encryption (never visible to the server)."""

    v: int
    type: str
    sender_name: str
    sent_at: int
    text: str = ""
    # An encoded AttachmentPointer (media.py); readers without the field show the text.
    attachment: bytes | None = None
    # Added with groups and several devices (docs/GROUPS.md §4); older readers ignore them
    # and store a type they do not know as "unsupported".
    to: str = ""  # the chat: a group's chat id, or the peer in a copy for our own devices
    ref: str = ""  # the message replied to, reacted to, edited or deleted
    refs: tuple[str, ...] = ()  # the messages a receipt is for
    emoji: str = ""
    # receipt "delivered" | "read"; typing "started" | "stopped"; retry: the device that
    # sent the message, in decimal (retries.py)
    kind: str = ""
    expire: int = 0  # disappearing timer of the chat, seconds (0: off)
    data: bytes | None = None  # group event or state, sender key distribution, wrapped copy
    names: dict[str, str] = msgspec.field(default_factory=dict)  # account id -> username
    key: bytes | None = None  # in a copy for our own devices: the peer's account key
    # The sender's profile key (docs/CRYPTO.md §18.3), in messages people see: contacts
    # and group members learn it end to end and may then send sealed messages.
    profile_key: bytes | None = None


_content_decoder = msgspec.msgpack.Decoder(Content)


@dataclass(frozen=True)
class Incident:
    """Something the user must be told about while receiving."""

    kind: str  # "identity_changed" | "undecryptable"
    account_id: str
    detail: str


@dataclass(frozen=True)
class Origin:
    """Where a decrypted content comes from and which chat it belongs to."""

    chat: str
    sender_account: str
    sender_device: int
    message_id: str
    direction: str  # "in" | "out" (a copy of our own message from another device)
    status: str
    sender_name: str
    peer: str  # the chat's display name: the contact, or the group's name
    group: str | None = None  # the group's name in a group chat


class DevicesPort(Protocol):
    """What the other features use of ``devices.DeviceDirectory``."""

    def account_key(self, tx: Connection, account_id: str) -> bytes | None: ...

    def expected_key(self, tx: Connection, account_id: str, device_id: int) -> bytes | None: ...

    async def devices_of(self, account_id: str) -> dict[int, bytes]: ...

    async def encrypt(
        self,
        accounts: Iterable[str],
        payload: bytes,
        chat: str,
        fresh: Collection[tuple[str, int]] = (),
    ) -> list[OutgoingEnvelope]: ...

    async def encrypt_account(
        self,
        account_id: str,
        devices: dict[int, bytes],
        payload: bytes,
        fresh: Collection[int] = (),
    ) -> list[OutgoingEnvelope]: ...


class GroupsPort(Protocol):
    """What the other features use of ``group_messaging.GroupMessaging``."""

    def on_pairwise(
        self, tx: Connection, d: Deliver, content: Content, now: int
    ) -> StoredMessage | None: ...

    def name_of(self, tx: Connection, chat: str) -> str | None: ...

    def members_in(self, tx: Connection, chat: str) -> list[str]: ...

    def names_in(self, tx: Connection, chat: str) -> dict[str, str]: ...


class AttachmentsPort(Protocol):
    """What the other features use of ``media.Attachments``."""

    def incoming(self, d: Deliver, content: Content) -> dict[str, Any]: ...


class FeaturesPort(Protocol):
    """What the other features use of ``features.Features``."""

    async def post(self, chat: str, content: Content, body: dict[str, Any]) -> str: ...

    def file(
        self, tx: Connection, d: Deliver, content: Content, o: Origin, now: int
    ) -> StoredMessage | None: ...

    def next_expiry(self) -> int | None: ...

    def expire(self) -> int: ...


class SealedPort(Protocol):
    """What the other features use of ``sealed.SealedSender``."""

    def share(self) -> bytes | None: ...

    def learn(
        self, tx: Connection, account_id: str, key: bytes | None, device_id: int = 0
    ) -> None: ...


class ExpiryPort(Protocol):
    """What the other features use of ``expiry.ExpiryTimer``."""

    def due(self, expires_at: int) -> None: ...


class ClientCore(Protocol):
    """What a feature module uses of the ``Client`` it belongs to. Read-only properties, so
    that ``Client``'s attributes of the concrete types satisfy it; the underscored members
    are the client's internals that its features share and its users do not."""

    @property
    def store(self) -> Store: ...

    @property
    def info(self) -> ProfileInfo: ...

    @property
    def identity(self) -> IdentityKeyPair: ...

    @property
    def credentials(self) -> DeviceCredentials: ...

    @property
    def transport(self) -> Transport | None: ...

    @property
    def clock(self) -> Callable[[], int]: ...

    @property
    def devices(self) -> DevicesPort: ...

    @property
    def groups(self) -> GroupsPort: ...

    @property
    def attachments(self) -> AttachmentsPort: ...

    @property
    def features(self) -> FeaturesPort: ...

    @property
    def expiry(self) -> ExpiryPort: ...

    @property
    def sealed(self) -> SealedPort: ...

    @property
    def status_listeners(self) -> list[Callable[[str, str], None]]: ...

    @property
    def attachment_listeners(self) -> list[Callable[[StoredMessage], None]]: ...

    @property
    def expiry_listeners(self) -> list[Callable[[str, list[str]], None]]: ...

    @property
    def _names(self) -> dict[str, str]: ...

    @property
    def _store_lock(self) -> asyncio.Lock: ...

    async def lookup(self, username: str) -> tuple[str, str, list[int]]: ...

    async def resolve(self, username: str) -> tuple[str, str]: ...

    async def flush_outbox(self) -> list[SendResult]: ...

    async def send_envelopes(
        self, message_id: str, envelopes: list[OutgoingEnvelope]
    ) -> SendResult: ...

    def _incident(self, incident: Incident) -> None: ...

    def _need(self) -> Transport: ...

    async def _top_up(self) -> None: ...

    def _decrypt(self, tx: Connection, d: Deliver, now: int) -> tuple[SessionState, bytes]: ...
