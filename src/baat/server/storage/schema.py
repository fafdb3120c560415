"""The server's whole schema, declared once.

Every column names the data-inventory entry that explains it (``info={"inventory": ...}``);
a test walks the real SQLite and PostgreSQL schemas and the inventory and fails on anything
undeclared in either direction. Keep this file small: every column here is data the server
holds about people.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
    text,
)

metadata = MetaData()

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY (a rowid alias).
_SEQ = BigInteger().with_variant(Integer(), "sqlite")


def _inv(key: str) -> dict[str, str]:
    return {"inventory": key}


# Bookkeeping of the migration runner; holds no personal data.
schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, info=_inv("system.schema_version")),
    Column("applied_at", BigInteger, nullable=False, info=_inv("system.schema_version")),
)

accounts = Table(
    "accounts",
    metadata,
    # Random, never reused, never derived from a phone number or a name.
    Column("account_id", String(32), primary_key=True, info=_inv("account.id")),
    # Case-folded; changing it is allowed, so nothing else references it.
    Column("username", String(64), nullable=False, unique=True, info=_inv("account.username")),
    # Where this account's data lives (a region code); chooses storage, never rights.
    Column("region", String(16), nullable=False, info=_inv("account.region")),
    # Jurisdiction whose wording the notice cites (IN, EU, US, ...).
    Column("jurisdiction", String(8), nullable=False, info=_inv("account.jurisdiction")),
    # Day granularity only (days since the Unix epoch): all that legal process can obtain.
    Column("created_day", Integer, nullable=False, info=_inv("account.created_day")),
    Column("last_seen_day", Integer, nullable=False, info=_inv("account.last_seen_day")),
)

devices = Table(
    "devices",
    metadata,
    Column("account_id", String(32), nullable=False, info=_inv("account.id")),
    Column("device_id", Integer, nullable=False, info=_inv("device.id")),
    Column("identity_key", LargeBinary, nullable=False, info=_inv("device.identity_key")),
    Column("identity_dh_key", LargeBinary, nullable=False, info=_inv("device.identity_key")),
    Column("identity_dh_sig", LargeBinary, nullable=False, info=_inv("device.identity_key")),
    Column("created_day", Integer, nullable=False, info=_inv("device.created_day")),
    # SHA-256 of the device's HTTP bearer token; the token itself never reaches storage.
    Column("auth_token_hash", LargeBinary(32), nullable=False, info=_inv("device.auth_token")),
    PrimaryKeyConstraint("account_id", "device_id"),
)

# Signed prekeys (curve) and last-resort KEM prekeys: one current row per device and kind.
signed_prekeys = Table(
    "signed_prekeys",
    metadata,
    Column("account_id", String(32), nullable=False, info=_inv("account.id")),
    Column("device_id", Integer, nullable=False, info=_inv("device.id")),
    Column("kind", Integer, nullable=False, info=_inv("device.prekeys")),
    Column("key_id", BigInteger, nullable=False, info=_inv("device.prekeys")),
    Column("public_key", LargeBinary, nullable=False, info=_inv("device.prekeys")),
    Column("signature", LargeBinary, nullable=False, info=_inv("device.prekeys")),
    PrimaryKeyConstraint("account_id", "device_id", "kind"),
)

# One-time prekeys (curve and KEM). Claimed with one DELETE ... RETURNING so that each is
# handed out exactly once, also under concurrent fetches.
one_time_prekeys = Table(
    "one_time_prekeys",
    metadata,
    Column("account_id", String(32), nullable=False, info=_inv("account.id")),
    Column("device_id", Integer, nullable=False, info=_inv("device.id")),
    Column("kind", Integer, nullable=False, info=_inv("device.prekeys")),
    Column("key_id", BigInteger, nullable=False, info=_inv("device.prekeys")),
    Column("public_key", LargeBinary, nullable=False, info=_inv("device.prekeys")),
    Column("signature", LargeBinary, nullable=False, info=_inv("device.prekeys")),
    PrimaryKeyConstraint("account_id", "device_id", "kind", "key_id"),
)

# Undelivered envelopes only. A row is deleted when its recipient device acknowledges it,
# or when it expires (30 days). The content is ciphertext the server cannot read.
envelopes = Table(
    "envelopes",
    metadata,
    Column("seq", _SEQ, Identity(), primary_key=True, info=_inv("envelope.seq")),
    # Random id the recipient acknowledges; it says nothing about sender or recipient.
    Column("guid", LargeBinary(16), nullable=False, unique=True, info=_inv("envelope.seq")),
    Column("recipient_account", String(32), nullable=False, info=_inv("envelope.recipient")),
    Column("recipient_device", Integer, nullable=False, info=_inv("envelope.recipient")),
    # Kept only for an authenticated (unsealed) send, to drop its retries; NULL for a sealed
    # envelope, whose sender the server never learns (migration 12, docs/CRYPTO.md §18).
    Column("sender_account", String(32), nullable=True, info=_inv("envelope.sender")),
    Column("sender_device", Integer, nullable=True, info=_inv("envelope.sender")),
    Column("message_id", String(64), nullable=False, info=_inv("envelope.message_id")),
    Column("content", LargeBinary, nullable=False, info=_inv("envelope.content")),
    # Milliseconds since the epoch; drives the 30-day expiry.
    Column("stored_at", BigInteger, nullable=False, info=_inv("envelope.stored_at")),
    UniqueConstraint(
        "sender_account",
        "sender_device",
        "message_id",
        "recipient_account",
        "recipient_device",
        name="envelopes_idempotency",
    ),
    Index("envelopes_by_recipient", "recipient_account", "recipient_device", "seq"),
    # A retried sealed send is recognised by its random message id and recipient device
    # alone: NULL senders never collide in ``envelopes_idempotency``.
    Index(
        "envelopes_sealed_idempotency",
        "message_id",
        "recipient_account",
        "recipient_device",
        unique=True,
        sqlite_where=text("sender_account IS NULL"),
        postgresql_where=text("sender_account IS NULL"),
    ),
)

# Recently accepted (sender device, message id) pairs, so that a retried send is never
# delivered twice even after the envelope was acknowledged and deleted. No recipient is
# recorded here: this table cannot say who talked to whom.
recent_sends = Table(
    "recent_sends",
    metadata,
    Column("sender_account", String(32), nullable=False, info=_inv("envelope.recent_send")),
    Column("sender_device", Integer, nullable=False, info=_inv("envelope.recent_send")),
    Column("message_id", String(64), nullable=False, info=_inv("envelope.recent_send")),
    Column("expires_at", BigInteger, nullable=False, info=_inv("envelope.recent_send")),
    PrimaryKeyConstraint("sender_account", "sender_device", "message_id"),
)

# -- attachment blobs (baat.server.blobs) -------------------------------------------------
# Encrypted attachments, held only until every recipient device fetched them or 30 days
# passed. The server never sees a key: the bytes are ciphertext made on the sender's device.
blobs = Table(
    "blobs",
    metadata,
    # 192 random bits, urlsafe base64: the capability to fetch the ciphertext.
    Column("blob_id", String(64), primary_key=True, info=_inv("blob.id")),
    # Only the uploading device may append; erasure of the account deletes its uploads.
    Column("uploader_account", String(32), nullable=False, info=_inv("blob.uploader")),
    Column("uploader_device", Integer, nullable=False, info=_inv("blob.uploader")),
    # Declared ciphertext length and bytes received so far (the resumable upload offset).
    Column("length", BigInteger, nullable=False, info=_inv("blob.size")),
    Column("received", BigInteger, nullable=False, info=_inv("blob.size")),
    # How many distinct devices may fetch it, and 16-byte keyed hashes of those that did
    # (concatenated): enough to count each device once, without listing recipients.
    Column("fetches_allowed", Integer, nullable=False, info=_inv("blob.fetches")),
    Column("fetched_by", LargeBinary, nullable=False, info=_inv("blob.fetches")),
    # Seconds since the epoch; the blob is deleted then even if nobody fetched it.
    Column("expires_at", BigInteger, nullable=False, info=_inv("blob.expires_at")),
    Index("blobs_by_expiry", "expires_at"),
    # The per-account blob quota counts an account's blobs (baat.server.quotas).
    Index("blobs_by_uploader", "uploader_account"),
)

# Ciphertext bytes when the database is PostgreSQL (several nodes share it); with SQLite
# the bytes live in files under data_dir/blobs/ and this table stays empty.
blob_chunks = Table(
    "blob_chunks",
    metadata,
    Column("blob_id", String(64), nullable=False, info=_inv("blob.content")),
    Column("position", BigInteger, nullable=False, info=_inv("blob.content")),
    Column("data", LargeBinary, nullable=False, info=_inv("blob.content")),
    PrimaryKeyConstraint("blob_id", "position"),
)

# One-time codes that let a new device join an account (expire after 10 minutes). Only a
# hash of the code is stored: the code itself is the capability.
link_codes = Table(
    "link_codes",
    metadata,
    Column("code_hash", LargeBinary(32), primary_key=True, info=_inv("device.link_code")),
    Column("account_id", String(32), nullable=False, info=_inv("account.id")),
    Column("expires_at", BigInteger, nullable=False, info=_inv("device.link_code")),
)

# The account's device list as signed by its primary device. The server keeps it opaque
# (senders verify the signature) and only refuses an older version than it has.
device_lists = Table(
    "device_lists",
    metadata,
    Column("account_id", String(32), primary_key=True, info=_inv("account.id")),
    Column("version", BigInteger, nullable=False, info=_inv("account.device_list")),
    Column("signed_list", LargeBinary, nullable=False, info=_inv("account.device_list")),
)

# A business account's signed profile (baat.crypto.business, docs/BUSINESS.md §2): who can
# read chats with it, where, for what and for how long. Public by design: every user who
# writes to the business is shown it; the server checks the signature and the version.
business_profiles = Table(
    "business_profiles",
    metadata,
    Column("account_id", String(32), primary_key=True, info=_inv("account.id")),
    Column("version", BigInteger, nullable=False, info=_inv("business.profile")),
    Column("signed_profile", LargeBinary, nullable=False, info=_inv("business.profile")),
    Column("updated_day", Integer, nullable=False, info=_inv("business.profile")),
)

# The operator's signed statement that it checked a business (``baat admin
# verify-business``): a compact JWS under the server's published keys.
business_verifications = Table(
    "business_verifications",
    metadata,
    Column("account_id", String(32), primary_key=True, info=_inv("account.id")),
    Column("statement", String(4096), nullable=False, info=_inv("business.verification")),
    Column("verified_day", Integer, nullable=False, info=_inv("business.verification")),
)

# One-time registration invites for ``baat serve --registration invite``: SHA-256 of the
# code (``baat admin invite`` shows the code once), deleted when used or expired.
registration_invites = Table(
    "registration_invites",
    metadata,
    Column("code_hash", LargeBinary(32), primary_key=True, info=_inv("server.invite")),
    Column("expires_at", BigInteger, nullable=False, info=_inv("server.invite")),
)


# -- sealed sender (baat.server.sealed, migration 13) ---------------------------------------
# Who may send an account sealed messages: the SHA-256 of its delivery access key (the key
# itself, derived from the profile key, is shared only end to end) and whether it takes them
# from anyone. No row: sealed messages are refused and senders fall back to authenticated
# sends.
delivery_access = Table(
    "delivery_access",
    metadata,
    Column("account_id", String(32), primary_key=True, info=_inv("account.id")),
    Column("verifier", LargeBinary(32), nullable=True, info=_inv("account.delivery_access")),
    Column("anyone", Integer, nullable=False, info=_inv("account.delivery_access")),
)

# Display name and avatar encrypted under the profile key (docs/CRYPTO.md §18.4): opaque to
# the server, readable only by contacts the account gave its profile key to.
profiles = Table(
    "profiles",
    metadata,
    Column("account_id", String(32), primary_key=True, info=_inv("account.id")),
    Column("version", BigInteger, nullable=False, info=_inv("account.encrypted_profile")),
    Column("name", LargeBinary, nullable=False, info=_inv("account.encrypted_profile")),
    Column("avatar", LargeBinary, nullable=True, info=_inv("account.encrypted_profile")),
)
