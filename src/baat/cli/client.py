"""Messaging commands: register, send, sync, history, contacts, safety-number, verify."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from baat.client.sdk import Client, ClientError, Incident
from baat.client.store import StoredMessage, StoreError

T = TypeVar("T")
DEFAULT_SERVER = "http://127.0.0.1:8780"
console = Console()
err_console = Console(stderr=True)


class CliError(click.ClickException):
    """A clear message and exit status 1 (2 for usage errors, click's own)."""


def profile_option(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--profile",
        "profile",
        type=click.Path(path_type=Path),
        envvar="BAAT_PROFILE",
        default=Path.home() / ".baat",
        show_default=True,
        help="Profile directory (or BAAT_PROFILE).",
    )(f)
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(f)


def passphrase(confirm: bool = False) -> str:
    value = os.environ.get("BAAT_PASSPHRASE")
    if value is not None:
        return value
    return str(
        click.prompt("Passphrase for the local store", hide_input=True, confirmation_prompt=confirm)
    )


def run(coro: Awaitable[T]) -> T:
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except (ClientError, StoreError, ValueError) as exc:
        raise CliError(str(exc)) from exc


def opened(profile: Path) -> Client:
    try:
        return Client.open(profile, passphrase())
    except StoreError as exc:
        raise CliError(str(exc)) from exc


def report(incidents: list[Incident], as_json: bool) -> None:
    for inc in incidents:
        if as_json:
            click.echo(
                json.dumps({"warning": inc.kind, "account": inc.account_id, "message": inc.detail}),
                err=True,
            )
        else:
            err_console.print(f"[bold yellow]warning:[/] {inc.detail}")


def message_json(m: StoredMessage) -> dict[str, Any]:
    return {
        "id": m.message_id,
        "chat": m.body.get("peer", m.chat),
        "sender": m.body.get("sender"),
        "text": m.body.get("text"),
        "sent_at": _iso(m.sent_at),
        "received_at": _iso(m.received_at),
        "status": m.status,
        "direction": m.direction,
    }


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


@click.command()
@click.argument("name")
@click.option("--server", default=DEFAULT_SERVER, show_default=True, envvar="BAAT_SERVER")
@click.option(
    "--jurisdiction",
    default="ZZ",
    show_default=True,
    help="IN, EU, GB, US or ZZ (elsewhere): the wording of the notice; rights are the same.",
)
@profile_option
def register(name: str, server: str, jurisdiction: str, profile: Path, as_json: bool) -> None:
    """Create an account NAME on SERVER with this device's keys."""
    secret = passphrase(confirm=not os.environ.get("BAAT_PASSPHRASE"))

    async def go() -> dict[str, Any]:
        client = await Client.register(profile, secret, server, name, jurisdiction)
        try:
            await client.connect()
        finally:
            await client.close()
        return {
            "username": client.info.username,
            "account_id": client.info.account_id,
            "device_id": client.info.device_id,
            "server": server,
        }

    out = run(go())
    if as_json:
        click.echo(json.dumps(out))
    else:
        console.print(
            f"Registered [bold]{out['username']}[/] on {server} (device {out['device_id']})."
        )


@click.command()
@click.argument("name")
@click.argument("text")
@profile_option
def send(name: str, text: str, profile: Path, as_json: bool) -> None:
    """Send TEXT to NAME (queued locally; sent now, or on the next sync if offline)."""

    async def go() -> tuple[str, str, list[Incident]]:
        client = opened(profile)
        try:
            with contextlib.suppress(ClientError):  # offline: queued for the next connect
                await client.connect()
            mid = await client.send_text(name, text)
            status = next(
                (m.status for m in client.store.messages(status=None) if m.message_id == mid),
                "sending",
            )
            return mid, status, client.incidents
        finally:
            await client.close()

    mid, status, incidents = run(go())
    report(incidents, as_json)
    if as_json:
        click.echo(json.dumps({"id": mid, "to": name, "status": status}))
    else:
        console.print(f"{status}: {mid}")


@click.command()
@click.option(
    "--wait",
    default=0.0,
    show_default=True,
    type=float,
    help="Keep listening this many seconds after the queue is empty.",
)
@profile_option
def sync(wait: float, profile: Path, as_json: bool) -> None:
    """Fetch new messages, send queued ones, print what arrived."""

    def show(m: StoredMessage) -> None:
        if as_json:
            click.echo(json.dumps(message_json(m)), nl=True)
        else:
            held = " [yellow](held: identity changed)[/]" if m.status == "held" else ""
            console.print(
                f"[dim]{_iso(m.sent_at)}[/] [bold]{m.body.get('sender')}[/]: "
                f"{m.body.get('text')}{held}"
            )

    async def go() -> list[Incident]:
        client = opened(profile)
        try:
            shown: set[str] = set()

            def show_new() -> None:
                fresh = [
                    m for m in client.store.messages(status="new") if m.message_id not in shown
                ]
                for m in fresh:
                    shown.add(m.message_id)
                    show(m)
                client.store.mark_seen([m.row_id for m in fresh])

            def arrived(m: StoredMessage) -> None:
                if m.status == "held" and m.message_id not in shown:
                    shown.add(m.message_id)
                    show(m)  # shown with its warning; history lists it once verified
                show_new()

            show_new()  # stored earlier (e.g. while 'baat send' was connected)
            # Listen before connecting: queued envelopes arrive right after authentication.
            client.message_listeners.append(arrived)
            await client.connect()
            await client.receive(wait)
            show_new()
            return client.incidents
        finally:
            await client.close()

    report(run(go()), as_json)


@click.command()
@click.argument("name")
@profile_option
def history(name: str, profile: Path, as_json: bool) -> None:
    """Print the conversation with NAME from the local store."""
    client = opened(profile)
    try:
        contact = client.store.contact_by_name(name.casefold())
        if contact is None:
            raise CliError(f"no conversation with {name!r}")
        msgs = client.store.messages(chat=contact.account_id)
    finally:
        client.store.close()
    if as_json:
        for m in msgs:
            click.echo(json.dumps(message_json(m)))
        return
    table = Table(title=f"Conversation with {contact.username}")
    for col in ("sent", "from", "text", "status"):
        table.add_column(col)
    for m in msgs:
        table.add_row(_iso(m.sent_at), str(m.body.get("sender")), str(m.body.get("text")), m.status)
    console.print(table)


@click.command()
@profile_option
def contacts(profile: Path, as_json: bool) -> None:
    """List contacts with their verification state."""
    client = opened(profile)
    try:
        people = client.store.contacts()
    finally:
        client.store.close()
    rows = [
        {
            "username": c.username,
            "account_id": c.account_id,
            "verified": c.verified,
            "identity_changed": c.identity_changed,
        }
        for c in people
    ]
    if as_json:
        click.echo(json.dumps(rows))
        return
    table = Table(title="Contacts")
    for col in ("username", "verified", "identity"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["username"]),
            "yes" if r["verified"] else "no",
            "[red]changed[/]" if r["identity_changed"] else "ok",
        )
    console.print(table)


