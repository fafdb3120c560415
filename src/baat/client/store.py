"""The client's local store: SQLite in the profile directory, sensitive columns encrypted.

Key: Argon2id over the passphrase (RFC 9106 second recommended option: t=3, 64 MiB, p=4
would be ~0.3 s here; we use t=3, 64 MiB, p=1), salt and parameters in ``profile.json``.
Each encrypted value is AES-256-GCM with a fresh 96-bit nonce and associated data naming
the table, column and row, so a value cannot be moved to another row undetected.

Ratchet state and the message it produced or consumed are written in one transaction
(``with store.transaction() as tx``), so a crash can neither desynchronise a session nor
lose a message.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, create_engine, delete, event, insert, select, update
from sqlalchemy.exc import IntegrityError

from baat.client import schema as s

PROFILE_FILE = "profile.json"
STORE_FILE = "store.sqlite3"
KDF = {"name": "argon2id", "time_cost": 3, "memory_cost": 65536, "parallelism": 1}
_CHECK = b"baat profile key check v1"


class StoreError(Exception):
    """Base of local store errors."""


class WrongPassphrase(StoreError):
    """The passphrase does not open this profile."""


class NoProfile(StoreError):
    """The directory holds no Baat profile."""


class ProfileExists(StoreError):
    """A profile already exists in this directory."""


class CorruptValue(StoreError):
    """An encrypted value failed authentication (tampered or moved)."""


@dataclass(frozen=True)
class ProfileInfo:
    server_url: str
    username: str
    account_id: str
    device_id: int


class Sealer:
    """AES-256-GCM under the profile key, bound to where each value lives."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, where: str, value: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, value, where.encode())

    def open(self, where: str, blob: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:12], blob[12:], where.encode())
        except (InvalidTag, ValueError) as exc:
            raise CorruptValue(f"stored value at {where} does not authenticate") from exc


def derive_key(passphrase: str, salt: bytes, params: dict[str, Any] = KDF) -> bytes:
    return hash_secret_raw(
        passphrase.encode(),
        salt,
        time_cost=int(params["time_cost"]),
        memory_cost=int(params["memory_cost"]),
        parallelism=int(params["parallelism"]),
        hash_len=32,
        type=Type.ID,
    )


