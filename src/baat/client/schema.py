"""The client's local store, declared once.

Columns holding secrets or message content are AES-256-GCM ciphertext under the profile
key (see ``store.py``); each says so in its comment. Every column names its data-inventory
entry, checked by the privacy tests like the server's.
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, UniqueConstraint

metadata = MetaData()


def _inv(key: str) -> dict[str, str]:
    return {"inventory": key}


# One row: the device identity and the server credentials (both encrypted).
identity = Table(
    "identity",
    metadata,
    Column("id", Integer, primary_key=True, info=_inv("client.identity_keys")),
    Column("identity_blob", LargeBinary, nullable=False, info=_inv("client.identity_keys")),
    Column("credentials_blob", LargeBinary, nullable=False, info=_inv("client.credentials")),
    Column("next_prekey_id", Integer, nullable=False, info=_inv("client.prekeys_private")),
)

prekeys = Table(
    "prekeys",
    metadata,
    Column("kind", Integer, primary_key=True, info=_inv("client.prekeys_private")),
    Column("key_id", Integer, primary_key=True, info=_inv("client.prekeys_private")),
    Column("private_blob", LargeBinary, nullable=False, info=_inv("client.prekeys_private")),
)

# When each signed prekey (curve signed, KEM last resort) was made and replaced, for rotation
# with a grace period (client/prekeys.py); the private halves are in ``prekeys``.
signed_prekey_times = Table(
    "signed_prekey_times",
    metadata,
    Column("kind", Integer, primary_key=True, info=_inv("client.prekeys_private")),
    Column("key_id", Integer, primary_key=True, info=_inv("client.prekeys_private")),
    Column("created_at", Integer, nullable=False, info=_inv("client.prekeys_private")),
    Column("retired_at", Integer, nullable=True, info=_inv("client.prekeys_private")),
)

# Contacts are looked up by account id; the name and identity key are encrypted.
contacts = Table(
    "contacts",
    metadata,
    Column("account_id", String(32), primary_key=True, info=_inv("client.contacts")),
    Column("username_blob", LargeBinary, nullable=False, info=_inv("client.contacts")),
    Column("identity_blob", LargeBinary, nullable=False, info=_inv("client.contacts")),
    # 0 unverified, 1 verified by safety number
    Column("verified", Integer, nullable=False, info=_inv("client.contacts")),
    # 1 when a different identity key arrived and the user has not accepted it yet
    Column("identity_changed", Integer, nullable=False, info=_inv("client.contacts")),
    Column("added_at", Integer, nullable=False, info=_inv("client.contacts")),
)

sessions = Table(
    "sessions",
    metadata,
    Column("account_id", String(32), primary_key=True, info=_inv("client.sessions")),
    Column("device_id", Integer, primary_key=True, info=_inv("client.sessions")),
    Column("state_blob", LargeBinary, nullable=False, info=_inv("client.sessions")),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True, info=_inv("client.messages")),
    # The peer's account id (the chat) in clear, so history can be listed without
    # decrypting every row; the store file as a whole is the device's.
    Column("chat", String(64), nullable=False, index=True, info=_inv("client.messages")),
    Column("sender_account", String(32), nullable=False, info=_inv("client.messages")),
    Column("sender_device", Integer, nullable=False, info=_inv("client.messages")),
    Column("message_id", String(64), nullable=False, info=_inv("client.messages")),
    Column("direction", String(3), nullable=False, info=_inv("client.messages")),  # in/out
    # sending, sent, delivered, received, held, imported
    Column("status", String(16), nullable=False, info=_inv("client.messages")),
    Column("body_blob", LargeBinary, nullable=False, info=_inv("client.messages")),  # encrypted
    Column("sent_at", Integer, nullable=False, info=_inv("client.messages")),
    Column("received_at", Integer, nullable=False, info=_inv("client.messages")),
    UniqueConstraint("sender_account", "sender_device", "message_id", "chat", name="msg_once"),
)

# Messages written but not yet accepted by the server: sent again on every connect.
outbox = Table(
    "outbox",
    metadata,
    Column("message_id", String(64), primary_key=True, info=_inv("client.outbox")),
    Column("recipient_account", String(32), nullable=False, info=_inv("client.outbox")),
    Column("payload_blob", LargeBinary, nullable=False, info=_inv("client.outbox")),  # encrypted
    Column("created_at", Integer, nullable=False, info=_inv("client.outbox")),
)

# Pairwise messages sent in the last days, kept to send again on a retry request
# (client/retries.py); the payload is encrypted like the outbox's.
resend = Table(
    "resend",
    metadata,
    Column("message_id", String(64), primary_key=True, info=_inv("client.outbox")),
    Column("recipient_account", String(32), nullable=False, info=_inv("client.outbox")),
    Column("payload_blob", LargeBinary, nullable=False, info=_inv("client.outbox")),  # encrypted
    Column("sent_at", Integer, nullable=False, index=True, info=_inv("client.outbox")),
    Column("attempts", Integer, nullable=False, info=_inv("client.outbox")),
)

settings = Table(
    "settings",
    metadata,
    Column("name", String(64), primary_key=True, info=_inv("client.settings")),
    Column("value_blob", LargeBinary, nullable=False, info=_inv("client.settings")),
)

# -- imported chats (baat.client.importing) ----------------------------------------------
# Their messages live in ``messages`` with status "imported", ``sender_account`` the
# imported chat's id, ``sender_device`` 0 and ``message_id`` the parser's import key, so
# ``msg_once`` is the unique index that keeps re-imports from adding duplicates.

imported_chats = Table(
    "imported_chats",
    metadata,
    # "wa:" and a SHA-256 prefix of the chat's name: the same chat always gets the same id.
    Column("id", String(32), primary_key=True, info=_inv("client.imported_chats")),
    Column("source", String(16), nullable=False, info=_inv("client.imported_chats")),
    # The conversation its messages are in: the id itself, or a contact's account id.
    Column("target_chat", String(64), nullable=False, info=_inv("client.imported_chats")),
    Column("name_blob", LargeBinary, nullable=False, info=_inv("client.imported_chats")),
    Column("imported_at", Integer, nullable=False, info=_inv("client.imported_chats")),
    # Encrypted JSON: who is who (--me, --map) and every import's dialect, zone and summary.
    Column("details_blob", LargeBinary, nullable=False, info=_inv("client.imported_chats")),
)

# Files from an export's zip, in encrypted chunks; messages name them by media id. Kept in
# the database rather than as files so that an import that fails leaves nothing behind.
imported_media = Table(
    "imported_media",
    metadata,
    Column("media_id", String(32), primary_key=True, info=_inv("client.imported_chats")),
    Column("chunk", Integer, primary_key=True, info=_inv("client.imported_chats")),
    Column("blob", LargeBinary, nullable=False, info=_inv("client.imported_chats")),  # encrypted
)

# -- several devices and groups (baat.client.devices, baat.client.group_messaging) --------

# The last device list of an account this device accepted (docs/GROUPS.md §2.3): the
# account identity key trusted for it, and the signed list, both encrypted.
device_lists = Table(
    "device_lists",
    metadata,
    Column("account_id", String(32), primary_key=True, info=_inv("client.contacts")),
    Column("version", Integer, nullable=False, info=_inv("client.contacts")),
    Column("account_key_blob", LargeBinary, nullable=False, info=_inv("client.contacts")),
    Column("list_blob", LargeBinary, nullable=False, info=_inv("client.contacts")),
)

# One row per group: its state (name, members, admins) and this device's bookkeeping
# (member names, who holds our sender key, pending events), both encrypted.
groups = Table(
    "groups",
    metadata,
    Column("chat", String(32), primary_key=True, info=_inv("client.groups")),
    Column("state_blob", LargeBinary, nullable=False, info=_inv("client.groups")),
    Column("meta_blob", LargeBinary, nullable=False, info=_inv("client.groups")),
)

# Sender keys (docs/GROUPS.md §1.3): our own, and every member device's we received.
sender_keys = Table(
    "sender_keys",
    metadata,
    Column("chat", String(32), primary_key=True, info=_inv("client.sessions")),
    Column("account_id", String(32), primary_key=True, info=_inv("client.sessions")),
    Column("device_id", Integer, primary_key=True, info=_inv("client.sessions")),
    Column("key_id", Integer, primary_key=True, info=_inv("client.sessions")),
    Column("state_blob", LargeBinary, nullable=False, info=_inv("client.sessions")),
    Column("created_at", Integer, nullable=False, info=_inv("client.sessions")),
)

# Messages of chats with a disappearing timer: deleted with their bodies at expires_at (ms).
expiring = Table(
    "expiring",
    metadata,
    Column("message_row", Integer, primary_key=True, info=_inv("client.messages")),
    Column("expires_at", Integer, nullable=False, index=True, info=_inv("client.messages")),
)

# Businesses this device wrote to or heard from (baat.client.business, docs/BUSINESS.md §3):
# whether the account is a business, its last verified profile, the disclosure accepted and
# the consent receipt, all in one encrypted JSON document.
business_chats = Table(
    "business_chats",
    metadata,
    Column("account_id", String(32), primary_key=True, info=_inv("client.businesses")),
    Column("state_blob", LargeBinary, nullable=False, info=_inv("client.businesses")),
)

# Sealed sender (client/sealed.py, docs/CRYPTO.md §18): this account's profile key, the
# profile keys contacts shared end to end, the pinned trust roots and this device's sender
# certificate. ``value_blob`` is encrypted; ``name`` is "own", "contact:<account id>",
# "roots" or "certificate".
sealed_keys = Table(
    "sealed_keys",
    metadata,
    Column("name", String(64), primary_key=True, info=_inv("client.profile_keys")),
    Column("value_blob", LargeBinary, nullable=False, info=_inv("client.profile_keys")),
)
