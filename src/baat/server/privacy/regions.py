"""The transfer gate for the essential service between Baat's storage regions.

An account's data lives only in its home region's database. Writing to, or looking up, an
account stored in another region moves some data across: the envelope (with the sender's
account and device) goes to the recipient's region, and the recipient's prekeys and public
account details come back. Routing is the essential service, so no consent is asked, but
every such move still passes a gate that checks the policy declares it:

* the kind of transfer names the inventory fields it carries (``KINDS``); every field must
  be declared for the ``service`` purpose with the ``baat-regions`` recipient;
* both regions are declared storage regions of the policy;
* when the countries differ, the recipient carries a transfer basis under both laws
  (GDPR chapter V, here Art. 49(1)(b); DPDP s. 16).

An undeclared transfer raises ``UndeclaredTransfer`` before any byte leaves. Allowed ones
are counted per day, kind and direction (``region_transfers``) and published in the
transparency report; nothing names an account (GDPR Art. 5(1)(c)).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from baat.privacy.errors import UndeclaredRegion, UndeclaredTransfer
from baat.privacy.policy import Policy
from baat.privacy.purposes import OTHER_REGION
from baat.server.privacy.schema import region_transfers

PURPOSE = "service"
RECIPIENT = "baat-regions"

# What each kind of transfer carries, by inventory id (docs/PRIVACY.md, "Regions").
KINDS: dict[str, tuple[str, ...]] = {
    # A send to an account of another region: the envelope is stored there until delivered.
    "envelope": (
        "envelope.sender",
        "envelope.recipient",
        "envelope.message_id",
        "envelope.content",
    ),
    # Prekeys of an account of this region, handed to a device of another region.
    "bundle": ("account.id", "device.id", "device.identity_key", "device.prekeys"),
    # Public account details of an account of this region, for a lookup from another one.
    "lookup": ("account.id", "account.username", "device.id", "account.device_list"),
    # An attachment uploaded by an account of this region, fetched by a device of another.
    "blob": ("blob.id", "blob.size", "blob.content"),
    # Which device of this region fetched an attachment stored in another (kept there as
    # a keyed hash, to delete the attachment once every recipient has it).
    "blob_fetch": ("blob.id", "blob.fetches"),
}

_DAY_SECONDS = 86_400


class RegionGate:
    """Checks and counts transfers from ``local`` to the other declared regions."""

    def __init__(self, policy: Policy, local: str, clock: Callable[[], float]) -> None:
        if policy.region(local) is None:
            raise UndeclaredRegion(f"storage region {local!r} is not declared in the policy")
        self.policy = policy
        self.local = local
        self.clock = clock
        self._allowed: set[tuple[str, str]] = set()
        self._pending: Counter[tuple[int, str, str, str]] = Counter()

    def check(self, kind: str, to_region: str, count: int = 1) -> None:
        """Allow ``count`` transfers of ``kind`` to ``to_region`` or raise.

        Raises:
            UndeclaredRegion: ``to_region`` is not a storage region of the policy.
            UndeclaredTransfer: the policy does not declare this transfer.
        """
        self.allow(kind, to_region)
        self.count(kind, to_region, count)

    def allow(self, kind: str, to_region: str) -> None:
        """Raise unless the policy declares transfers of ``kind`` to ``to_region``; counts
        nothing (for a transfer that may still fail: ``count`` it once it happened)."""
        if (kind, to_region) not in self._allowed:
            self._verify(kind, to_region)
            self._allowed.add((kind, to_region))

    def count(self, kind: str, to_region: str, count: int = 1) -> None:
        """Count ``count`` transfers already allowed by ``allow``."""
        day = int(self.clock() // _DAY_SECONDS)
        self._pending[(day, kind, self.local, to_region)] += count

    def _verify(self, kind: str, to_region: str) -> None:
        policy = self.policy
        fields = KINDS.get(kind)
        if fields is None:
            raise UndeclaredTransfer(f"unknown kind of transfer {kind!r}")
        here, there = policy.region(self.local), policy.region(to_region)
        if here is None or there is None:
            raise UndeclaredRegion(f"storage region {to_region!r} is not declared in the policy")
        purpose = policy.purpose(PURPOSE)
        recipient = policy.recipient(RECIPIENT)
        if recipient is None or RECIPIENT not in purpose.recipients:
            raise UndeclaredTransfer(f"{RECIPIENT!r} is not a recipient of {PURPOSE!r}")
        if recipient.country != OTHER_REGION:
            raise UndeclaredTransfer(f"{RECIPIENT!r} is not declared as another storage region")
        if here.country != there.country and (
            recipient.transfer_gdpr is None or recipient.transfer_dpdp is None
        ):
            raise UndeclaredTransfer(
                f"no transfer basis declared from {here.country} to {there.country}"
            )
        for field_id in fields:
            entry = policy.entry(field_id)
            if entry is None or PURPOSE not in entry.purposes or RECIPIENT not in entry.recipients:
                raise UndeclaredTransfer(
                    f"{field_id!r} is not declared for {PURPOSE!r} with recipient {RECIPIENT!r}"
                )

    async def flush(self, engine: AsyncEngine) -> int:
        """Add the counts gathered since the last flush to ``region_transfers``.

        Counts are kept in memory between flushes (every few seconds): a crash loses at most
        that many seconds of a statistic, never a message. On a failed write they stay
        pending for the next flush.
        """
        batch, self._pending = self._pending, Counter()
        if not batch:
            return 0
        rows = [
            {"day": d, "kind": k, "from_region": f, "to_region": t, "count": n}
            for (d, k, f, t), n in sorted(batch.items())
        ]
        try:
            async with engine.begin() as conn:
                dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
                stmt = dialect.insert(region_transfers)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["day", "kind", "from_region", "to_region"],
                    set_={"count": region_transfers.c.count + stmt.excluded.count},
                )
                await conn.execute(stmt, rows)
        except BaseException:
            batch.update(self._pending)
            self._pending = batch
            raise
        return len(rows)
