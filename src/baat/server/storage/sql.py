"""One storage implementation over SQLAlchemy Core, for SQLite and PostgreSQL.

The two engines differ only where this file says so: the upsert dialect, the one-time
prekey claim (PostgreSQL skips rows another transaction is claiming), and SQLite's single
connection (SQLite has one writer; a single connection turns lock contention into a queue).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import bindparam, delete, func, select, tuple_, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from baat.crypto import (
    PREKEY_KIND_CURVE_ONE_TIME,
    PREKEY_KIND_CURVE_SIGNED,
    PREKEY_KIND_KEM_LAST_RESORT,
    PREKEY_KIND_KEM_ONE_TIME,
)
from baat.server.storage import migrations
from baat.server.storage.base import (
    Account,
    Device,
    DeviceBundle,
    NotFound,
    Prekey,
    QueuedEnvelope,
    StorageUnavailable,
    TooManyDevices,
    TooManyPrekeys,
    UsernameTaken,
)
from baat.server.storage.schema import (
    accounts,
    device_lists,
    devices,
    envelopes,
    link_codes,
    one_time_prekeys,
    recent_sends,
    signed_prekeys,
)

DAY_SECONDS = 86_400
DELETE_CHUNK = 500

# Built once: the statement is then found in SQLAlchemy's compiled cache, and each call only
# expands the list of keys, instead of building one expression object per row.
# The recipient is part of the key: a device deletes only its own rows.
_DELETE_ACKNOWLEDGED = delete(envelopes).where(
    tuple_(envelopes.c.recipient_account, envelopes.c.recipient_device, envelopes.c.guid).in_(
        bindparam("keys", expanding=True)
    )
)


def today(now: float | None = None) -> int:
    """Days since the Unix epoch: the only granularity the server keeps for activity."""
    return int((time.time() if now is None else now) // DAY_SECONDS)


def engine_url(db: str) -> str:
    """Translate a user-facing database URL into an async SQLAlchemy URL.

    Raises:
        ValueError: the scheme is neither sqlite nor postgresql.
    """
    if db.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + db.split("://", 1)[1]
    if db.startswith("postgresql+asyncpg://") or db.startswith("sqlite+aiosqlite://"):
        return db
    if db.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + db[len("sqlite://") :]
    raise ValueError(f"unsupported database URL {db!r}: use sqlite:///PATH or postgresql://...")


class SqlStore:
    """The server's storage: accounts, devices, prekeys and the envelope queue."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    @classmethod
    async def open(
        cls, db: str, *, migrate: bool = True, pool_size: int = 10, max_overflow: int = 10
    ) -> SqlStore:
        """Connect to ``db`` (``sqlite:///path`` or ``postgresql://...``) and migrate it.
        ``pool_size`` and ``max_overflow`` apply to PostgreSQL (SQLite uses one connection).

        Raises:
            ValueError: unsupported URL.
            StorageUnavailable: the database cannot be reached.
        """
        url = engine_url(db)
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs = {"pool_size": 1, "max_overflow": 0, "connect_args": {"timeout": 30}}
        else:
            kwargs = {
                "pool_size": pool_size,
                "max_overflow": max_overflow,
                "pool_pre_ping": True,
                # Fail fast when the database is gone, so that senders get a retryable error
                # instead of waiting on asyncpg's 60 s connect timeout.
                "connect_args": {"timeout": 5, "command_timeout": 30},
            }
        engine = create_async_engine(url, **kwargs)
        if url.startswith("sqlite"):
            from sqlalchemy import event

            @event.listens_for(engine.sync_engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                # WAL lets readers run beside the writer; FULL makes a commit survive power
                # loss, which is what "durably stored" promises the sender. Group commit
                # amortises the fsync.
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
                cur.execute("PRAGMA foreign_keys=ON")
                # Deleted rows are overwritten, not just unlinked (storage/compact.py).
                cur.execute("PRAGMA secure_delete=ON")
                cur.close()

        store = cls(engine)
        if migrate:
            await store.migrate()
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.begin() as conn:
                yield conn
        except sa_exc.IntegrityError:
            raise  # a constraint said no: the caller's business, not an outage
        except (sa_exc.DBAPIError, OSError) as exc:
            # Connection refused, server starting or shutting down, connection lost: the
            # driver-level errors that a retry after a while can cure.
            raise StorageUnavailable(str(exc).splitlines()[0]) from exc

    async def migrate(self) -> list[int]:
        async with self._tx() as conn:
            return await conn.run_sync(migrations.migrate)

    def _insert(self, table: Any) -> Any:
        if self.dialect == "postgresql":
            return pg_dialect.insert(table)
        return sqlite_dialect.insert(table)

    # -- accounts and devices ----------------------------------------------------------

    async def create_account(self, account: Account, device: Device) -> None:
        """Create an account with its first device.

        Raises:
            UsernameTaken: the username is in use.
            StorageUnavailable: the database failed.
        """
        try:
            async with self._tx() as conn:
                await conn.execute(accounts.insert().values(**_fields(account)))
                await conn.execute(devices.insert().values(**_fields(device)))
        except sa_exc.IntegrityError as exc:
            raise UsernameTaken(account.username) from exc

    async def account_by_username(self, username: str) -> Account | None:
        async with self._tx() as conn:
            row = (
                await conn.execute(select(accounts).where(accounts.c.username == username))
            ).first()
        return Account(**row._mapping) if row else None

    async def account(self, account_id: str) -> Account | None:
        async with self._tx() as conn:
            row = (
                await conn.execute(select(accounts).where(accounts.c.account_id == account_id))
            ).first()
        return Account(**row._mapping) if row else None

    async def devices(self, account_id: str) -> list[Device]:
        async with self._tx() as conn:
            rows = await conn.execute(
                select(devices)
                .where(devices.c.account_id == account_id)
                .order_by(devices.c.device_id)
            )
            return [Device(**r._mapping) for r in rows]

    async def device_ids_of(self, account_ids: Sequence[str]) -> dict[str, frozenset[int]]:
        """The device ids of many accounts in one read (accounts without devices are absent).

        The router's device-list cache fills cold entries this way, one statement for all
        the accounts missed in one loop turn (``server/fairness.py``)."""
        found: dict[str, set[int]] = {}
        async with self._tx() as conn:
            for i in range(0, len(account_ids), 500):
                rows = await conn.execute(
                    select(devices.c.account_id, devices.c.device_id).where(
                        devices.c.account_id.in_(account_ids[i : i + 500])
                    )
                )
                for account_id, device_id in rows:
                    found.setdefault(account_id, set()).add(device_id)
        return {a: frozenset(ids) for a, ids in found.items()}

    async def device(self, account_id: str, device_id: int) -> Device | None:
        async with self._tx() as conn:
            row = (
                await conn.execute(
                    select(devices).where(
                        devices.c.account_id == account_id, devices.c.device_id == device_id
                    )
                )
            ).first()
        return Device(**row._mapping) if row else None

    async def touch_last_seen(self, account_id: str, day: int) -> None:
        async with self._tx() as conn:
            await conn.execute(
                update(accounts)
                .where(accounts.c.account_id == account_id, accounts.c.last_seen_day < day)
                .values(last_seen_day=day)
            )

    # -- linked devices ----------------------------------------------------------------------

    async def create_link_code(self, account_id: str, code_hash: bytes, expires_at: int) -> None:
        async with self._tx() as conn:
            await conn.execute(
                link_codes.insert().values(
                    code_hash=code_hash, account_id=account_id, expires_at=expires_at
                )
            )

    async def consume_link_code(self, code_hash: bytes, now: int) -> str | None:
        """The account a valid code belongs to; the code is deleted in the same statement,
        so it links exactly one device."""
        async with self._tx() as conn:
            await conn.execute(delete(link_codes).where(link_codes.c.expires_at < now))
            row = (
                await conn.execute(
                    delete(link_codes)
                    .where(link_codes.c.code_hash == code_hash)
                    .returning(link_codes.c.account_id)
                )
            ).first()
        return str(row[0]) if row else None

    async def add_device(self, device: Device, max_devices: int = 0) -> int:
        """Add a device with the next free id of its account; returns the id.

        With ``max_devices``, the count is checked in the same transaction: two adds that
        race compute the same next id, one of them fails on the primary key and retries,
        and then sees the other's device, so the limit holds on both engines.

        Raises:
            NotFound: the account does not exist.
            TooManyDevices: the account has ``max_devices`` devices already.
        """
        for _ in range(5):
            try:
                async with self._tx() as conn:
                    exists = await conn.scalar(
                        select(func.count()).where(accounts.c.account_id == device.account_id)
                    )
                    if not exists:
                        raise NotFound(device.account_id)
                    if max_devices:
                        count = await conn.scalar(
                            select(func.count()).where(devices.c.account_id == device.account_id)
                        )
                        if int(count or 0) >= max_devices:
                            raise TooManyDevices(device.account_id)
                    top = await conn.scalar(
                        select(func.max(devices.c.device_id)).where(
                            devices.c.account_id == device.account_id
                        )
                    )
                    device_id = int(top or 0) + 1
                    values = _fields(device)
                    values["device_id"] = device_id
                    await conn.execute(devices.insert().values(**values))
                    return device_id
            except sa_exc.IntegrityError:
                continue  # another device took that id at the same moment: try the next
        raise StorageUnavailable("could not allocate a device id")

    async def remove_device(self, account_id: str, device_id: int) -> bool:
        """Delete a device with its prekeys and its undelivered envelopes."""
        async with self._tx() as conn:
            for table in (one_time_prekeys, signed_prekeys):
                await conn.execute(
                    delete(table).where(
                        table.c.account_id == account_id, table.c.device_id == device_id
                    )
                )
            await conn.execute(
                delete(envelopes).where(
                    envelopes.c.recipient_account == account_id,
                    envelopes.c.recipient_device == device_id,
                )
            )
            result = await conn.execute(
                delete(devices).where(
                    devices.c.account_id == account_id, devices.c.device_id == device_id
                )
            )
            return bool(result.rowcount)

    async def put_device_list(self, account_id: str, version: int, signed_list: bytes) -> bool:
        """Store a signed device list unless the stored one is as new or newer."""
        async with self._tx() as conn:
            current = await conn.scalar(
                select(device_lists.c.version).where(device_lists.c.account_id == account_id)
            )
            if current is not None and int(current) >= version:
                return False
            if current is None:
                await conn.execute(
                    device_lists.insert().values(
                        account_id=account_id, version=version, signed_list=signed_list
                    )
                )
            else:
                await conn.execute(
                    update(device_lists)
                    .where(device_lists.c.account_id == account_id)
                    .values(version=version, signed_list=signed_list)
                )
            return True

    async def device_list(self, account_id: str) -> tuple[int, bytes] | None:
        async with self._tx() as conn:
            row = (
                await conn.execute(
                    select(device_lists.c.version, device_lists.c.signed_list).where(
                        device_lists.c.account_id == account_id
                    )
                )
            ).first()
        return (int(row[0]), bytes(row[1])) if row else None

    # -- prekeys -------------------------------------------------------------------------

    async def store_prekeys(
        self,
        account_id: str,
        device_id: int,
        signed: Sequence[Prekey],
        one_time: Sequence[Prekey],
        cap: int = 0,
    ) -> None:
        """Replace the signed prekeys of the given kinds and add one-time prekeys.

        Re-uploading a one-time key with an id already present keeps the first copy.

        Raises:
            TooManyPrekeys: with ``cap``, the account would store more one-time prekeys of
                a kind than ``cap`` (nothing is stored).
        """
        async with self._tx() as conn:
            if cap and one_time:
                await self._check_cap(conn, account_id, one_time, cap)
            for key in signed:
                stmt = self._insert(signed_prekeys).values(
                    account_id=account_id, device_id=device_id, **_fields(key)
                )
                stmt = stmt.on_conflict_do_update(
                    index_elements=["account_id", "device_id", "kind"],
                    set_={
                        "key_id": key.key_id,
                        "public_key": key.public_key,
                        "signature": key.signature,
                    },
                )
                await conn.execute(stmt)
            if one_time:
                stmt = self._insert(one_time_prekeys).on_conflict_do_nothing()
                await conn.execute(
                    stmt,
                    [
                        {"account_id": account_id, "device_id": device_id, **_fields(k)}
                        for k in one_time
                    ],
                )

    async def _check_cap(
        self, conn: AsyncConnection, account_id: str, one_time: Sequence[Prekey], cap: int
    ) -> None:
        t = one_time_prekeys
        rows = await conn.execute(
            select(t.c.kind, func.count()).where(t.c.account_id == account_id).group_by(t.c.kind)
        )
        stored = {int(k): int(n) for k, n in rows}
        for kind in {k.kind for k in one_time}:
            adding = sum(1 for k in one_time if k.kind == kind)
            if stored.get(kind, 0) + adding > cap:
                raise TooManyPrekeys(
                    f"the account would store {stored.get(kind, 0) + adding} one-time prekeys "
                    f"of kind {kind}; at most {cap}"
                )

    async def prekey_counts(self, account_id: str, device_id: int) -> dict[int, int]:
        """How many unclaimed one-time prekeys of each kind remain."""
        async with self._tx() as conn:
            rows = await conn.execute(
                select(one_time_prekeys.c.kind, func.count())
                .where(
                    one_time_prekeys.c.account_id == account_id,
                    one_time_prekeys.c.device_id == device_id,
                )
                .group_by(one_time_prekeys.c.kind)
            )
            counts = {PREKEY_KIND_CURVE_ONE_TIME: 0, PREKEY_KIND_KEM_ONE_TIME: 0}
            counts.update({int(k): int(n) for k, n in rows})
            return counts

    async def claim_bundle(
        self, account_id: str, device_id: int, one_time: bool = True
    ) -> DeviceBundle:
        """Read a device's signed prekeys and claim one one-time key of each kind (none when
        ``one_time`` is False: the requester reached its drain limit).

        Each one-time key is deleted in the statement that returns it, so concurrent
        claims never receive the same key.

        Raises:
            NotFound: no such device.
        """
        async with self._tx() as conn:
            row = (
                await conn.execute(
                    select(devices).where(
                        devices.c.account_id == account_id, devices.c.device_id == device_id
                    )
                )
            ).first()
            if row is None:
                raise NotFound(f"{account_id}/{device_id}")
            device = Device(**row._mapping)
            signed_rows = await conn.execute(
                select(
                    signed_prekeys.c.kind,
                    signed_prekeys.c.key_id,
                    signed_prekeys.c.public_key,
                    signed_prekeys.c.signature,
                ).where(
                    signed_prekeys.c.account_id == account_id,
                    signed_prekeys.c.device_id == device_id,
                )
            )
            signed = {int(r.kind): Prekey(**r._mapping) for r in signed_rows}
            curve = kem = None
            if one_time:
                curve = await self._claim_one(
                    conn, account_id, device_id, PREKEY_KIND_CURVE_ONE_TIME
                )
                kem = await self._claim_one(conn, account_id, device_id, PREKEY_KIND_KEM_ONE_TIME)
        return DeviceBundle(
            device=device,
            signed_prekey=signed.get(PREKEY_KIND_CURVE_SIGNED),
            kem_last_resort=signed.get(PREKEY_KIND_KEM_LAST_RESORT),
            one_time_curve=curve,
            one_time_kem=kem,
        )

    async def _claim_one(
        self, conn: AsyncConnection, account_id: str, device_id: int, kind: int
    ) -> Prekey | None:
        t = one_time_prekeys
        pick = (
            select(t.c.key_id)
            .where(t.c.account_id == account_id, t.c.device_id == device_id, t.c.kind == kind)
            .order_by(t.c.key_id)
            .limit(1)
        )
        if self.dialect == "postgresql":
            # Another transaction may hold the first row; skip it rather than wait and then
            # find it gone (READ COMMITTED would return nothing although keys remain).
            pick = pick.with_for_update(skip_locked=True)
        stmt = (
            delete(t)
            .where(
                t.c.account_id == account_id,
                t.c.device_id == device_id,
                t.c.kind == kind,
                t.c.key_id == pick.scalar_subquery(),
            )
            .returning(t.c.kind, t.c.key_id, t.c.public_key, t.c.signature)
        )
        row = (await conn.execute(stmt)).first()
        return Prekey(**row._mapping) if row else None

    # -- envelope queue --------------------------------------------------------------------

    async def enqueue(self, batch: Sequence[QueuedEnvelope]) -> dict[bytes, int]:
        """Store envelopes in one transaction (group commit).

        Returns the sequence number of each stored envelope by guid; an envelope that
        duplicates one already stored (same sender device, message id and recipient
        device) is left out.
        """
        seqs, _ = await self.write_batch(batch, [])
        return seqs

    async def write_batch(
        self,
        batch: Sequence[QueuedEnvelope],
        acknowledged: Sequence[tuple[str, int, bytes]],
    ) -> tuple[dict[bytes, int], int]:
        """One transaction per writer pass: store ``batch`` and delete the acknowledged
        ``(recipient account, recipient device, guid)`` rows. Returns the new rows' sequence
        numbers by guid (duplicates left out, see ``enqueue``) and how many rows went."""
        seqs: dict[bytes, int] = {}
        deleted = 0
        if not batch and not acknowledged:
            return seqs, deleted
        async with self._tx() as conn:
            if batch:
                rows = [
                    {
                        "guid": e.guid,
                        "recipient_account": e.recipient_account,
                        "recipient_device": e.recipient_device,
                        # A sealed envelope ("" sender) stores NULL: the column is absent
                        # for it in every sense that a copy of the database can show.
                        "sender_account": e.sender_account or None,
                        "sender_device": e.sender_device if e.sender_account else None,
                        "message_id": e.message_id,
                        "content": e.content,
                        "stored_at": e.stored_at,
                    }
                    for e in batch
                ]
                stmt = (
                    self._insert(envelopes)
                    .on_conflict_do_nothing()
                    .returning(envelopes.c.guid, envelopes.c.seq)
                )
                result = await conn.execute(stmt, rows)
                seqs = {bytes(g): int(q) for g, q in result.all()}
            for start in range(0, len(acknowledged), DELETE_CHUNK):
                chunk = list(acknowledged[start : start + DELETE_CHUNK])
                gone = await conn.execute(_DELETE_ACKNOWLEDGED, {"keys": chunk})
                deleted += int(gone.rowcount or 0)
        return seqs, deleted

    async def pending(
        self, account_id: str, device_id: int, after_seq: int = 0, limit: int = 500
    ) -> list[QueuedEnvelope]:
        """Queued envelopes for a device in the order they were stored."""
        e = envelopes
        async with self._tx() as conn:
            rows = await conn.execute(
                select(e)
                .where(
                    e.c.recipient_account == account_id,
                    e.c.recipient_device == device_id,
                    e.c.seq > after_seq,
                )
                .order_by(e.c.seq)
                .limit(limit)
            )
            return [_queued(r._mapping) for r in rows]

    async def delete_envelopes(
        self, account_id: str, device_id: int, guids: Iterable[bytes]
    ) -> int:
        """Delete acknowledged envelopes; only the recipient's own can be deleted."""
        _, deleted = await self.write_batch([], [(account_id, device_id, g) for g in guids])
        return deleted

    async def expire_envelopes(self, older_than_ms: int) -> int:
        """Delete undelivered envelopes stored before ``older_than_ms``."""
        async with self._tx() as conn:
            result = await conn.execute(
                delete(envelopes).where(envelopes.c.stored_at < older_than_ms)
            )
            await conn.execute(
                delete(recent_sends).where(recent_sends.c.expires_at < older_than_ms)
            )
            return int(result.rowcount or 0)

    # -- idempotency memory ----------------------------------------------------------------

    async def save_recent_sends(self, items: Iterable[tuple[str, int, str, int]]) -> None:
        rows = [
            {"sender_account": a, "sender_device": d, "message_id": m, "expires_at": x}
            for a, d, m, x in items
        ]
        if not rows:
            return
        async with self._tx() as conn:
            await conn.execute(self._insert(recent_sends).on_conflict_do_nothing(), rows)

    async def existing_accounts(self, account_ids: Iterable[str]) -> set[str]:
        """Which of ``account_ids`` still exist (an erased account's sends are never saved)."""
        ids = sorted(set(account_ids))
        found: set[str] = set()
        if not ids:
            return found
        async with self._tx() as conn:
            for i in range(0, len(ids), 500):
                query = select(accounts.c.account_id).where(
                    accounts.c.account_id.in_(ids[i : i + 500])
                )
                found.update(str(r[0]) for r in (await conn.execute(query)).all())
        return found

    async def load_recent_sends(self, now_ms: int) -> list[tuple[str, int, str, int]]:
        """Read and forget the remembered sends that have not yet expired."""
        r = recent_sends
        async with self._tx() as conn:
            rows = await conn.execute(select(r).where(r.c.expires_at >= now_ms))
            out = [(x.sender_account, x.sender_device, x.message_id, x.expires_at) for x in rows]
            await conn.execute(delete(r))
            return out


def _queued(row: Any) -> QueuedEnvelope:
    """A stored envelope; a sealed one (NULL sender) reads as sender ``("", 0)``."""
    fields = dict(row)
    fields["sender_account"] = fields["sender_account"] or ""
    fields["sender_device"] = fields["sender_device"] or 0
    return QueuedEnvelope(**fields)


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}
