"""The data inventory: one entry for every field Baat stores, on the server and on devices.

Each server column names its entry (``Column(..., info={"inventory": "account.username"})``)
and each entry lists the columns it covers; ``tests/privacy/test_inventory.py`` reflects the
real SQLite and PostgreSQL schemas and fails on a column missing from here or an entry
pointing at a column that does not exist. The client store does the same with
``baat.client.schema``.

An entry holds what GDPR Art. 13/14 and DPDP s. 5 with Rule 3 ask a notice to say about a
field (what, why, on which basis, how long, who receives it, where) plus what Baat promises
beyond them: whether the server can read it, whether it is in the access export, whether
the operator could produce it under legal process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from baat.privacy.purposes import DPV, PD

# ISO 8601 durations, restricted to the designators Baat uses.
_DURATION = re.compile(
    r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$"
)


@dataclass(frozen=True, slots=True)
class Category:
    fides: str  # fideslang data category (CC BY 4.0, Ethyca)
    dpv: str  # W3C DPV personal-data IRI


@dataclass(frozen=True, slots=True)
class Retention:
    duration: str  # ISO 8601 duration, counted from the trigger
    trigger: str
    deletion: str


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    title: str
    description: str
    side: str  # "server" or "client"
    columns: tuple[str, ...]  # "table.column"; empty for data held only in memory
    server_visible: bool
    category: Category
    subjects: tuple[str, ...]
    purposes: tuple[str, ...]
    required: bool
    source: str
    retention: Retention
    storage: str  # "account-region", "server-region", "device", "memory" or "redis"
    recipients: tuple[str, ...]
    in_export: bool
    legal_process: bool
    since: int
    # Columns whose value is an account id: what erasure deletes by and export selects by.
    account_columns: tuple[str, ...] = ()
    # Rows owned through another table's row: (child column, parent column) pairs, e.g. a
    # blob's chunks belong to the blob row that names its uploader.
    belongs_to: tuple[tuple[str, str], ...] = ()


def duration_seconds(duration: str) -> int:
    """Length of an ISO 8601 duration, years as 365 days and months as 30 days.

    Raises:
        ValueError: not a duration this parser knows.
    """
    m = _DURATION.match(duration)
    if m is None or duration in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration: {duration!r}")
    y, mo, w, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    return ((((y * 365 + mo * 30 + w * 7 + d) * 24 + h) * 60 + mi) * 60) + s


_UNTIL_DELETED = Retention(
    "P0D", "you delete your account", "deleted in the same transaction as the account"
)
_ENVELOPE = Retention(
    "P30D",
    "the envelope is stored",
    "deleted as soon as the recipient device acknowledges it, at the latest after 30 days",
)
_BLOB = Retention(
    "P30D",
    "the attachment is uploaded",
    "deleted once every recipient device fetched it, at the latest after 30 days",
)
_ON_DEVICE = Retention(
    "P0D", "you delete it in the app or delete the profile", "deleted from the device store"
)

_UID = Category("user.unique_id", PD + "UID")
_ACTIVITY = Category("user.behavior", PD + "ServiceConsumptionBehavior")
_CREDENTIAL = Category("user.authorization.credentials", PD + "Authenticating")
# Who wrote to whom, when, and what they sent: about people, so a user.* category.
_METADATA = Category("user.behavior", PD + "CommunicationsMetadata")
_PRIVATE = Category("user.content.private", PD + "Communication")
_SYSTEM = Category("system.operations", DPV + "NonPersonalData")

_OPTIONAL_INTERNAL = ("improve", "understand", "customize", "support", "market")


def _server(
    id: str,
    title: str,
    description: str,
    columns: tuple[str, ...],
    category: Category,
    purposes: tuple[str, ...],
    recipients: tuple[str, ...],
    *,
    retention: Retention = _UNTIL_DELETED,
    visible: bool = True,
    subjects: tuple[str, ...] = ("user",),
    source: str = "your device, when you register or use Baat",
    storage: str = "account-region",
    in_export: bool = True,
    legal_process: bool = False,
    account_columns: tuple[str, ...] = (),
    belongs_to: tuple[tuple[str, str], ...] = (),
    since: int = 1,
) -> Entry:
    return Entry(
        id=id,
        title=title,
        description=description,
        side="server",
        columns=columns,
        server_visible=visible,
        category=category,
        subjects=subjects,
        purposes=purposes,
        required=True,
        source=source,
        retention=retention,
        storage=storage,
        recipients=recipients,
        in_export=in_export,
        legal_process=legal_process,
        since=since,
        account_columns=account_columns,
        belongs_to=belongs_to,
    )


def _client(
    id: str,
    title: str,
    description: str,
    category: Category,
    purposes: tuple[str, ...] = ("service",),
    *,
    subjects: tuple[str, ...] = ("user",),
    required: bool = True,
    source: str = "created on your device",
    since: int = 1,
) -> Entry:
    # Client data never reaches the server in readable form, so it is neither in the
    # server's access export (you hold it already) nor producible under legal process.
    return Entry(
        id=id,
        title=title,
        description=description,
        side="client",
        columns=(),
        server_visible=False,
        category=category,
        subjects=subjects,
        purposes=purposes,
        required=required,
        source=source,
        retention=_ON_DEVICE,
        storage="device",
        recipients=(),
        in_export=False,
        legal_process=False,
        since=since,
    )


_ACCOUNT_ID_COLUMNS = (
    "accounts.account_id",
    "devices.account_id",
    "signed_prekeys.account_id",
    "one_time_prekeys.account_id",
    "consent_subjects.account_id",
    "link_codes.account_id",
    "device_lists.account_id",
    "account_suspensions.account_id",
    "operator_actions.account_id",
)

SERVER_ENTRIES: tuple[Entry, ...] = (
    _server(
        "system.schema_version",
        "Schema version",
        "Which database migrations have run, and when. Not about anyone.",
        ("schema_version.version", "schema_version.applied_at"),
        _SYSTEM,
        ("service",),
        ("baat",),
        retention=Retention("P0D", "the database is retired", "dropped with the database"),
        subjects=(),
        source="the server",
        storage="server-region",
        in_export=False,
    ),
    _server(
        "account.id",
        "Account id",
        "A random identifier; never derived from a phone number or a name.",
        _ACCOUNT_ID_COLUMNS,
        _UID,
        ("service", "security", "accountability", *_OPTIONAL_INTERNAL),
        ("baat", "baat-regions"),
        source="the server, at registration",
        account_columns=_ACCOUNT_ID_COLUMNS,
    ),
    _server(
        "account.username",
        "Username",
        "The name others use to find you. You may change it.",
        ("accounts.username",),
        Category("user.account.username", PD + "Username"),
        ("service", "support", "market", "share_affiliate"),
        ("baat", "baat-regions", "correspondents", "baat-support", "affiliate"),
        source="you",
    ),
    _server(
        "account.region",
        "Storage region",
        "Where your account's data is stored, chosen from your jurisdiction.",
        ("accounts.region",),
        Category("user.location.imprecise", PD + "Location"),
        ("service", "support", "share_affiliate"),
        ("baat", "baat-support", "affiliate"),
        source="derived from your jurisdiction",
    ),
    _server(
        "account.jurisdiction",
        "Jurisdiction",
        "Which law the notice cites for you (IN, EU, GB, US, ...). It never changes your "
        "defaults, rights or choices.",
        ("accounts.jurisdiction",),
        Category("user.location.imprecise", PD + "Country"),
        ("service", "support"),
        ("baat", "baat-support"),
        source="you",
    ),
    _server(
        "account.created_day",
        "Account creation day",
        "The day (not the time) your account was created.",
        ("accounts.created_day",),
        _ACTIVITY,
        ("service", "security", "legal", "customize", "support", "share_affiliate"),
        ("baat", "authorities", "baat-support", "affiliate"),
        source="the server",
        legal_process=True,
    ),
    _server(
        "account.last_seen_day",
        "Last connection day",
        "The day (not the time) any of your devices last connected.",
        ("accounts.last_seen_day",),
        _ACTIVITY,
        ("service", "security", "legal", "understand", "support", "share_affiliate"),
        ("baat", "authorities", "baat-support", "affiliate"),
        source="the server",
        legal_process=True,
    ),
    _server(
        "device.id",
        "Device number",
        "A small number telling your devices apart.",
        ("devices.device_id", "signed_prekeys.device_id", "one_time_prekeys.device_id"),
        Category("user.device.device_id", PD + "DeviceBased"),
        ("service", "security", "improve", "support"),
        ("baat", "baat-regions", "correspondents", "baat-support"),
    ),
    _server(
        "device.identity_key",
        "Device public identity keys",
        "Public keys (Ed25519 and X25519 with its signature) that identify each device; "
        "the private keys never leave the device.",
        ("devices.identity_key", "devices.identity_dh_key", "devices.identity_dh_sig"),
        _CREDENTIAL,
        ("service", "security"),
        ("baat", "baat-regions", "correspondents"),
    ),
    _server(
        "device.created_day",
        "Device registration day",
        "The day (not the time) each device was registered.",
        ("devices.created_day",),
        _ACTIVITY,
        ("service", "security", "support"),
        ("baat", "baat-support"),
        source="the server",
    ),
    _server(
        "device.auth_token",
        "Device token hash",
        "SHA-256 of each device's bearer token; the token itself is never stored. Left out "
        "of the export because it is a security credential.",
        ("devices.auth_token_hash",),
        _CREDENTIAL,
        ("security",),
        ("baat",),
        in_export=False,
    ),
    _server(
        "device.link_code",
        "Device link codes",
        "SHA-256 of a one-time code that lets a new device of yours join your account, and "
        "when it expires. The code itself is shown only on your existing device.",
        ("link_codes.code_hash", "link_codes.expires_at"),
        _CREDENTIAL,
        ("service", "security"),
        ("baat",),
        retention=Retention("PT10M", "the code is created", "deleted when used or when it expires"),
        in_export=False,
        since=2,
    ),
    _server(
        "account.device_list",
        "Signed device list",
        "The list of your devices and their public identity keys, signed by your first "
        "device, so that people who write to you can check which devices may read it.",
        ("device_lists.version", "device_lists.signed_list"),
        _CREDENTIAL,
        ("service", "security"),
        ("baat", "baat-regions", "correspondents"),
        since=2,
    ),
    _server(
        "device.prekeys",
        "Public prekeys",
        "Signed and one-time public prekeys that let others start encrypted sessions with "
        "your devices. Each one-time key is deleted when handed out.",
        (
            "signed_prekeys.kind",
            "signed_prekeys.key_id",
            "signed_prekeys.public_key",
            "signed_prekeys.signature",
            "one_time_prekeys.kind",
            "one_time_prekeys.key_id",
            "one_time_prekeys.public_key",
            "one_time_prekeys.signature",
        ),
        _CREDENTIAL,
        ("service",),
        ("baat", "baat-regions", "correspondents"),
        retention=Retention(
            "P0D",
            "the key is handed out, replaced, or the account deleted",
            "deleted in the statement that hands it out",
        ),
    ),
    _server(
        "envelope.seq",
        "Envelope queue position",
        "A sequence number and a random id for each undelivered envelope.",
        ("envelopes.seq", "envelopes.guid"),
        _METADATA,
        ("service",),
        ("baat",),
        retention=_ENVELOPE,
        source="the server",
    ),
    _server(
        "envelope.recipient",
        "Envelope recipient",
        "The account and device an undelivered envelope is addressed to.",
        ("envelopes.recipient_account", "envelopes.recipient_device"),
        _METADATA,
        ("service",),
        ("baat", "baat-regions"),
        retention=_ENVELOPE,
        subjects=("user", "correspondent"),
        account_columns=("envelopes.recipient_account",),
    ),
    _server(
        "envelope.sender",
        "Envelope sender",
        "The sending account and device, kept to route the acknowledgement and to drop "
        "retried sends.",
        ("envelopes.sender_account", "envelopes.sender_device"),
        _METADATA,
        ("service",),
        ("baat", "baat-regions"),
        retention=_ENVELOPE,
        subjects=("user", "correspondent"),
        account_columns=("envelopes.sender_account",),
    ),
    _server(
        "envelope.message_id",
        "Message id",
        "The sender's id for a message, used to drop duplicates.",
        ("envelopes.message_id",),
        _METADATA,
        ("service",),
        ("baat", "baat-regions"),
        retention=_ENVELOPE,
    ),
    _server(
        "envelope.content",
        "Encrypted message",
        "End-to-end encrypted ciphertext the server cannot read. Left out of the export: "
        "it is delivered to your devices instead.",
        ("envelopes.content",),
        _PRIVATE,
        ("service",),
        ("baat", "baat-regions", "correspondents"),
        retention=_ENVELOPE,
        visible=False,
        subjects=("user", "correspondent"),
        in_export=False,
    ),
    _server(
        "envelope.stored_at",
        "Envelope storage time",
        "When an undelivered envelope was stored (milliseconds), to expire it after 30 days.",
        ("envelopes.stored_at",),
        _METADATA,
        ("service",),
        ("baat",),
        retention=_ENVELOPE,
        source="the server",
    ),
    _server(
        "envelope.recent_send",
        "Recent sends",
        "For 24 hours after each send: the sending account and device and the message id, "
        "so that a retried send is delivered once. Held in the server's memory; written to "
        "the database only while the server restarts, then read back and deleted. Left out "
        "of the export: it lives a day and mostly in memory.",
        (
            "recent_sends.sender_account",
            "recent_sends.sender_device",
            "recent_sends.message_id",
            "recent_sends.expires_at",
        ),
        _METADATA,
        ("service",),
        ("baat",),
        retention=Retention(
            "P1D",
            "the send is accepted",
            "forgotten after 24 hours, in memory and in the table; at once on erasure",
        ),
        storage="memory",
        in_export=False,
        account_columns=("recent_sends.sender_account",),
        since=7,
    ),
    _server(
        "blob.id",
        "Attachment id",
        "A random id for each encrypted attachment; knowing it is what allows a fetch.",
        ("blobs.blob_id",),
        _METADATA,
        ("service",),
        ("baat", "baat-regions", "correspondents"),
        retention=_BLOB,
        source="the server",
    ),
    _server(
        "blob.uploader",
        "Attachment uploader",
        "The account and device that uploaded an attachment; only it may add bytes.",
        ("blobs.uploader_account", "blobs.uploader_device"),
        _METADATA,
        ("service", "security"),
        ("baat",),
        retention=_BLOB,
        account_columns=("blobs.uploader_account",),
    ),
    _server(
        "blob.size",
        "Attachment size",
        "The declared size of an attachment and how much of it has arrived.",
        ("blobs.length", "blobs.received"),
        _METADATA,
        ("service",),
        ("baat", "baat-regions", "correspondents"),
        retention=_BLOB,
    ),
    _server(
        "blob.fetches",
        "Attachment fetches",
        "How many devices may fetch an attachment, and a keyed hash per device that did, "
        "which cannot be joined across attachments. Left out of the export: the hashes are "
        "about the recipients' devices.",
        ("blobs.fetches_allowed", "blobs.fetched_by"),
        _METADATA,
        ("service",),
        ("baat", "baat-regions"),
        retention=_BLOB,
        subjects=("user", "correspondent"),
        in_export=False,
    ),
    _server(
        "blob.expires_at",
        "Attachment expiry",
        "When an attachment is deleted even if not every recipient fetched it.",
        ("blobs.expires_at",),
        _METADATA,
        ("service",),
        ("baat",),
        retention=_BLOB,
        source="the server",
    ),
    _server(
        "blob.content",
        "Encrypted attachment",
        "End-to-end encrypted attachment bytes the server cannot read (in the database with "
        "PostgreSQL, in files in the server's data directory with SQLite). Left out of the "
        "export: they are delivered to the recipients' devices.",
        ("blob_chunks.blob_id", "blob_chunks.position", "blob_chunks.data"),
        _PRIVATE,
        ("service",),
        ("baat", "baat-regions", "correspondents"),
        retention=_BLOB,
        visible=False,
        subjects=("user", "correspondent"),
        in_export=False,
        belongs_to=(("blob_chunks.blob_id", "blobs.blob_id"),),
    ),
    _server(
        "connection.ip_address",
        "IP address",
        "Seen while a device is connected, to send replies; never written to storage or logs.",
        (),
        Category("user.device.ip_address", PD + "IPAddress"),
        ("service", "security"),
        ("baat",),
        retention=Retention("PT0S", "the connection closes", "held in memory only"),
        storage="memory",
        in_export=False,
    ),
    _server(
        "consent.subject_ref",
        "Consent pseudonym link",
        "Links your account to the random pseudonym used in the consent ledger and the "
        "transfer log. Deleted with your account, which leaves those records unlinked.",
        ("consent_subjects.subject_ref",),
        Category("user.unique_id.pseudonymous", PD + "Identifier"),
        ("accountability",),
        ("baat",),
        source="the server, at your first consent",
    ),
    _server(
        "consent.record",
        "Consent records",
        "Each grant and withdrawal: pseudonym, purpose, state, time, policy version, how it "
        "was given (cli, web, api), the fingerprint of your device's identity key, the hash "
        "of the previous record, and the signed receipt you received.",
        (
            "consent_events.seq",
            "consent_events.record_id",
            "consent_events.subject_ref",
            "consent_events.purpose",
            "consent_events.state",
            "consent_events.policy_version",
            "consent_events.at",
            "consent_events.prev_hash",
            "consent_events.record_hash",
            "consent_events.record",
            "consent_events.receipt",
        ),
        Category("user.privacy_preferences", PD + "PrivacyPreference"),
        ("accountability",),
        ("baat",),
        # What ledger.prune does: a record goes once its consent ended 7 years ago and
        # every record before it in the chain is gone or going too.
        retention=Retention(
            "P7Y",
            "the consent ends (your next choice for the purpose, a withdrawal, or account "
            "deletion)",
            "pruned from the start of the hash chain once it and every earlier record are "
            "past 7 years, so a record may stay longer while an earlier one must stay; a "
            "record of a consent still in force is never pruned; an anchor holding the hash "
            "of the last pruned record keeps the chain verifiable",
        ),
        source="your choices",
    ),
    _server(
        "consent.ledger_anchor",
        "Ledger anchor",
        "The hash of the last pruned consent record, so the chain stays verifiable.",
        (
            "ledger_anchor.id",
            "ledger_anchor.through_seq",
            "ledger_anchor.last_hash",
            "ledger_anchor.pruned_at",
        ),
        _SYSTEM,
        ("accountability",),
        ("baat",),
        retention=Retention("P0D", "the database is retired", "dropped with the database"),
        subjects=(),
        source="the server",
        storage="server-region",
        in_export=False,
    ),
    _server(
        "consent.ledger_head",
        "Ledger head",
        "The sequence number and hash of the newest consent record, signed by the server and "
        "published at /.well-known/baat/ledger-head, so that a deleted record is detected.",
        (
            "ledger_head.id",
            "ledger_head.seq",
            "ledger_head.head_hash",
            "ledger_head.signed_at",
            "ledger_head.jws",
        ),
        _SYSTEM,
        ("accountability",),
        ("baat",),
        retention=Retention("P0D", "the database is retired", "dropped with the database"),
        subjects=(),
        source="the server",
        storage="server-region",
        in_export=False,
    ),
    _server(
        "transfer.record",
        "Transfer log",
        "Every run of an optional purpose that read your data: when, purpose, recipient, "
        "destination country, and which fields.",
        (
            "transfer_log.seq",
            "transfer_log.transfer_id",
            "transfer_log.at",
            "transfer_log.purpose",
            "transfer_log.recipient",
            "transfer_log.country",
            "transfer_log.region",
            "transfer_log.subject_ref",
            "transfer_log.fields",
            "transfer_log.policy_version",
        ),
        Category("user", DPV + "PersonalData"),
        ("accountability",),
        ("baat",),
        # DPDP Rules 2025, Rule 8: keep processing logs for at least one year.
        retention=Retention("P1Y", "the transfer", "deleted by the retention job"),
        source="the server",
    ),
    _server(
        "transfer.region_count",
        "Transfers between storage regions",
        "How many envelopes, prekey bundles and account lookups went to or came from each "
        "other Baat region, per day. Counts only: no account, device or message is named.",
        (
            "region_transfers.day",
            "region_transfers.kind",
            "region_transfers.from_region",
            "region_transfers.to_region",
            "region_transfers.count",
        ),
        _SYSTEM,
        ("accountability",),
        ("baat",),
        retention=Retention("P1Y", "the day counted", "deleted by the retention job"),
        subjects=(),
        source="the server",
        storage="server-region",
        in_export=False,
        since=4,
    ),
    _server(
        "server.signing_key",
        "Receipt signing keys",
        "The server's Ed25519 keys for consent receipts; private halves encrypted at rest.",
        (
            "server_keys.kid",
            "server_keys.alg",
            "server_keys.public_key",
            "server_keys.private_key",
            "server_keys.created_at",
            "server_keys.retired_at",
        ),
        Category("system.authentication", DPV + "NonPersonalData"),
        ("accountability",),
        ("baat",),
        retention=Retention(
            "P7Y", "the key is retired", "kept while receipts it signed may be checked"
        ),
        subjects=(),
        source="the server",
        storage="server-region",
        in_export=False,
    ),
    _server(
        "operator.legal_process_run",
        "Legal-process log",
        "The day of each answer to legal process, counted in the transparency report. "
        "Neither the account asked about nor the answer is kept.",
        ("legal_process_runs.seq", "legal_process_runs.day"),
        _SYSTEM,
        ("accountability",),
        ("baat",),
        retention=Retention("P1Y", "the answer", "deleted by the retention job"),
        subjects=(),
        source="the server",
        storage="server-region",
        in_export=False,
        since=7,
    ),
    _server(
        "server.invite",
        "Registration invites",
        "SHA-256 of each one-time invite code the operator made for a server that admits "
        "new accounts by invitation only, and when it expires. Not linked to anyone: the "
        "code is deleted when an account is created with it.",
        ("registration_invites.code_hash", "registration_invites.expires_at"),
        Category("system.authentication", DPV + "NonPersonalData"),
        ("security",),
        ("baat",),
        retention=Retention("P30D", "the code is made", "deleted when used or when it expires"),
        subjects=(),
        source="the operator",
        storage="server-region",
        in_export=False,
        since=6,
    ),
    _server(
        "server.account_suspension",
        "Account suspension",
        "The day the operator suspended your account (its devices cannot connect while it "
        "lasts), for abuse handling.",
        ("account_suspensions.since_day",),
        _ACTIVITY,
        ("security",),
        ("baat",),
        retention=Retention(
            "P0D", "the suspension is lifted", "deleted when lifted or with the account"
        ),
        source="the operator",
        in_export=False,
        since=10,
    ),
    _server(
        "operator.action",
        "Operator actions log",
        "The kind and day of each operator action (suspend, unsuspend, delete an account, "
        "change registration, count a queue), counted in the transparency report. Only a "
        "deletion names its account, until a server takes it on.",
        (
            "operator_actions.seq",
            "operator_actions.day",
            "operator_actions.kind",
            "operator_actions.done_at",
        ),
        _SYSTEM,
        ("accountability",),
        ("baat",),
        retention=Retention("P1Y", "the action", "deleted by the servers after a year"),
        subjects=(),
        source="the operator",
        storage="server-region",
        in_export=False,
        since=10,
    ),
    _server(
        "system.server_setting",
        "Server settings",
        "Settings the operator changes while the servers run (registration open, by invite "
        "or closed) and the day of the change. Not about anyone.",
        ("server_settings.key", "server_settings.value", "server_settings.changed_day"),
        _SYSTEM,
        ("service",),
        ("baat",),
        retention=Retention("P0D", "the database is retired", "dropped with the database"),
        subjects=(),
        source="the operator",
        storage="server-region",
        in_export=False,
        since=10,
    ),
)

CLIENT_ENTRIES: tuple[Entry, ...] = (
    _client(
        "client.identity_keys",
        "Private identity keys",
        "Your device's private Ed25519 and X25519 identity keys.",
        _CREDENTIAL,
        ("service", "security"),
    ),
    _client(
        "client.prekeys_private",
        "Private prekeys",
        "Private halves of the prekeys your device published.",
        _CREDENTIAL,
    ),
    _client(
        "client.sessions",
        "Session (ratchet) state",
        "The double-ratchet state of each conversation.",
        _CREDENTIAL,
        subjects=("user", "correspondent"),
    ),
    _client(
        "client.contacts",
        "Contacts",
        "Usernames and identity keys of people you talk to, and whether you verified them.",
        Category("user.social", PD + "Connection"),
        subjects=("user", "correspondent"),
        required=False,
    ),
    _client(
        "client.messages",
        "Messages",
        "Message text, timestamps, direction and delivery status.",
        _PRIVATE,
        subjects=("user", "correspondent"),
    ),
    _client(
        "client.outbox",
        "Outbox",
        "Messages waiting to be sent.",
        _PRIVATE,
        subjects=("user", "correspondent"),
    ),
    _client(
        "client.settings",
        "Settings",
        "Your app preferences.",
        Category("user.account.settings", PD + "Preference"),
        required=False,
        source="you",
    ),
    _client(
        "client.credentials",
        "Server credentials",
        "The server address and the bearer token of this device.",
        _CREDENTIAL,
        ("security",),
    ),
    _client(
        "client.groups",
        "Groups",
        "Names, members and admins of the groups you are in.",
        Category("user.social", PD + "Connection"),
        subjects=("user", "correspondent"),
        since=3,
    ),
    _client(
        "client.imported_chats",
        "Imported chats",
        "Chats you import from another app's export.",
        _PRIVATE,
        subjects=("user", "correspondent"),
        required=False,
        source="a chat export you choose to import",
    ),
)

# Stores in memory and in Redis, declared in their own module to keep this one short.
from baat.privacy._inventory_memory import MEMORY_ENTRIES  # noqa: E402

SERVER_ENTRIES = SERVER_ENTRIES + MEMORY_ENTRIES
ENTRIES: tuple[Entry, ...] = SERVER_ENTRIES + CLIENT_ENTRIES

SUBJECTS: dict[str, tuple[str, str]] = {
    "user": ("You, the account holder", DPV + "User"),
    "correspondent": ("People you exchange messages with", DPV + "DataSubject"),
}
