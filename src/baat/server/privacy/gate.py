"""The gate: the single door through which optional processing reads personal data.

::

    async with gate.use("understand", "baat", fields=["account.last_seen_day"]) as subjects:
        ...  # only accounts whose consent to "understand" counts right now

Before any data is read the gate checks the request against the policy: the purpose is
optional, the recipient is declared for it, the destination country is the declared one
(with a transfer basis when data leaves the storage region: GDPR chapter V, DPDP s. 16),
every field is declared for that purpose and recipient, and every account's storage region
is declared. Anything else is refused with ``UndeclaredTransfer``. It then reads only the
requested fields of consenting accounts, and records one transfer-log row per account in the
same transaction, before the caller sees the data: a transfer that may have happened is
always logged (DPDP Rules 2025, Rule 8; GDPR Art. 30).

Consent is decided at every use from the ledger's signed records (``consent_view``), never
from the ``consent_events`` columns, which anyone with database access can edit; the view is
brought up to date before each use, so a withdrawal applies to the very next run (GDPR
Art. 7(3), DPDP s. 6(4)). A ledger that does not verify stops every optional purpose
(``LedgerUnverifiable``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from baat.privacy.errors import PurposeNotOptional, UndeclaredRegion, UndeclaredTransfer
from baat.privacy.policy import Policy
from baat.privacy.purposes import ANYWHERE, STORAGE_REGION
from baat.server.privacy import keys
from baat.server.privacy.consent_view import ConsentView
from baat.server.privacy.schema import consent_subjects, transfer_log
from baat.server.storage.schema import accounts, metadata


@dataclass(frozen=True, slots=True)
class Subject:
    """One consenting account and the fields the caller asked for (by inventory id).

    Fields stored once per account are plain values; fields stored per device are lists.
    ``account_id`` is for linking results inside Baat; it is disclosed only when asked for
    as the ``account.id`` field.
    """

    account_id: str
    fields: Mapping[str, Any]


class Gate:
    def __init__(
        self,
        engine: AsyncEngine,
        policy: Policy,
        clock: Callable[[], float],
        view: ConsentView | None = None,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.clock = clock
        self.view = view or ConsentView()

    def _check(
        self, purpose_id: str, recipient_id: str, fields: Sequence[str], country: str | None
    ) -> list[tuple[str, str, str]]:
        policy = self.policy
        purpose = policy.purpose(purpose_id)
        if not purpose.optional:
            raise PurposeNotOptional(
                f"{purpose_id!r} is essential and does not go through the gate"
            )
        recipient = policy.recipient(recipient_id)
        if recipient is None or recipient_id not in purpose.recipients:
            raise UndeclaredTransfer(
                f"recipient {recipient_id!r} is not declared for purpose {purpose_id!r}"
            )
        if country is not None and recipient.country not in (country, ANYWHERE):
            raise UndeclaredTransfer(
                f"{recipient.name} is declared in {recipient.country}, not {country}"
            )
        columns: list[tuple[str, str, str]] = []
        for field_id in fields:
            entry = policy.entry(field_id)
            if entry is None or entry.side != "server" or not entry.columns:
                raise UndeclaredTransfer(f"{field_id!r} is not a stored server field")
            if purpose_id not in entry.purposes or recipient_id not in entry.recipients:
                raise UndeclaredTransfer(
                    f"{field_id!r} is not declared for purpose {purpose_id!r} "
                    f"and recipient {recipient_id!r}"
                )
            # The first listed column is the field's home; the others are copies or keys.
            table, column = entry.columns[0].split(".", 1)
            if "account_id" not in metadata.tables[table].c:
                raise UndeclaredTransfer(f"{field_id!r} is not held per account")
            columns.append((field_id, table, column))
        return columns

    def _destination(self, recipient_id: str, region_id: str) -> str:
        recipient = self.policy.recipient(recipient_id)
        region = self.policy.region(region_id)
        if recipient is None:
            raise UndeclaredTransfer(f"unknown recipient {recipient_id!r}")
        if region is None:
            raise UndeclaredRegion(f"storage region {region_id!r} is not declared in the policy")
        if recipient.country == STORAGE_REGION:
            return region.country
        if recipient.country not in (ANYWHERE, region.country) and (
            recipient.transfer_gdpr is None or recipient.transfer_dpdp is None
        ):
            raise UndeclaredTransfer(
                f"no transfer basis declared for {recipient.name} from {region.country}"
            )
        return recipient.country

    @asynccontextmanager
    async def use(
        self,
        purpose: str,
        recipient: str,
        *,
        fields: Sequence[str],
        country: str | None = None,
        only: Collection[str] | None = None,
    ) -> AsyncIterator[list[Subject]]:
        """Yield the consenting accounts (restricted to ``only`` when given) with ``fields``.

        Raises:
            UnknownPurpose: no such purpose.
            PurposeNotOptional: an essential purpose.
            UndeclaredTransfer: recipient, country or field not declared for the purpose.
            UndeclaredRegion: an account is stored in a region the policy does not declare.
            LedgerUnverifiable: consent cannot be proven from signed records.
        """
        columns = self._check(purpose, recipient, fields, country)
        the_purpose = self.policy.purpose(purpose)
        async with self.engine.begin() as conn:
            await self.view.refresh(conn, await keys.jwks_on(conn))
            given = sorted(self.view.consenting(the_purpose))
            s = consent_subjects
            allowed = await conn.execute(
                select(s.c.account_id, s.c.subject_ref).where(s.c.subject_ref.in_(given))
            )
            refs = {r.account_id: r.subject_ref for r in allowed}
            if only is not None:
                refs = {a: s for a, s in refs.items() if a in set(only)}
            ids = sorted(refs)
            regions = dict(
                (
                    await conn.execute(
                        select(accounts.c.account_id, accounts.c.region).where(
                            accounts.c.account_id.in_(ids)
                        )
                    )
                ).all()
            )
            ids = [a for a in ids if a in regions]  # consent outlives nothing: skip the erased
            values: dict[str, dict[str, Any]] = {a: {} for a in ids}
            for field_id, table_name, column in columns:
                table = metadata.tables[table_name]
                order = [table.c[k] for k in ("device_id",) if k in table.c]
                rows = await conn.execute(
                    select(table.c.account_id, table.c[column])
                    .where(table.c.account_id.in_(ids))
                    .order_by(table.c.account_id, *order)
                )
                for account_id, value in rows:
                    if table_name == "accounts":
                        values[account_id][field_id] = value
                    else:
                        values[account_id].setdefault(field_id, []).append(value)
            now = int(self.clock())
            transfer_id = str(uuid.uuid4())
            log = [
                {
                    "transfer_id": transfer_id,
                    "at": now,
                    "purpose": purpose,
                    "recipient": recipient,
                    "country": self._destination(recipient, regions[a]),
                    "region": regions[a],
                    "subject_ref": refs[a],
                    "fields": json.dumps(sorted(fields)),
                    "policy_version": self.policy.version,
                }
                for a in ids
            ]
            if log:
                await conn.execute(transfer_log.insert(), log)
        # The log is committed before the data is handed over.
        yield [Subject(a, values[a]) for a in ids]
