"""The operator's actions on a running deployment: suspend, unsuspend or delete an account,
open, close or restrict registration, count a queue (``baat admin accounts|registration|
queue``; docs/DEPLOY.md, "Abuse handling").

The commands run beside the servers, not inside them, and reach them through the database,
the one thing every node and the command share (SQLite or PostgreSQL, one node or many):

1. The command writes the state (``account_suspensions``, ``server_settings``) and one row
   of ``operator_actions`` (kind and day; a deletion also names its account).
2. Every node's ``OperatorWatch`` reads the state once a second: a newly suspended account
   has its sessions on that node closed with a fatal ``account_suspended`` error, and it
   cannot authenticate again while suspended (checked in memory, no query per
   connection); a registration change applies to the next request.
3. A node marks the pending actions done once it has applied them; the command waits for
   that (``--wait``) and says whether a running server acted. A deletion is taken on by one
   node (an ``UPDATE ... WHERE done_at IS NULL`` that only one wins), which clears the
   account id from the row and runs the erasure path (closing the account's sessions on
   every node over the bus). If no node takes it within the wait, the command takes it on
   itself and erases the account directly.

The transparency report counts the actions by kind over the last year; no row keeps an
account id once its action is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from baat.server.storage.schema import (
    account_suspensions,
    accounts,
    envelopes,
    operator_actions,
    server_settings,
)

if TYPE_CHECKING:
    from baat.server.state import ServerState

log = logging.getLogger("baat.operator")

POLL_S = 1.0
YEAR_DAYS = 365
REGISTRATION_MODES = ("open", "invite", "closed")
SUSPEND, UNSUSPEND, DELETE, REGISTRATION, QUEUE = (
    "suspend",
    "unsuspend",
    "delete",
    "registration",
    "queue",
)
KINDS = (SUSPEND, UNSUSPEND, DELETE, REGISTRATION, QUEUE)


class UnknownAccount(LookupError):
    """No account of that username on this deployment's database."""


