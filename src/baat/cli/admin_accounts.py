"""Abuse handling: ``baat admin accounts suspend|unsuspend|delete USER``, ``baat admin
registration open|invite|closed`` and ``baat admin queue USER``, added to ``baat admin``.

Thin over ``baat.server.operator_admin``, which says how a running server learns of them
(through the database, within a second). Each action is counted, by kind and day, in the
transparency report.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from baat.cli.admin_ops import admin  # with migrate, backup, invite, region-key, ...
from baat.cli.privacy import CliFailure, _emit, _with_service, db_options

__all__ = ["admin"]

T = TypeVar("T")


def _run(db: str, fn: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``fn(engine)`` on the database, refusing one whose schema is not this code's."""
    from baat.server.operator_admin import UnknownAccount
    from baat.server.storage.base import StorageUnavailable
    from baat.server.storage.sql import SqlStore
    from baat.server.upgrade import SchemaError, require_current

    async def go() -> T:
        store = await SqlStore.open(db, migrate=False)
        try:
            await require_current(store)
            return await fn(store.engine)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except SchemaError as exc:
        raise CliFailure(f"{exc.code}: {exc}") from exc
    except (UnknownAccount, StorageUnavailable, ValueError) as exc:
        raise CliFailure(str(exc)) from exc


def wait_option(default: float) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--wait",
        type=click.FloatRange(0.0, 600.0),
        default=default,
        show_default=True,
        help="Seconds to wait for a running server to act on it.",
    )


def _acted(d: dict[str, Any]) -> str:
    if d["applied_by_server"]:
        return "a running server acted on it"
    return "no running server acted on it within the wait; servers apply it when they start"


@admin.group("accounts")
def accounts() -> None:
    """Suspend, unsuspend or delete an account (abuse handling)."""


@accounts.command("suspend")
@click.argument("username")
@wait_option(5.0)
@db_options
def accounts_suspend(username: str, wait: float, db: str, as_json: bool) -> None:
    """Suspend USER: its connected devices are closed at once (account_suspended) and
    cannot connect until 'unsuspend'. Its data and queue are kept."""
    from baat.server import operator_admin as op

    async def go(engine: Any) -> dict[str, Any]:
        _, seq, already = await op.suspend(engine, username, time.time())
        acted = await op.wait_done(engine, seq, wait)
        return {
            "username": username,
            "suspended": True,
            "already": already,
            "applied_by_server": acted,
        }

    _emit(_run(db, go), as_json, lambda d: f"{username} suspended; {_acted(d)}")


@accounts.command("unsuspend")
@click.argument("username")
@wait_option(5.0)
@db_options
def accounts_unsuspend(username: str, wait: float, db: str, as_json: bool) -> None:
    """Lift USER's suspension: its devices may connect again."""
    from baat.server import operator_admin as op

    async def go(engine: Any) -> dict[str, Any]:
        _, seq, was = await op.unsuspend(engine, username, time.time())
        acted = await op.wait_done(engine, seq, wait)
        return {"username": username, "suspended": False, "was": was, "applied_by_server": acted}

    def human(d: dict[str, Any]) -> str:
        if not d["was"]:
            return f"{username} was not suspended"
        return f"{username} may connect again; {_acted(d)}"

    _emit(_run(db, go), as_json, human)


@accounts.command("delete")
@click.argument("username")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@wait_option(30.0)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("./var/server"),
    show_default=True,
    help="The server's --data directory (its ledger key), used only when no server runs.",
)
@db_options
def accounts_delete(
    username: str, yes: bool, wait: float, data_dir: Path, db: str, as_json: bool
) -> None:
    """Erase USER and everything the server holds about it, through the same path as
    'baat me delete': its devices are closed at once on every node."""
    from baat.server import operator_admin as op

    if not yes and not click.confirm(f"Erase the account {username!r} and all its data?"):
        raise CliFailure("nothing deleted")

    async def request(engine: Any) -> tuple[str, int, bool]:
        account_id, seq = await op.request_delete(engine, username, time.time())
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not await op.account_exists(engine, account_id):
                return account_id, seq, True
            await asyncio.sleep(0.1)
        # No server took it on: take it on here (only one of us can win the claim).
        mine = await op.claim(engine, seq, time.time())
        if mine is None:
            # A server won it at the last moment: it erases the account.
            return account_id, seq, True
        return account_id, seq, False

    account_id, _, by_server = _run(db, request)
    result: dict[str, Any] = {"username": username, "deleted": True, "by_server": by_server}
    if not by_server:
        done = _with_service(db, lambda s: s.delete_account(account_id), data_dir=data_dir)
        result["tables"] = done["deleted"]
        result["incomplete"] = done["incomplete"]

    def human(d: dict[str, Any]) -> str:
        where = "by a running server" if d["by_server"] else "here (no server took it on)"
        return f"{username} erased {where}"

    _emit(result, as_json, human)


@admin.command("registration")
@click.argument("mode", type=click.Choice(["open", "invite", "closed"]))
@wait_option(5.0)
@db_options
def admin_registration(mode: str, wait: float, db: str, as_json: bool) -> None:
    """Open registration, require an invite ('baat admin invite'), or close it, on every
    node at once. Overrides 'baat serve --registration' until changed again."""
    from baat.server import operator_admin as op

    async def go(engine: Any) -> dict[str, Any]:
        seq = await op.set_registration(engine, mode, time.time())
        return {"registration": mode, "applied_by_server": await op.wait_done(engine, seq, wait)}

    _emit(_run(db, go), as_json, lambda d: f"registration {mode}; {_acted(d)}")


@admin.command("queue")
@click.argument("username")
@db_options
def admin_queue(username: str, db: str, as_json: bool) -> None:
    """What waits for USER's devices, as counts only: envelopes, bytes and the age of the
    oldest in days, per device. Never content or senders."""
    from baat.server import operator_admin as op

    data = _run(db, lambda engine: op.queue_counts(engine, username, time.time()))

    def human(d: dict[str, Any]) -> str:
        lines = [f"{d['username']}: {d['envelopes']} envelopes, {d['bytes']} bytes queued"]
        lines += [
            f"  device {x['device']}: {x['envelopes']} envelopes, {x['bytes']} bytes, "
            f"oldest {x['oldest_days']} days"
            for x in d["devices"]
        ]
        return "\n".join(lines)

    _emit(data, as_json, human)
