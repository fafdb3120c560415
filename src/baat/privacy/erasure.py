"""One erasure path that every store of personal data registers with.

Erasing an account (``baat me delete``, GDPR Art. 17, DPDP s. 12(3)) and applying the
inventory's retention periods both run through an ``Erasure``. The SQL tables are erased
from the inventory (``baat.server.privacy.rights.erase``); everything else that can hold an
account's data registers a ``Store`` here:

1. ``BEFORE`` stores run before the rows go, for data that is found through them (the
   attachment files an account uploaded) and to stop new data arriving (closing the
   account's live sessions and writing out what they had in flight).
2. The database step deletes every row that references the account, in one transaction.
3. ``AFTER`` stores forget what is held outside the database: the router's memory of
   recent sends and device lists, rate-limit buckets, Redis presence keys, caches.
4. ``COMPACT`` stores make the deleted bytes unrecoverable from the database files:
   SQLite overwrites freed pages (``secure_delete``) and truncates its WAL; PostgreSQL
   runs ``VACUUM`` on the tables touched (docs/PRIVACY.md, "Erasure").

``expire(now)`` runs the same stores for retention: each deletes what its declared period
says is due, and the compaction step runs afterwards. A store that fails does not stop the
others; its name and error are returned so that the caller can report it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum

log = logging.getLogger("baat.privacy.erasure")


class Phase(IntEnum):
    BEFORE = 1
    AFTER = 3
    COMPACT = 4


async def _nothing(_: float) -> int:
    return 0


@dataclass
class Store:
    """A place that holds personal data outside the SQL rows the inventory erases.

    ``erase`` removes what it holds about one account and returns how many items went;
    ``expire`` removes what is past its retention period at ``now`` (Unix seconds).
    ``compact`` (``COMPACT`` stores only) receives the names of the tables that lost rows.
    """

    name: str
    phase: Phase
    erase: Callable[[str], Awaitable[int]]
    expire: Callable[[float], Awaitable[int]] = _nothing
    # The inventory entries this store holds (checked against the inventory by the tests).
    entries: tuple[str, ...] = ()


Compactor = Callable[[Iterable[str]], Awaitable[None]]


@dataclass
class Erasure:
    stores: list[Store] = field(default_factory=list)
    compactors: list[tuple[str, Compactor]] = field(default_factory=list)

    def register(self, store: Store) -> None:
        if any(s.name == store.name for s in self.stores):
            raise ValueError(f"a store named {store.name!r} is registered already")
        self.stores.append(store)

    def register_compactor(self, name: str, compact: Compactor) -> None:
        self.compactors.append((name, compact))

    def names(self) -> list[str]:
        return [s.name for s in self.stores] + [n for n, _ in self.compactors]

    async def run(self, phase: Phase, account_id: str) -> tuple[dict[str, int], list[str]]:
        """Erase ``account_id`` from every store of ``phase``; returns counts and failures."""
        counts: dict[str, int] = {}
        failed: list[str] = []
        for store in self.stores:
            if store.phase != phase:
                continue
            try:
                counts[store.name] = await store.erase(account_id)
            except Exception as exc:  # one store's failure must not stop the others
                log.warning("erasure in %s failed: %s", store.name, exc)
                failed.append(f"{store.name}: {exc}")
        return counts, failed

    async def expire(self, now: float) -> tuple[dict[str, int], list[str]]:
        """Apply retention in every store; returns counts and failures."""
        counts: dict[str, int] = {}
        failed: list[str] = []
        for store in sorted(self.stores, key=lambda s: s.phase):
            try:
                counts[store.name] = await store.expire(now)
            except Exception as exc:
                log.warning("retention in %s failed: %s", store.name, exc)
                failed.append(f"{store.name}: {exc}")
        return counts, failed

    async def compact(self, tables: Iterable[str]) -> list[str]:
        """Make deleted rows unrecoverable; returns failures."""
        touched = sorted(set(tables))
        failed: list[str] = []
        for name, compact in self.compactors:
            try:
                await compact(touched)
            except Exception as exc:
                log.warning("compaction %s failed: %s", name, exc)
                failed.append(f"{name}: {exc}")
        return failed