class Store:
    """An opened profile."""

    def __init__(self, directory: Path, sealer: Sealer, info: ProfileInfo | None) -> None:
        self.directory = directory
        self.sealer = sealer
        self.info = info
        self.engine = create_engine(f"sqlite:///{directory / STORE_FILE}")

        @event.listens_for(self.engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        s.metadata.create_all(self.engine)

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path, passphrase: str) -> Store:
        """Create a new, empty profile.

        Raises:
            ProfileExists: the directory already holds one.
        """
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / PROFILE_FILE
        if path.exists():
            raise ProfileExists(f"{directory} already holds a Baat profile")
        salt = os.urandom(16)
        key = derive_key(passphrase, salt)
        sealer = Sealer(key)
        doc = {
            "format": 1,
            "kdf": {**KDF, "salt": salt.hex()},
            "check": sealer.seal("profile.check", _CHECK).hex(),
        }
        path.write_text(json.dumps(doc, indent=2))
        os.chmod(path, 0o600)
        return cls(directory, sealer, None)

    @classmethod
    def open(cls, directory: Path, passphrase: str) -> Store:
        """Open an existing profile.

        Raises:
            NoProfile: nothing there.
            WrongPassphrase: the passphrase does not match.
        """
        path = directory / PROFILE_FILE
        if not path.exists():
            raise NoProfile(f"no Baat profile in {directory}; run 'baat register' first")
        doc = json.loads(path.read_text())
        kdf = doc["kdf"]
        sealer = Sealer(derive_key(passphrase, bytes.fromhex(kdf["salt"]), kdf))
        try:
            sealer.open("profile.check", bytes.fromhex(doc["check"]))
        except CorruptValue as exc:
            raise WrongPassphrase("wrong passphrase for this profile") from exc
        info = None
        if "account" in doc:
            a = doc["account"]
            info = ProfileInfo(a["server_url"], a["username"], a["account_id"], a["device_id"])
        return cls(directory, sealer, info)

    def set_info(self, info: ProfileInfo) -> None:
        path = self.directory / PROFILE_FILE
        doc = json.loads(path.read_text())
        doc["account"] = {
            "server_url": info.server_url,
            "username": info.username,
            "account_id": info.account_id,
            "device_id": info.device_id,
        }
        path.write_text(json.dumps(doc, indent=2))
        self.info = info

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # -- identity and credentials --------------------------------------------------------

    def save_identity(self, identity_blob: bytes, credentials: dict[str, Any]) -> None:
        with self.transaction() as tx:
            tx.execute(delete(s.identity))
            tx.execute(
                insert(s.identity).values(
                    id=1,
                    identity_blob=self.sealer.seal("identity.identity", identity_blob),
                    credentials_blob=self.sealer.seal(
                        "identity.credentials", json.dumps(credentials).encode()
                    ),
                    next_prekey_id=1,
                )
            )

    def load_identity(self) -> tuple[bytes, dict[str, Any]]:
        """Raises: NoProfile when the profile never finished registering."""
        with self.transaction() as tx:
            row = tx.execute(select(s.identity)).first()
        if row is None:
            raise NoProfile("this profile has no registered device yet")
        ident = self.sealer.open("identity.identity", row.identity_blob)
        creds = json.loads(self.sealer.open("identity.credentials", row.credentials_blob))
        return ident, creds

    def allocate_prekey_ids(self, tx: Connection, count: int) -> range:
        start = tx.execute(select(s.identity.c.next_prekey_id)).scalar_one()
        tx.execute(update(s.identity).values(next_prekey_id=start + count))
        return range(start, start + count)

    def put_prekeys(self, tx: Connection, items: list[tuple[int, int, bytes]]) -> None:
        for kind, key_id, blob in items:
            tx.execute(
                s.prekeys.delete().where(s.prekeys.c.kind == kind, s.prekeys.c.key_id == key_id)
            )
            tx.execute(
                insert(s.prekeys).values(
                    kind=kind,
                    key_id=key_id,
                    private_blob=self.sealer.seal(f"prekeys.{kind}.{key_id}", blob),
                )
            )

    def get_prekey(self, tx: Connection, kind: int, key_id: int) -> bytes | None:
        row = tx.execute(
            select(s.prekeys.c.private_blob).where(
                s.prekeys.c.kind == kind, s.prekeys.c.key_id == key_id
            )
        ).first()
        return None if row is None else self.sealer.open(f"prekeys.{kind}.{key_id}", row[0])

    def drop_prekeys(self, tx: Connection, keys: list[tuple[int, int]]) -> None:
        for kind, key_id in keys:
            tx.execute(
                s.prekeys.delete().where(s.prekeys.c.kind == kind, s.prekeys.c.key_id == key_id)
            )

    # -- contacts --------------------------------------------------------------------------

    def contact(self, tx: Connection, account_id: str) -> Contact | None:
        row = tx.execute(select(s.contacts).where(s.contacts.c.account_id == account_id)).first()
        return None if row is None else self._contact(row)

    def contacts(self) -> list[Contact]:
        with self.transaction() as tx:
            rows = tx.execute(select(s.contacts)).all()
        return sorted((self._contact(r) for r in rows), key=lambda c: c.username)

    def contact_by_name(self, username: str) -> Contact | None:
        for c in self.contacts():
            if c.username == username:
                return c
        return None

    def _contact(self, row: Any) -> Contact:
        aid = row.account_id
        return Contact(
            account_id=aid,
            username=self.sealer.open(f"contacts.{aid}.username", row.username_blob).decode(),
            identity_key=self.sealer.open(f"contacts.{aid}.identity", row.identity_blob),
            verified=bool(row.verified),
            identity_changed=bool(row.identity_changed),
        )

    def put_contact(self, tx: Connection, c: Contact) -> None:
        values = {
            "username_blob": self.sealer.seal(
                f"contacts.{c.account_id}.username", c.username.encode()
            ),
            "identity_blob": self.sealer.seal(f"contacts.{c.account_id}.identity", c.identity_key),
            "verified": int(c.verified),
            "identity_changed": int(c.identity_changed),
        }
        found = tx.execute(
            update(s.contacts).where(s.contacts.c.account_id == c.account_id).values(**values)
        )
        if not found.rowcount:
            tx.execute(
                insert(s.contacts).values(
                    account_id=c.account_id, added_at=int(time.time()), **values
                )
            )

    # -- sessions --------------------------------------------------------------------------

    def session(self, tx: Connection, account_id: str, device_id: int) -> bytes | None:
        row = tx.execute(
            select(s.sessions.c.state_blob).where(
                s.sessions.c.account_id == account_id, s.sessions.c.device_id == device_id
            )
        ).first()
        where = f"sessions.{account_id}.{device_id}"
        return None if row is None else self.sealer.open(where, row[0])

    def session_devices(self, tx: Connection, account_id: str) -> list[int]:
        rows = tx.execute(
            select(s.sessions.c.device_id).where(s.sessions.c.account_id == account_id)
        )
        return [int(r[0]) for r in rows]

    def put_session(self, tx: Connection, account_id: str, device_id: int, state: bytes) -> None:
        blob = self.sealer.seal(f"sessions.{account_id}.{device_id}", state)
        found = tx.execute(
            update(s.sessions)
            .where(s.sessions.c.account_id == account_id, s.sessions.c.device_id == device_id)
            .values(state_blob=blob)
        )
        if not found.rowcount:
            tx.execute(
                insert(s.sessions).values(
                    account_id=account_id, device_id=device_id, state_blob=blob
                )
            )

    def drop_sessions(self, tx: Connection, account_id: str) -> None:
        tx.execute(delete(s.sessions).where(s.sessions.c.account_id == account_id))

    # -- messages --------------------------------------------------------------------------

    def add_message(self, tx: Connection, m: StoredMessage) -> int | None:
        """Insert a message; None when the same (sender device, message id) is stored."""
        body = msgspec.json.encode(m.body)
        try:
            with tx.begin_nested():
                result = tx.execute(
                    insert(s.messages).values(
                        chat=m.chat,
                        sender_account=m.sender_account,
                        sender_device=m.sender_device,
                        message_id=m.message_id,
                        direction=m.direction,
                        status=m.status,
                        body_blob=self.sealer.seal(f"messages.{m.message_id}", body),
                        sent_at=m.sent_at,
                        received_at=m.received_at,
                    )
                )
        except IntegrityError:
            return None
        pk = result.inserted_primary_key
        return int(pk[0]) if pk else None

    def set_status(self, tx: Connection, message_id: str, status: str) -> None:
        tx.execute(
            update(s.messages)
            .where(s.messages.c.message_id == message_id, s.messages.c.direction == "out")
            .values(status=status)
        )

    def mark_seen(self, row_ids: list[int]) -> None:
        """Incoming messages shown to the user: "new" becomes "seen"."""
        if not row_ids:
            return
        with self.transaction() as tx:
            tx.execute(
                update(s.messages)
                .where(s.messages.c.id.in_(row_ids), s.messages.c.status == "new")
                .values(status="seen")
            )

    def messages(self, chat: str | None = None, status: str | None = None) -> list[StoredMessage]:
        q = select(s.messages).order_by(s.messages.c.sent_at, s.messages.c.id)
        if chat is not None:
            q = q.where(s.messages.c.chat == chat)
        if status is not None:
            q = q.where(s.messages.c.status == status)
        with self.transaction() as tx:
            rows = tx.execute(q).all()
        return [self._message(r) for r in rows]

    def _message(self, r: Any) -> StoredMessage:
        body = msgspec.json.decode(self.sealer.open(f"messages.{r.message_id}", r.body_blob))
        return StoredMessage(
            chat=r.chat,
            sender_account=r.sender_account,
            sender_device=r.sender_device,
            message_id=r.message_id,
            direction=r.direction,
            status=r.status,
            body=body,
            sent_at=r.sent_at,
            received_at=r.received_at,
            row_id=r.id,
        )

    def find_messages(self, tx: Connection, message_id: str) -> list[StoredMessage]:
        """Every stored copy of ``message_id`` (one per chat it is in; usually one)."""
        rows = tx.execute(select(s.messages).where(s.messages.c.message_id == message_id)).all()
        return [self._message(r) for r in rows]

    def update_message(self, tx: Connection, m: StoredMessage) -> None:
        """Write back the body and status of a stored message (by ``row_id``)."""
        body = self.sealer.seal(f"messages.{m.message_id}", msgspec.json.encode(m.body))
        tx.execute(
            update(s.messages)
            .where(s.messages.c.id == m.row_id)
            .values(body_blob=body, status=m.status)
        )

    def delete_messages(self, tx: Connection, row_ids: list[int]) -> None:
        """Delete messages, bodies included (disappearing messages)."""
        if row_ids:
            tx.execute(delete(s.messages).where(s.messages.c.id.in_(row_ids)))
            tx.execute(delete(s.expiring).where(s.expiring.c.message_row.in_(row_ids)))

    # -- settings --------------------------------------------------------------------------

    def setting(self, name: str, default: Any = None) -> Any:
        with self.transaction() as tx:
            row = tx.execute(select(s.settings).where(s.settings.c.name == name)).first()
        if row is None:
            return default
        return json.loads(self.sealer.open(f"settings.{name}", row.value_blob))

    def put_setting(self, tx: Connection, name: str, value: Any) -> None:
        blob = self.sealer.seal(f"settings.{name}", json.dumps(value).encode())
        if not tx.execute(
            update(s.settings).where(s.settings.c.name == name).values(value_blob=blob)
        ).rowcount:
            tx.execute(insert(s.settings).values(name=name, value_blob=blob))

    # -- outbox ----------------------------------------------------------------------------

    def queue_out(self, tx: Connection, message_id: str, recipient: str, payload: bytes) -> None:
        tx.execute(
            insert(s.outbox).values(
                message_id=message_id,
                recipient_account=recipient,
                payload_blob=self.sealer.seal(f"outbox.{message_id}", payload),
                created_at=int(time.time()),
            )
        )

    def outbox(self) -> list[tuple[str, str, bytes]]:
        with self.transaction() as tx:
            rows = tx.execute(select(s.outbox).order_by(s.outbox.c.created_at)).all()
        return [
            (
                r.message_id,
                r.recipient_account,
                self.sealer.open(f"outbox.{r.message_id}", r.payload_blob),
            )
            for r in rows
        ]

    def done_out(self, tx: Connection, message_id: str) -> None:
        tx.execute(delete(s.outbox).where(s.outbox.c.message_id == message_id))

    # -- bulk insert (imports) --------------------------------------------------------------

    def add_messages(self, tx: Connection, items: list[StoredMessage]) -> None:
        """Insert many messages with one prepared statement, sealing in a tight loop.

        Unlike ``add_message`` a duplicate is not skipped: ``msg_once`` fails the whole
        transaction, so callers filter out what is stored first (an import does).
        """
        seal, encode = self.sealer.seal, msgspec.json.encode
        rows = [
            (
                m.chat,
                m.sender_account,
                m.sender_device,
                m.message_id,
                m.direction,
                m.status,
                seal(f"messages.{m.message_id}", encode(m.body)),
                m.sent_at,
                m.received_at,
            )
            for m in items
        ]
        # The driver's executemany with positional rows: SQLAlchemy's per-row parameter
        # processing would cost more than SQLite's own insert work here.
        if rows:
            tx.exec_driver_sql(
                "INSERT INTO messages (chat, sender_account, sender_device, message_id, "
                "direction, status, body_blob, sent_at, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )


@dataclass(frozen=True)
class Contact:
    account_id: str
    username: str
    identity_key: bytes
    verified: bool = False
    identity_changed: bool = False


@dataclass(frozen=True)
class StoredMessage:
    chat: str
    sender_account: str
    sender_device: int
    message_id: str
    direction: str
    status: str
    body: dict[str, Any]
    sent_at: int
    received_at: int
    row_id: int = 0
