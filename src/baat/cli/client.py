"""Messaging commands: register, send, sync, history, contacts, safety-number, verify,
and the ``attachments`` group (list, get)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from baat.cli._disclosure import card_text
from baat.client.attachments import AttachmentError
from baat.client.chats import AmbiguousChat, ChatNotFound, ChatRow, find, list_chats
from baat.client.core import ClientError, Incident
from baat.client.group_messaging import is_group_chat
from baat.client.media_files import human_size
from baat.client.sdk import Client
from baat.client.store import StoredMessage, StoreError

T = TypeVar("T")
DEFAULT_SERVER = "http://127.0.0.1:8780"
console = Console()
err_console = Console(stderr=True)
# Smaller transfers are over before a progress bar would be worth drawing.
BAR_BYTES = 4 << 20
FILES_DIR = "files"


class CliError(click.ClickException):
    """A clear message and exit status 1 (2 for usage errors, click's own).

    Under ``--json`` it is printed on stdout as ``{"error": {"code", "message", ...}}``:
    ``code`` is stable for scripts, ``details`` adds what a script needs to recover.
    """

    def __init__(self, message: str, code: str = "error", details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.details = details or {}
        self.as_json = False

    def show(self, file: Any = None) -> None:
        if self.as_json:
            error = {"code": self.code, "message": self.format_message(), **self.details}
            click.echo(json.dumps({"error": error}, ensure_ascii=False, default=str))
        # On stderr as well, for a person watching a script run.
        super().show(file)


def _json_errors(f: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except CliError as exc:
            exc.as_json = bool(kwargs.get("as_json"))
            raise

    return wrapper


def profile_option(f: Callable[..., Any]) -> Callable[..., Any]:
    f = _json_errors(f)
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
    from baat.client.business import BUSINESS_REFUSALS

    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except ClientError as exc:
        # A business chat's refusals carry their stable code (docs/BUSINESS.md §3).
        code = exc.code if getattr(exc, "code", "") in BUSINESS_REFUSALS else "error"
        raise CliError(str(exc), code) from exc
    except (StoreError, AttachmentError, ValueError) as exc:
        raise CliError(str(exc)) from exc


def opened(profile: Path) -> Client:
    try:
        return Client.open(profile, passphrase())
    except StoreError as exc:
        raise CliError(str(exc)) from exc


def rows_of(client: Client) -> list[ChatRow]:
    groups = [(chat, state.name) for chat, state, _ in client.groups.all()]
    return list_chats(client.store, groups)


def find_chat(client: Client, ref: str) -> ChatRow:
    """The conversation ``ref`` names, as ``baat chats`` shows it.

    Raises:
        CliError: ``unknown_chat`` or ``ambiguous_chat``.
    """
    try:
        return find(rows_of(client), ref)
    except (ChatNotFound, AmbiguousChat) as exc:
        raise CliError(str(exc), exc.code) from exc


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
        **({"group": m.body["group"]} if "group" in m.body else {}),
        **{k: m.body[k] for k in _EXTRAS if m.body.get(k)},
        **({"attachment": summary} if (summary := attachment_summary(m)) else {}),
    }


_EXTRAS = ("reply_to", "reactions", "edited", "deleted", "receipts", "notice", "unsupported")


def attachment_summary(m: StoredMessage) -> dict[str, Any] | None:
    """What a sent, received or imported file is, without its sealed keys; None without."""
    att = m.body.get("attachment")
    if isinstance(att, dict) and "state" not in att:
        from baat.client.imported_files import summary

        return summary(m)  # an imported chat's file (another shape, kept elsewhere)
    if not isinstance(att, dict):
        return None
    keys = ("file_name", "content_type", "size", "width", "height", "state", "error")
    return {k: att[k] for k in keys if k in att}


def describe_file(m: StoredMessage) -> str:
    att = attachment_summary(m)
    if att is None:
        return ""
    text = f"{att['file_name']} ({human_size(att['size'])})"
    if att["state"] == "failed":
        return f"{text}, not received: {att.get('error')}"
    if att.get("imported") and att["state"] != "ready":
        return f"{text}, {att['state']}"  # exported without media, or absent from the zip
    return text if att["state"] == "ready" else f"{text}, not fetched yet"


class TransferBars:
    """Progress bars on stderr for large transfers, drawn only on a terminal."""

    def __init__(self) -> None:
        self.bars: Progress | None = None
        self.tasks: dict[str, Any] = {}
        if err_console.is_terminal:
            columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn())
            self.bars = Progress(
                "{task.description}", *columns, console=err_console, transient=True
            )

    def __enter__(self) -> TransferBars:
        if self.bars is not None:
            self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bars is not None:
            self.bars.stop()

    def update(self, key: str, label: str, done: int, total: int) -> None:
        if self.bars is None or total < BAR_BYTES:
            return
        if key not in self.tasks:
            self.tasks[key] = self.bars.add_task(label, total=total)
        self.bars.update(self.tasks[key], completed=done)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


@click.command()
@click.argument("name", required=False)
@click.option("--server", default=DEFAULT_SERVER, show_default=True, envvar="BAAT_SERVER")
@click.option(
    "--link",
    "link_code",
    default=None,
    help="Join an existing account as a new device with the code 'baat device link' shows.",
)
@click.option(
    "--jurisdiction",
    default="ZZ",
    show_default=True,
    help="IN, EU, GB, US or ZZ (elsewhere): the wording of the notice; rights are the same.",
)
@click.option(
    "--invite",
    default=None,
    help="The one-time invite code a server that registers by invitation asks for.",
)
@click.option(
    "--business",
    "business_name",
    default=None,
    metavar="DISPLAY_NAME",
    help="A business account: publishes a signed business profile (see 'baat business').",
)
@profile_option
def register(
    name: str | None,
    server: str,
    link_code: str | None,
    jurisdiction: str,
    invite: str | None,
    business_name: str | None,
    profile: Path,
    as_json: bool,
) -> None:
    """Create an account NAME on SERVER with this device's keys, or join an account as a
    new device with --link CODE (the server is the one the code names). With --business
    "Display name" the account is a business account (docs/BUSINESS.md)."""
    if (name is None) == (link_code is None):
        raise click.UsageError("give a NAME for a new account, or --link CODE, not both")
    if business_name is not None and link_code is not None:
        raise click.UsageError("--business goes with a new account, not with --link")
    secret = passphrase(confirm=not os.environ.get("BAAT_PASSPHRASE"))

    async def go() -> dict[str, Any]:
        sas = None
        if link_code is not None:
            from baat.client.linked import register_linked

            client, sas = await register_linked(profile, secret, link_code)
        else:
            assert name is not None
            client = await Client.register(profile, secret, server, name, jurisdiction, invite)
        version = None
        try:
            await client.connect()
            if business_name is not None:
                country = jurisdiction.upper() if jurisdiction.upper() != "ZZ" else "IN"
                published = await client.business.publish(
                    display_name=business_name, entity=business_name, country=country
                )
                version = published.version
        finally:
            await client.close()
        return {
            **({"business_profile_version": version} if version is not None else {}),
            "username": client.info.username,
            "account_id": client.info.account_id,
            "device_id": client.info.device_id,
            "server": client.info.server_url,
            **({"sas": sas} if sas else {}),
        }

    out = run(go())
    if as_json:
        click.echo(json.dumps(out))
        return
    console.print(
        f"Registered [bold]{out['username']}[/] on {out['server']} (device {out['device_id']})."
    )
    if "sas" in out:
        console.print(f"Check that the first device shows the same code: [bold]{out['sas']}[/]")


@click.command()
@click.argument("name", required=False)
@click.argument("text", required=False)
@click.option("--group", "group_ref", default=None, help="Send TEXT to this group instead.")
@click.option(
    "--file",
    "file",
    type=click.Path(path_type=Path),
    help="Send this file, encrypted (photos without their location). Needs the server.",
)
@click.option("--caption", default=None, help="Text to go with --file (or give it as TEXT).")
@click.option(
    "--accept-disclosure",
    is_flag=True,
    help="NAME is a business: accept its disclosure without asking (see 'baat business info').",
)
@profile_option
def send(
    name: str | None,
    text: str | None,
    group_ref: str | None,
    file: Path | None,
    caption: str | None,
    accept_disclosure: bool,
    profile: Path,
    as_json: bool,
) -> None:
    """Send TEXT to NAME (queued locally; sent now, or on the next sync if offline), or a
    file with --file; or TEXT to a group with --group GROUP TEXT."""
    if group_ref is not None:
        # 'baat send --group GROUP TEXT': the one argument given is the text.
        if file is not None or (name is None) == (text is None):
            raise click.UsageError("give the TEXT for the group (files go to people only)")
        text, name = name, group_ref
    if name is None:
        raise click.UsageError("give the NAME to send to")
    if file is None and text is None:
        raise click.UsageError("give the TEXT to send, or a file with --file")
    if file is None and caption is not None:
        raise click.UsageError("--caption goes with --file")
    if text is not None and caption is not None:
        raise click.UsageError("give the caption as TEXT or as --caption, not both")

    async def go() -> tuple[str, str, list[Incident]]:
        client = opened(profile)
        try:
            with contextlib.suppress(ClientError):  # offline: queued for the next connect
                await client.connect()
            if group_ref is None:
                # A business's disclosure is shown and accepted before the first message.
                from baat.client.business import DisclosureRequired

                account_id, _ = await client.resolve(name)
                try:
                    await client.business.before_send(account_id)
                except DisclosureRequired:
                    await consent_to(client, name, as_json, accept_disclosure)
            if group_ref is not None:
                assert text is not None
                mid = await client.groups.send_text(group_ref, text)
            elif file is None:
                assert text is not None
                mid = await client.send_text(name, text)
            else:
                with TransferBars() as bars:

                    def progress(done: int, total: int) -> None:
                        bars.update("upload", f"sending {file.name}", done, total)

                    mid = await client.send_file(name, file, caption or text, progress)
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
        sent = {"id": mid, "to": name, "status": status}
        click.echo(json.dumps(sent if file is None else {**sent, "file": str(file)}))
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
    """Fetch new messages, send queued ones, print what arrived. Files that arrived are
    saved into PROFILE/files/ (never over an existing file) and their paths printed. While
    waiting, people typing are shown too (unless 'baat settings typing off')."""

    opened_client: list[Client] = []  # set by go(), for the reason a message is held

    def show(m: StoredMessage, file: Path | None = None) -> None:
        if as_json:
            out = message_json(m)
            click.echo(json.dumps(out if file is None else {**out, "file": str(file)}))
            return
        held = ""
        if m.status == "held":
            # An identity change, or a business whose disclosure waits for acceptance.
            business = opened_client[0].business.state(m.chat) or {} if opened_client else {}
            why = "accept its disclosure" if business.get("business") else "identity changed"
            held = f" [yellow](held: {why})[/]"
        # The sender chose the file's name: escaped, so that it cannot restyle the line.
        what = f" [cyan]{escape(f'[file: {file}]')}[/]" if file else ""
        if file is None and (desc := describe_file(m)):
            what = f" [yellow]{escape(f'[file {desc}]')}[/]"
        where = (
            f"[magenta]{escape('[' + str(m.body['group']) + ']')}[/] " if "group" in m.body else ""
        )
        console.print(
            f"[dim]{_iso(m.sent_at)}[/] {where}[bold]{m.body.get('sender')}[/]: "
            f"{m.body.get('text')}{what}{held}"
        )

    async def go() -> list[Incident]:
        client = opened(profile)
        opened_client.append(client)
        try:
            shown: set[str] = set()

            def save(m: StoredMessage) -> Path | None:
                try:
                    return client.attachments.save_new(m, profile / FILES_DIR)
                except (AttachmentError, StoreError, OSError) as exc:
                    report([Incident("attachment_failed", m.chat, str(exc))], as_json)
                    return None

            def show_new(last: bool = False) -> None:
                fresh = []
                for m in client.store.messages(status="new"):
                    # Shown once its file is here (or failed for good), with the file's
                    # path, and in order: later messages wait for it until the end, when
                    # one still pending (server unreachable) is left for the next sync.
                    if (attachment_summary(m) or {}).get("state") == "pending":
                        if last:
                            continue
                        break
                    if m.message_id not in shown:
                        fresh.append(m)
                for m in fresh:
                    shown.add(m.message_id)
                    ready = (attachment_summary(m) or {}).get("state") == "ready"
                    show(m, save(m) if ready and m.direction == "in" else None)
                client.features.mark_read(fresh)

            def arrived(m: StoredMessage) -> None:
                if m.status == "held" and m.message_id not in shown:
                    shown.add(m.message_id)
                    show(m)  # shown with its warning; history lists it once verified
                show_new()

            def downloading(m: StoredMessage, done: int, total: int) -> None:
                name = (attachment_summary(m) or {}).get("file_name", "a file")
                bars.update(m.message_id, f"receiving {name}", done, total)

            def show_typing(chat: str, sender: str, kind: str) -> None:
                group = None
                if is_group_chat(chat):
                    group = next((g.name for c, g, _ in client.groups.all() if c == chat), chat)
                if as_json:
                    at = {"chat": group, "group": group} if group else {"chat": sender}
                    event = {"event": "typing", **at, "sender": sender, "kind": kind}
                    click.echo(json.dumps(event))
                    return
                where = f"[magenta]{escape('[' + group + ']')}[/] " if group else ""
                doing = "is typing…" if kind == "started" else "stopped typing"
                console.print(f"{where}[bold]{escape(sender)}[/] [italic]{doing}[/]")

            def typing(chat: str, sender: str, kind: str) -> None:
                # Called while the delivery's transaction is open: shown right after it.
                asyncio.get_running_loop().call_soon(show_typing, chat, sender, kind)

            show_new()  # stored earlier (e.g. while 'baat send' was connected)
            # Listen before connecting: queued envelopes arrive right after authentication.
            client.message_listeners.append(arrived)
            client.features.typing_listeners.append(typing)
            client.attachment_listeners.append(lambda m: show_new())
            client.attachments.progress_listeners.append(downloading)
            with TransferBars() as bars:
                await client.connect()
                await client.receive(wait)
            show_new(last=True)
            client.features.queue_receipts()  # read receipts for what was just shown
            with contextlib.suppress(ClientError):
                await client.flush_outbox()
            return client.incidents
        finally:
            await client.close()

    report(run(go()), as_json)


@click.command()
@click.argument("name", required=False)
@click.option("--group", "group_ref", default=None, help="The history of this group.")
@profile_option
def history(name: str | None, group_ref: str | None, profile: Path, as_json: bool) -> None:
    """Print the conversation with NAME (or of --group GROUP) from the local store."""
    if (name is None) == (group_ref is None):
        raise click.UsageError("give a NAME or --group GROUP")
    client = opened(profile)
    try:
        client.features.expire()  # disappearing messages whose timer ran out go first
        if group_ref is not None:
            try:
                chat, state, _ = client.groups.find(group_ref)
            except ValueError as exc:
                raise CliError(str(exc)) from exc
            title = state.name
        else:
            assert name is not None
            # any name or id 'baat chats' shows
            found = find_chat(client, name)
            chat, title = found.chat, found.name
        msgs = client.store.messages(chat=chat)
    finally:
        client.store.close()
    if as_json:
        for m in msgs:
            click.echo(json.dumps(message_json(m)))
        return
    table = Table(title=f"Conversation with {title}")
    for col in ("sent", "from", "text", "status"):
        table.add_column(col)
    for m in msgs:
        text = str(m.body.get("text"))
        if desc := describe_file(m):
            text = f"{text}\n{escape(f'[file {desc}]')}" if text else escape(f"[file {desc}]")
        table.add_row(_iso(m.sent_at), str(m.body.get("sender")), text, m.status)
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


@click.group()
def attachments() -> None:
    """Files sent and received: list them, write one out of the local store."""


@attachments.command("list")
@click.argument("name", required=False)
@profile_option
def list_attachments(name: str | None, profile: Path, as_json: bool) -> None:
    """List the files in every conversation, or in the one with NAME."""
    client = opened(profile)
    try:
        chat = None
        if name is not None:
            chat = find_chat(client, name).chat
        rows = [
            {**message_json(m), "attachment": summary}
            for m in client.store.messages(chat=chat)
            if (summary := attachment_summary(m)) is not None
        ]
    finally:
        client.store.close()
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    table = Table(title="Files")
    for col in ("id", "chat", "sent", "file", "size", "state"):
        table.add_column(col)
    for r in rows:
        att = r["attachment"]
        state = att["state"] if att["state"] != "failed" else f"failed: {att.get('error')}"
        table.add_row(
            r["id"],
            str(r["chat"]),
            r["sent_at"],
            escape(att["file_name"]),
            human_size(att["size"]),
            escape(state),
        )
    console.print(table)


@attachments.command("get")
@click.argument("message_id")
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="File to write, or a directory to write into under the file's own name.",
)
@click.option("--force", is_flag=True, help="Replace OUT if it is an existing file.")
@profile_option
def get_attachment(message_id: str, out: Path, force: bool, profile: Path, as_json: bool) -> None:
    """Write the file of message MESSAGE_ID (sent or received), decrypted, to OUT."""
    client = opened(profile)
    try:
        imported = _imported_file(client, message_id, out, force)
        if imported is not None:
            m, path = imported
            return _wrote(m, message_id, path, as_json)
        m = client.attachments.find(message_id)
        if m.status == "held":
            raise CliError(
                "this file came with a changed safety number: compare it and run "
                "'baat verify' first"
            )
        if out.is_dir():
            path = client.attachments.save_new(m, out)
        elif out.exists() and not force:
            raise CliError(f"{out} exists; pass --force to replace it")
        else:
            path = client.attachments.save(m, out)
    except (AttachmentError, StoreError, OSError, LookupError) as exc:
        raise CliError(str(exc)) from exc
    finally:
        client.store.close()
    _wrote(m, message_id, path, as_json)


def _imported_file(
    client: Client, message_id: str, out: Path, force: bool
) -> tuple[StoredMessage, Path] | None:
    """Write an imported chat's file (``client.imported_files``); None if not one."""
    from baat.client import imported_files

    for m in client.store.messages():
        if m.message_id == message_id and imported_files.is_imported_file(m):
            if out.exists() and not out.is_dir() and not force:
                raise CliError(f"{out} exists; pass --force to replace it")
            return m, imported_files.save(client.store, m, out)
    return None


def _wrote(m: StoredMessage, message_id: str, path: Path, as_json: bool) -> None:
    summary = attachment_summary(m) or {}
    if as_json:
        click.echo(json.dumps({"id": message_id, "file": str(path), **summary}))
    else:
        console.print(f"Wrote {escape(str(path))} ({human_size(summary.get('size', 0))}).")


async def consent_to(client: Client, name: str, as_json: bool, yes: bool) -> None:
    """Show the disclosure of the business ``name`` and accept it if the user says so
    (``yes``: already said, e.g. ``--accept-disclosure``).

    Raises:
        CliError: code ``disclosure_required`` when it is not accepted.
    """
    shown = await client.business.disclosure(name)
    if not yes:
        if as_json:
            raise CliError(
                f"{name} is a business: accept its disclosure first",
                "disclosure_required",
                {"disclosure": shown.to_json()},
            )
        err_console.print(card_text(shown.to_json()))
        if not click.confirm("Accept and send?", default=False, err=True):
            raise CliError(f"not sent: {name}'s disclosure was not accepted", "disclosure_required")
    await client.business.accept(name)
