"""``PrivacyService``: what the HTTP routes, the CLI and scheduled jobs call.

Nothing here branches on an account's jurisdiction: it is copied into consent records and
chooses the storage region on correction, and that is all (DPDP s. 6(1), GDPR Art. 7(4)).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import delete, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from baat.privacy import receipts
from baat.privacy.erasure import Erasure, Phase
from baat.privacy.errors import (
    AccountNotFound,
    ConsentNotGiven,
    InvalidCorrection,
    LedgerUnverifiable,
    PrivacyError,
    PrivacyStorageError,
    PurposeNotOptional,
    ReceiptError,
    ReceiptNotInLedger,
    UndeclaredRegion,
    UnknownJurisdiction,
    UsernameInUse,
)
from baat.privacy.inventory import duration_seconds
from baat.privacy.policy import Policy
from baat.privacy.purposes import Purpose
from baat.privacy.residency import Residency
from baat.server.privacy import (
    jobs,
    keys,
    ledger,
    ledger_head,
    receipt_fields,
    retention,
    rights,
    transparency,
)
from baat.server.privacy.consent_view import ConsentView
from baat.server.privacy.gate import Gate
from baat.server.privacy.schema import consent_events, region_transfers, transfer_log
from baat.server.regions.ids import region_of
from baat.server.storage.base import Account, StorageUnavailable
from baat.server.storage.compact import compact
from baat.server.storage.schema import (
    accounts,
    link_codes,
    recent_sends,
    registration_invites,
)
from baat.server.storage.sql import SqlStore

T = TypeVar("T")
log = logging.getLogger("baat.privacy")
SUPPORT = "baat-support"
JOBS = ("improve", "understand", "customize", "market", "share_affiliate")


class PrivacyService:
    def __init__(
        self,
        store: SqlStore,
        policy: Policy,
        key: keys.SigningKey | None,
        *,
        region: str,
        data_dir: Path,
        affiliate_url: str | None,
        clock: Callable[[], float],
        support_url: str | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.key = key
        self.region = region
        self.data_dir = data_dir
        self.affiliate_url = affiliate_url
        # Where the support desk is told of erasures of accounts it looked up.
        self.support_url = support_url
        self.clock = clock
        # Consent decisions come from verified, signed records only (``consent_view``).
        self.view = ConsentView()
        self.gate = Gate(store.engine, policy, clock, self.view)
        # Every store outside the inventory's SQL rows registers here (privacy/erasure.py);
        # the database's own compaction is always registered.
        self.erasure = Erasure()
        # What this deployment does with each jurisdiction (privacy/residency.py); None for
        # the operator's tools, which serve no registrations.
        self.residency: Residency | None = None
        self.erasure.register_compactor("database", lambda t: compact(store.engine, t))

    @classmethod
    async def open(
        cls,
        store: SqlStore,
        *,
        data_dir: Path,
        region: str,
        affiliate_url: str | None = None,
        support_url: str | None = None,
        clock: Callable[[], float] = time.time,
        policy: Policy | None = None,
        sign: bool = True,
    ) -> PrivacyService:
        """Load (or create on first start) the receipt signing key and wire the service.

        ``sign=False`` opens it for read-only administration (ledger checks, reports) on a
        machine without the key-encryption key.

        Raises:
            UndeclaredRegion: ``region`` is not a storage region of the policy.
            PrivacyStorageError: the database failed.
        """
        policy = policy or Policy.current()
        if policy.region(region) is None:
            declared = ", ".join(r.id for r in policy.regions)
            raise UndeclaredRegion(f"region {region!r} is not declared; use one of: {declared}")
        key = None
        if sign:
            kek = keys.load_kek(Path(data_dir))
            key = await _db(keys.load_or_create(store.engine, kek, int(clock())))
        return cls(
            store,
            policy,
            key,
            region=region,
            data_dir=Path(data_dir),
            affiliate_url=affiliate_url,
            clock=clock,
            support_url=support_url,
        )

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.store.engine.begin() as conn:
                yield conn
        except (sa_exc.OperationalError, sa_exc.InterfaceError, OSError) as exc:
            raise PrivacyStorageError(str(exc).splitlines()[0]) from exc

    async def _account(self, account_id: str) -> Account:
        account = await _db(self.store.account(account_id))
        if account is None:
            raise AccountNotFound(f"no account {account_id!r}")
        return account

    def _optional(self, purpose_id: str) -> Purpose:
        purpose = self.policy.purpose(purpose_id)
        if not purpose.optional:
            raise PurposeNotOptional(
                f"{purpose_id!r} is part of the essential service and needs no consent"
            )
        return purpose

    def _signing_key(self) -> keys.SigningKey:
        if self.key is None:
            raise PrivacyError("this service was opened without its signing key")
        return self.key

    # -- published material ----------------------------------------------------------------

    async def jwks(self) -> dict[str, Any]:
        return await _db(keys.jwks(self.store.engine))

    # -- consent ---------------------------------------------------------------------------

    async def grant(
        self,
        account_id: str,
        purpose: str,
        *,
        method: str = "api",
        device_id: int | None = None,
        base_url: str | None = None,
    ) -> receipts.Receipt:
        """Record consent to an optional purpose and return the signed receipt.

        ``method`` is how the person gave it (cli, web, api); ``device_id`` the device that
        asked, whose identity key fingerprint goes into the record; ``base_url`` the server
        address the person used, for the notice's absolute URL.

        Raises:
            UnknownPurpose, PurposeNotOptional, AccountNotFound, PrivacyStorageError.
        """
        p = self._optional(purpose)
        account = await self._account(account_id)
        async with self._tx() as conn:
            ref = await ledger.subject_ref(conn, account_id, create=True)
            assert ref is not None
            return await ledger.append(
                conn,
                self._signing_key(),
                self.policy,
                p,
                ref,
                ledger.GIVEN,
                jurisdiction=account.jurisdiction,
                method=method,
                actor="data-subject",
                now=int(self.clock()),
                **await self._provenance(conn, account_id, device_id, base_url),
            )

    async def _provenance(
        self, conn: AsyncConnection, account_id: str, device_id: int | None, base: str | None
    ) -> dict[str, Any]:
        return {
            "notice_url": receipt_fields.notice_url(base, self.policy),
            "identity": await receipt_fields.identity(conn, account_id, device_id),
        }

    async def _verified(self, conn: AsyncConnection) -> ConsentView:
        await self.view.refresh(conn, await keys.jwks_on(conn))
        return self.view

    async def ledger_head(self) -> dict[str, Any]:
        """The signed chain head as published at ``/.well-known/baat/ledger-head``.

        Raises:
            LedgerUnverifiable: the stored head does not verify; PrivacyStorageError.
        """
        async with self._tx() as conn:
            token = await ledger_head.load(conn)
            if token is None:
                # Only an empty ledger may be vouched for on the fly; records without a
                # stored head need the operator (``seal_ledger``).
                if await conn.scalar(select(consent_events.c.seq).limit(1)) is not None:
                    raise LedgerUnverifiable("the ledger has records but no signed head")
                head = ledger.empty_head(self._signing_key(), int(self.clock()))
                return head.to_json()
            try:
                return ledger_head.verify(token, await keys.jwks_on(conn)).to_json()
            except ReceiptError as exc:
                raise LedgerUnverifiable(f"the stored ledger head does not verify: {exc}") from exc

    async def withdraw(
        self,
        account_id: str,
        purpose: str,
        *,
        method: str = "api",
        device_id: int | None = None,
        base_url: str | None = None,
    ) -> receipts.Receipt:
        """Withdraw consent; the next run of every job and export already excludes it.

        Raises:
            UnknownPurpose, PurposeNotOptional, AccountNotFound,
            ConsentNotGiven: there is no active consent to withdraw,
            PrivacyStorageError.
        """
        p = self._optional(purpose)
        account = await self._account(account_id)
        async with self._tx() as conn:
            await ledger.lock(conn)
            ref = await ledger.subject_ref(conn, account_id, create=False)
            newest = (await self._verified(conn)).latest(ref)
            if ref is None or newest.get(p.id, {}).get("state") != ledger.GIVEN:
                raise ConsentNotGiven(f"there is no consent to {p.id!r} to withdraw")
            receipt = await ledger.append(
                conn,
                self._signing_key(),
                self.policy,
                p,
                ref,
                ledger.WITHDRAWN,
                jurisdiction=account.jurisdiction,
                method=method,
                actor="data-subject",
                now=int(self.clock()),
                **await self._provenance(conn, account_id, device_id, base_url),
            )
            shared = await rights.shared_with(conn, account_id, jobs.AFFILIATE)
        if shared and p.id == "share_affiliate":
            # The affiliate is an independent controller: ask it to stop (GDPR Art. 17(1)(b)
            # with Art. 19; DPDP s. 6(6)).
            await jobs.notify_affiliate(
                self.affiliate_url, "withdrawal", {"subjects": [account.username]}
            )
        return receipt

    async def consents(self, account_id: str) -> list[dict[str, Any]]:
        """Every optional purpose with its state for the account (all off by default)."""
        await self._account(account_id)
        async with self._tx() as conn:
            ref = await ledger.subject_ref(conn, account_id, create=False)
            newest = (await self._verified(conn)).latest(ref)
        out = []
        for p in self.policy.optional_purposes:
            row = newest.get(p.id)
            given = row is not None and row["state"] == ledger.GIVEN
            current = given and row is not None and row["policy_version"] >= p.consent_since
            out.append(
                {
                    "purpose": p.id,
                    "title": p.title,
                    "state": row["state"] if row is not None else "not-given",
                    "effective": current,
                    "needs_reconsent": given and not current,
                    "policy_version": row["policy_version"] if row is not None else None,
                    "at": ledger.iso_time(row["at"]) if row is not None else None,
                    "record_id": row["record_id"] if row is not None else None,
                    "seq": row["seq"] if row is not None else None,
                }
            )
        return out

    async def verify_receipt(self, token: str) -> receipts.Receipt:
        """Check a receipt's signature and that the ledger holds the same record.

        Raises:
            ReceiptMalformed, ReceiptForged, ReceiptUnknownKey, ReceiptNotInLedger.
        """
        receipt = receipts.verify(token, await self.jwks())
        async with self._tx() as conn:
            stored = await conn.scalar(
                select(consent_events.c.record_hash).where(
                    consent_events.c.record_id == receipt.record_id
                )
            )
        if stored != receipt.record_hash:
            raise ReceiptNotInLedger("the ledger holds no record matching this receipt")
        return receipt

    async def seal_ledger(self) -> dict[str, Any] | None:
        """Sign the current end of a ledger that has no stored head (one written before
        heads existed); ``None`` when a head exists. An operator step, never automatic: a
        server that re-signed whatever chain it found would vouch for a truncated one.

        Raises:
            PrivacyError: opened without the signing key; PrivacyStorageError.
        """
        async with self._tx() as conn:
            head = await ledger.seal_head(conn, self._signing_key(), int(self.clock()))
        return None if head is None else head.to_json()

    async def verify_ledger(self) -> ledger.LedgerReport:
        key_set = await self.jwks()
        async with self._tx() as conn:
            return await ledger.verify(conn, key_set)

    # -- rights ----------------------------------------------------------------------------

    async def export_account(self, account_id: str) -> dict[str, Any]:
        """Everything the server holds about the account (GDPR Art. 15 and 20, DPDP s. 11).

        Raises:
            AccountNotFound, PrivacyStorageError.
        """
        await self._account(account_id)
        current = await self.consents(account_id)
        async with self._tx() as conn:
            held = await rights.held_rows(conn, self.policy, account_id)
            ref = await ledger.subject_ref(conn, account_id, create=False)
            history = await rights.consent_history(conn, ref)
            moved = await rights.transfers(conn, ref)
        names = {r.id: r.name for r in self.policy.recipients}
        server = [e for e in self.policy.entries if e.side == "server" and e.subjects]
        return {
            "format": "baat-access-export/1",
            "generated_at": ledger.iso_time(int(self.clock())),
            "policy": {"version": self.policy.version, "sha256": self.policy.sha256},
            "account_id": account_id,
            "summary": [
                {"field": e.id, "title": e.title, "purposes": list(e.purposes)}
                for e in server
                if e.in_export
            ],
            "data": held,
            "not_included": [
                {"field": e.id, "reason": e.description} for e in server if not e.in_export
            ],
            "consents": {"current": current, "history": history},
            "transfers": moved,
            "shared_with": sorted({names.get(t["recipient"], t["recipient"]) for t in moved}),
        }

    async def delete_account(self, account_id: str) -> dict[str, Any]:
        """Erase the account (GDPR Art. 17, DPDP s. 12(3)) through ``self.erasure``: the
        stores that hold data found through its rows first, then, in one transaction,
        active consents are withdrawn in the ledger and every row referencing the account
        is deleted; then memory, Redis and caches; then the database files are compacted.
        Every recipient that received the account's data under a consent is told, and each
        notice is recorded in the ledger (GDPR Art. 19, DPDP s. 8(7)).

        Raises:
            AccountNotFound, PrivacyStorageError.
        """
        account = await self._account(account_id)
        elsewhere, failed = await self.erasure.run(Phase.BEFORE, account_id)
        withdrawn: list[str] = []
        async with self._tx() as conn:
            await ledger.lock(conn)
            received = await rights.recipients_of(conn, account_id)
            ref = await ledger.subject_ref(conn, account_id, create=False)
            newest = (await self._verified(conn)).latest(ref)
            # Each business chat is a purpose of its own (docs/BUSINESS.md §3): withdrawn too.
            per_business = [self.policy.purpose(pid) for pid in sorted(newest) if ":" in pid]
            for p in (*self.policy.optional_purposes, *per_business):
                if ref and newest.get(p.id, {}).get("state") == ledger.GIVEN:
                    await ledger.append(
                        conn,
                        self._signing_key(),
                        self.policy,
                        p,
                        ref,
                        ledger.WITHDRAWN,
                        jurisdiction=account.jurisdiction,
                        method="account-erasure",
                        actor="data-subject",
                        now=int(self.clock()),
                        **await self._provenance(conn, account_id, None, None),
                    )
                    withdrawn.append(p.id)
            deleted = await rights.erase(conn, self.policy, account_id)
        after, failed_after = await self.erasure.run(Phase.AFTER, account_id)
        elsewhere.update(after)
        failed += failed_after
        notified, records = await self._notify_erasure(account, ref, received)
        failed += await self.erasure.compact([*deleted, "consent_events"])
        return {
            "deleted": deleted,
            "erased_elsewhere": elsewhere,
            "consents_withdrawn": withdrawn,
            "recipients_notified": notified,
            "notices_recorded": records,
            "incomplete": failed,
        }

    async def _notify_erasure(
        self, account: Account, ref: str | None, received: dict[str, set[str]]
    ) -> tuple[dict[str, str], list[str]]:
        """Tell every recipient outside Baat's own processing that received the account's
        data (``transfer_log``) of the erasure, and record each notice in the ledger as a
        signed withdrawal event of the purpose it received the data for."""
        urls = {jobs.AFFILIATE: self.affiliate_url, SUPPORT: self.support_url}
        notified: dict[str, str] = {}
        records: list[str] = []
        for recipient, purposes in sorted(received.items()):
            if recipient not in urls:
                continue  # Baat itself: the erasure above is the whole answer
            notified[recipient] = await jobs.notify_affiliate(
                urls[recipient], "erasure", {"subjects": [account.username]}
            )
            if ref is None or self.key is None:
                continue
            declared = [p for p in self.policy.optional_purposes if p.id in purposes]
            async with self._tx() as conn:
                for purpose in declared:
                    receipt = await ledger.append(
                        conn,
                        self.key,
                        self.policy,
                        purpose,
                        ref,
                        ledger.WITHDRAWN,
                        jurisdiction=account.jurisdiction,
                        method=f"erasure-notice:{recipient}:{notified[recipient]}",
                        actor="controller",
                        now=int(self.clock()),
                        # The account's keys are gone with it: the record names no identity.
                        notice_url=receipt_fields.notice_url(None, self.policy),
                    )
                    records.append(receipt.record_id)
        return notified, records

    async def correct(self, account_id: str, **fields: Any) -> dict[str, Any]:
        """Correct profile fields: ``username``, ``jurisdiction``, ``region`` (GDPR Art. 16,
        DPDP s. 12). A new jurisdiction moves the account to its storage region unless a
        region is given, except for an account whose id names its home region (every
        account registered since storage regions exist): its data stays there, so only a
        jurisdiction that this deployment also stores in that region is accepted.

        Raises:
            AccountNotFound, InvalidCorrection, UnknownJurisdiction, UsernameInUse,
            PrivacyStorageError.
        """
        account = await self._account(account_id)
        unknown = set(fields) - {"username", "jurisdiction", "region"}
        if unknown or not fields:
            raise InvalidCorrection(
                "correctable fields are username, jurisdiction and region"
                + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else "")
            )
        values: dict[str, str] = {}
        if fields.get("username") is not None:
            # The same rule as registration, so a correction can never create a name that
            # registration would refuse.
            from baat.server.accounts import RegistrationError, normalize_username

            try:
                values["username"] = normalize_username(str(fields["username"]))
            except RegistrationError as exc:
                raise InvalidCorrection(exc.message) from exc
        if fields.get("jurisdiction") is not None:
            code = str(fields["jurisdiction"]).upper()
            j = self.policy.jurisdiction(code)
            if j is None:
                known = ", ".join(x.code for x in self.policy.jurisdictions)
                raise UnknownJurisdiction(f"unknown jurisdiction {code!r}; use one of: {known}")
            values["jurisdiction"] = code
            values["region"] = j.region
        if fields.get("region") is not None:
            region = str(fields["region"])
            if self.policy.region(region) is None:
                raise InvalidCorrection(f"unknown storage region {region!r}")
            values["region"] = region
        home = region_of(account_id)
        if home is not None and values.get("region", home) != home:
            # The id names the region whose database holds the account; moving it to
            # another region's database is not something a correction can do. Nor may the
            # account keep a jurisdiction whose notice names another region than the one
            # holding it (privacy/residency.py): the notice would no longer be true.
            wanted = values["region"]
            raise InvalidCorrection(
                f"this account is stored in region {home!r}"
                + (
                    f"; accounts of jurisdiction {values['jurisdiction']} are stored in "
                    f"region {wanted!r}"
                    if fields.get("region") is None
                    else ""
                )
                + "; moving it to another region is not supported (export your data and "
                "register there)"
            )
        try:
            async with self._tx() as conn:
                await conn.execute(
                    accounts.update().where(accounts.c.account_id == account_id).values(**values)
                )
                shared = await rights.shared_with(conn, account_id, jobs.AFFILIATE)
        except sa_exc.IntegrityError as exc:
            raise UsernameInUse(f"username {values.get('username')!r} is taken") from exc
        updated = await self._account(account_id)
        changes = {
            k: getattr(updated, k)
            for k in ("username", "region")
            if getattr(updated, k) != getattr(account, k)
        }
        if shared and changes:
            await jobs.notify_affiliate(
                self.affiliate_url,
                "correction",
                {"subjects": [account.username], "changes": changes},
            )
        return {
            "username": updated.username,
            "jurisdiction": updated.jurisdiction,
            "region": updated.region,
        }

    # -- reports ---------------------------------------------------------------------------

    async def transparency_report(self) -> dict[str, Any]:
        async with self._tx() as conn:
            return await transparency.report(
                conn, self.policy, self.clock(), residency=self.residency
            )

    async def legal_process(self, username: str) -> dict[str, Any]:
        """Exactly what the operator could hand over for ``username``: the fields the policy
        marks producible, nothing else. Every run is logged (the day only, not the name nor
        the answer) and counted in the transparency report, found or not.

        Raises:
            AccountNotFound, PrivacyStorageError.
        """
        async with self._tx() as conn:
            await retention.log_legal_process_run(conn, self.clock())
        account = await _db(self.store.account_by_username(username.strip().casefold()))
        if account is None:
            raise AccountNotFound(f"no account named {username!r}")
        produced = {}
        for e in self.policy.entries:
            if e.legal_process:
                table, column = e.columns[0].split(".", 1)
                assert table == "accounts", "producible fields live on the account row"
                produced[e.id] = jobs.day_iso(getattr(account, column))
        async with self._tx() as conn:
            seized = await transparency.seized_database(conn, account.account_id)
        return {"username": account.username, "produced": produced, "seized_database": seized}

    # -- retention -------------------------------------------------------------------------

    def _retention(self, entry_id: str) -> int:
        entry = self.policy.entry(entry_id)
        assert entry is not None
        return duration_seconds(entry.retention.duration)

    async def run_retention(self, now: float) -> dict[str, int]:
        """Delete what the inventory's retention periods say is due at ``now``: the SQL
        tables here, every registered store through ``self.erasure``, then compaction."""
        elsewhere, failed = await self.erasure.expire(now)
        cutoff_ms = int((now - self._retention("envelope.content")) * 1000)
        expired = await _db(self.store.expire_envelopes(cutoff_ms))
        async with self._tx() as conn:
            old = int(now) - self._retention("transfer.record")
            result = await conn.execute(delete(transfer_log).where(transfer_log.c.at < old))
            old_day = (int(now) - self._retention("transfer.region_count")) // 86_400
            counts = await conn.execute(
                delete(region_transfers).where(region_transfers.c.day < old_day)
            )
            await ledger.lock(conn)  # several nodes may run retention at once
            pruned = await ledger.prune(
                conn, int(now) - self._retention("consent.record"), int(now)
            )
            sends = await conn.execute(
                delete(recent_sends).where(recent_sends.c.expires_at < int(now * 1000))
            )
            codes = await conn.execute(delete(link_codes).where(link_codes.c.expires_at < now))
            invites = await conn.execute(
                delete(registration_invites).where(registration_invites.c.expires_at < now)
            )
            runs = await retention.prune_legal_process_runs(
                conn, int(now) - self._retention("operator.legal_process_run")
            )
            keys_gone = await retention.prune_retired_keys(
                conn, int(now) - self._retention("server.signing_key")
            )
        out = {
            "envelopes": expired,
            "transfer_log": int(result.rowcount or 0),
            "region_transfers": int(counts.rowcount or 0),
            "consent_events": pruned,
            "recent_sends": int(sends.rowcount or 0),
            "link_codes": int(codes.rowcount or 0),
            "registration_invites": int(invites.rowcount or 0),
            "legal_process_runs": runs,
            "server_keys": keys_gone,
            **elsewhere,
        }
        # PostgreSQL vacuums only the tables that lost rows; SQLite always checkpoints.
        tables = {
            "envelopes": ("envelopes",),
            "recent_sends": ("recent_sends",),
            "link_codes": ("link_codes",),
            "registration_invites": ("registration_invites",),
            "transfer_log": ("transfer_log",),
            "region_transfers": ("region_transfers",),
            "consent_events": ("consent_events",),
            "legal_process_runs": ("legal_process_runs",),
            "server_keys": ("server_keys",),
            "attachments": ("blobs", "blob_chunks"),
        }
        failed += await self.erasure.compact(
            [t for key, names in tables.items() if out.get(key) for t in names]
        )
        for failure in failed:
            log.warning("retention incomplete: %s", failure)
        return out

    # -- optional purposes -----------------------------------------------------------------

    async def run_improve(self) -> dict[str, Any]:
        return await jobs.improve(self.gate)

    async def run_understand(self) -> dict[str, Any]:
        return await jobs.understand(self.gate, self.clock())

    async def run_customize(self) -> dict[str, str]:
        return await jobs.customize(self.gate, self.clock())

    async def run_market(self) -> dict[str, Any]:
        return await jobs.market(self.gate)

    async def run_affiliate_export(self) -> dict[str, Any]:
        return await jobs.share_affiliate(self.gate, self.affiliate_url)

    async def support_lookup(self, username: str) -> dict[str, Any]:
        """Raises: AccountNotFound, ConsentRequired."""
        account = await _db(self.store.account_by_username(username.strip().casefold()))
        if account is None:
            raise AccountNotFound(f"no account named {username!r}")
        return await jobs.support_lookup(self.gate, account.account_id)

    async def run_job(self, name: str) -> Any:
        """Run one optional-purpose job by name (see ``JOBS``).

        Raises:
            ValueError: unknown job name.
        """
        runners: dict[str, Callable[[], Awaitable[Any]]] = {
            "improve": self.run_improve,
            "understand": self.run_understand,
            "customize": self.run_customize,
            "market": self.run_market,
            "share_affiliate": self.run_affiliate_export,
        }
        if name not in runners:
            raise ValueError(f"unknown job {name!r}; jobs: {', '.join(JOBS)}")
        return await runners[name]()


async def _db(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except StorageUnavailable as exc:
        raise PrivacyStorageError(str(exc)) from exc
    except (sa_exc.OperationalError, sa_exc.InterfaceError, OSError) as exc:
        raise PrivacyStorageError(str(exc).splitlines()[0]) from exc