@click.command("safety-number")
@click.argument("name")
@profile_option
def safety_number(name: str, profile: Path, as_json: bool) -> None:
    """Show the safety number to compare with NAME (in person or by a trusted channel)."""
    client = opened(profile)
    try:
        contact = client.store.contact_by_name(name.casefold())
        if contact is None:
            raise CliError(f"{name!r} is not a contact yet; exchange a message first")
        number = client.safety_number(contact)
    finally:
        client.store.close()
    if as_json:
        click.echo(
            json.dumps(
                {"contact": contact.username, "safety_number": number, "verified": contact.verified}
            )
        )
    else:
        console.print(f"Safety number with [bold]{contact.username}[/]:\n{number}")


@click.command()
@click.argument("name")
@click.argument("number", nargs=-1, required=True)
@profile_option
def verify(name: str, number: tuple[str, ...], profile: Path, as_json: bool) -> None:
    """Mark NAME verified if NUMBER matches the safety number (also accepts a changed key)."""
    client = opened(profile)
    try:
        ok = client.verify(name.casefold(), " ".join(number))
    except ClientError as exc:
        raise CliError(str(exc)) from exc
    finally:
        client.store.close()
    if as_json:
        click.echo(json.dumps({"contact": name, "verified": ok}))
    elif ok:
        console.print(f"{name} is verified.")
    if not ok:
        raise CliError("the safety number does not match: do not trust this contact yet")