def _day(now: float) -> int:
    return int(now // 86_400)


# -- the commands' side ------------------------------------------------------------------


async def account_id_of(conn: AsyncConnection, username: str) -> str:
    """Raises:
    UnknownAccount: no such username."""
    from baat.server.accounts import RegistrationError, normalize_username

    try:
        name = normalize_username(username)
    except RegistrationError as exc:
        raise UnknownAccount(f"no account named {username!r}") from exc
    found = await conn.scalar(select(accounts.c.account_id).where(accounts.c.username == name))
    if found is None:
        raise UnknownAccount(f"no account named {name!r}")
    return str(found)


async def _record(
    conn: AsyncConnection, kind: str, now: float, account_id: str | None = None, done: bool = False
) -> int:
    result = await conn.execute(
        insert(operator_actions)
        .values(
            day=_day(now),
            kind=kind,
            account_id=account_id,
            done_at=int(now * 1000) if done else None,
        )
        .returning(operator_actions.c.seq)
    )
    return int(result.scalar_one())


async def suspend(engine: AsyncEngine, username: str, now: float) -> tuple[str, int, bool]:
    """Suspend the account; returns (account id, action seq, whether it already was).

    Raises:
        UnknownAccount.
    """
    async with engine.begin() as conn:
        account_id = await account_id_of(conn, username)
        already = await conn.scalar(
            select(account_suspensions.c.since_day).where(
                account_suspensions.c.account_id == account_id
            )
        )
        if already is None:
            await conn.execute(
                insert(account_suspensions).values(account_id=account_id, since_day=_day(now))
            )
        seq = await _record(conn, SUSPEND, now)
    return account_id, seq, already is not None


async def unsuspend(engine: AsyncEngine, username: str, now: float) -> tuple[str, int, bool]:
    """Lift a suspension; returns (account id, action seq, whether it was suspended).

    Raises:
        UnknownAccount.
    """
    async with engine.begin() as conn:
        account_id = await account_id_of(conn, username)
        gone = await conn.execute(
            delete(account_suspensions).where(account_suspensions.c.account_id == account_id)
        )
        seq = await _record(conn, UNSUSPEND, now)
    return account_id, seq, bool(gone.rowcount)


async def request_delete(engine: AsyncEngine, username: str, now: float) -> tuple[str, int]:
    """Ask the servers to erase the account; returns (account id, action seq).

    Raises:
        UnknownAccount.
    """
    async with engine.begin() as conn:
        account_id = await account_id_of(conn, username)
        seq = await _record(conn, DELETE, now, account_id)
    return account_id, seq


async def claim(engine: AsyncEngine, seq: int, now: float) -> str | None:
    """Take on a pending deletion: the account id if this caller won it, else ``None``."""
    async with engine.begin() as conn:
        account_id = await conn.scalar(
            select(operator_actions.c.account_id).where(
                operator_actions.c.seq == seq, operator_actions.c.done_at.is_(None)
            )
        )
        if account_id is None:
            return None
        won = await conn.execute(
            update(operator_actions)
            .where(operator_actions.c.seq == seq, operator_actions.c.done_at.is_(None))
            .values(done_at=int(now * 1000), account_id=None)
        )
    return str(account_id) if won.rowcount == 1 else None


async def set_registration(engine: AsyncEngine, mode: str, now: float) -> int:
    """Open, restrict or close registration on every node; returns the action's seq.

    Raises:
        ValueError: an unknown mode.
    """
    if mode not in REGISTRATION_MODES:
        raise ValueError(f"registration is one of {', '.join(REGISTRATION_MODES)}")
    async with engine.begin() as conn:
        changed = await conn.execute(
            update(server_settings)
            .where(server_settings.c.key == REGISTRATION)
            .values(value=mode, changed_day=_day(now))
        )
        if not changed.rowcount:
            with contextlib.suppress(IntegrityError):
                await conn.execute(
                    insert(server_settings).values(
                        key=REGISTRATION, value=mode, changed_day=_day(now)
                    )
                )
        return await _record(conn, REGISTRATION, now)


async def queue_counts(engine: AsyncEngine, username: str, now: float) -> dict[str, Any]:
    """What waits for the account's devices, as counts: never content, senders or times
    finer than a day.

    Raises:
        UnknownAccount.
    """
    e = envelopes.c
    async with engine.begin() as conn:
        account_id = await account_id_of(conn, username)
        rows = (
            await conn.execute(
                select(
                    e.recipient_device,
                    func.count(),
                    func.coalesce(func.sum(func.length(e.content)), 0),
                    func.min(e.stored_at),
                )
                .where(e.recipient_account == account_id)
                .group_by(e.recipient_device)
                .order_by(e.recipient_device)
            )
        ).all()
        await _record(conn, QUEUE, now, done=True)
    devices = [
        {
            "device": int(device),
            "envelopes": int(n),
            "bytes": int(size),
            "oldest_days": max(0, _day(now) - int(oldest) // 86_400_000),
        }
        for device, n, size, oldest in rows
    ]
    return {
        "username": username,
        "envelopes": sum(d["envelopes"] for d in devices),
        "bytes": sum(d["bytes"] for d in devices),
        "devices": devices,
    }


async def wait_done(engine: AsyncEngine, seq: int, timeout: float) -> bool:
    """Whether a node marked the action done within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        async with engine.connect() as conn:
            done = await conn.scalar(
                select(operator_actions.c.done_at).where(operator_actions.c.seq == seq)
            )
        if done is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.1)


async def account_exists(engine: AsyncEngine, account_id: str) -> bool:
    async with engine.connect() as conn:
        found = await conn.scalar(
            select(accounts.c.account_id).where(accounts.c.account_id == account_id)
        )
    return found is not None


async def counts_since(conn: AsyncConnection, since_day: int) -> dict[str, int]:
    """Operator actions by kind since ``since_day`` (the transparency report)."""
    rows = (
        await conn.execute(
            select(operator_actions.c.kind, func.count())
            .where(operator_actions.c.day >= since_day)
            .group_by(operator_actions.c.kind)
        )
    ).all()
    found = {str(k): int(n) for k, n in rows}
    return {kind: found.get(kind, 0) for kind in KINDS}


# -- the servers' side -------------------------------------------------------------------


@dataclass
class OperatorWatch:
    """One node's reader of the operator's actions (step 2 and 3 of the module docstring)."""

    state: ServerState
    clock: Callable[[], float] = time.time
    suspended: frozenset[str] = frozenset()
    registration: str | None = None
    expired_at: float = float("-inf")

    async def run(self) -> None:
        while True:
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except (SQLAlchemyError, OSError) as exc:
                # The database is down: the writer says so too; try again next second.
                log.warning("operator actions not read: %s", str(exc).splitlines()[0])
            await asyncio.sleep(POLL_S)

    async def poll(self) -> None:
        """Apply the current suspensions and settings, then mark pending actions done."""
        engine = self.state.store.engine
        async with engine.connect() as conn:
            now_suspended = frozenset(
                str(a) for a in await conn.scalars(select(account_suspensions.c.account_id))
            )
            mode = await conn.scalar(
                select(server_settings.c.value).where(server_settings.c.key == REGISTRATION)
            )
            pending = (
                await conn.execute(
                    select(operator_actions.c.seq, operator_actions.c.kind).where(
                        operator_actions.c.done_at.is_(None)
                    )
                )
            ).all()
        router = self.state.router
        router.suspended = now_suspended
        for account_id in sorted(now_suspended - self.suspended):
            closed = await router.close_suspended(account_id)
            log.info("account suspended by the operator: %d sessions closed here", closed)
        self.suspended = now_suspended
        if mode is not None and mode != self.registration:
            self.state.admission.mode = str(mode)
            log.info("registration is now %s (set by the operator)", mode)
            self.registration = str(mode)
        now = self.clock()
        if now - self.expired_at >= 3600:
            # Hourly, as the retention of the log says (inventory "operator.action").
            async with engine.begin() as conn:
                await expire(conn, now)
            self.expired_at = now
        for seq, kind in pending:
            if kind == DELETE:
                await self._delete(int(seq), now)
            else:
                await _mark_done(engine, int(seq), now)

    async def _delete(self, seq: int, now: float) -> None:
        account_id = await claim(self.state.store.engine, seq, now)
        if account_id is None:
            return  # another node (or the command) took it on
        privacy = self.state.privacy
        if privacy is None:  # pragma: no cover - every server has its privacy service
            return
        done = await privacy.delete_account(account_id)
        log.info(
            "account deleted by the operator: %d tables, incomplete: %s",
            len(done["deleted"]),
            done["incomplete"] or "none",
        )


async def _mark_done(engine: AsyncEngine, seq: int, now: float) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(operator_actions)
            .where(operator_actions.c.seq == seq, operator_actions.c.done_at.is_(None))
            .values(done_at=int(now * 1000))
        )


async def expire(conn: AsyncConnection, now: float) -> int:
    """Forget actions older than a year (their counts have left the report)."""
    result = await conn.execute(
        delete(operator_actions).where(operator_actions.c.day < _day(now) - YEAR_DAYS)
    )
    return int(result.rowcount or 0)


def start(state: ServerState) -> asyncio.Task[None]:
    """The node's watch as a task (cancelled at shutdown)."""
    return asyncio.create_task(OperatorWatch(state).run(), name="baat-operator")
