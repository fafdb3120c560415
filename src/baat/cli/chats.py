"""``baat chats``: every conversation (contacts, groups, imported chats) with its last
message and unread count; ``baat chats map`` attaches an imported chat to a contact later.

``baat history`` and ``baat attachments list`` accept any name or id this list shows
(``find_chat``, in client.py beside them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from baat.cli.client import CliError, console, find_chat, opened, profile_option, rows_of
from baat.client.importing import ImportProblem, remap_chat


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


@click.group(invoke_without_command=True)
@profile_option
@click.pass_context
def chats(ctx: click.Context, profile: Path, as_json: bool) -> None:
    """List every conversation: name, kind, last message and unread count."""
    if ctx.invoked_subcommand is not None:
        return
    client = opened(profile)
    try:
        client.features.expire()  # disappearing messages whose timer ran out go first
        rows = rows_of(client)
    finally:
        client.store.close()
    if as_json:
        click.echo(
            json.dumps([{**r.json(), "last": _when(r.last_at)} for r in rows], ensure_ascii=False)
        )
        return
    table = Table(title="Chats")
    for col in ("name", "kind", "last", "message", "unread", "id"):
        table.add_column(col)
    for r in rows:
        kind = r.kind + (" (read-only)" if r.read_only else "")
        if r.imported_names:
            kind += " + imported " + ", ".join(r.imported_names)
        table.add_row(
            escape(r.name),
            escape(kind),
            _when(r.last_at),
            escape(r.preview),
            str(r.unread or ""),
            r.chat,
        )
    console.print(table)


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for value in values:
        author, sep, username = value.rpartition("=")
        if not sep or not author.strip() or not username.strip():
            raise click.BadParameter(f"{value!r}: use AUTHOR=USERNAME", param_hint="--map")
        out[author.strip()] = username.strip()
    return out


@chats.command("map")
@click.argument("chat")
@click.option("--me", help="Your name in the imported chat: your messages become outgoing.")
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="AUTHOR=USERNAME",
    help="An author is this Baat contact (repeatable).",
)
@profile_option
def map_chat(
    chat: str, me: str | None, maps: tuple[str, ...], profile: Path, as_json: bool
) -> None:
    """Attach the imported CHAT (its name or wa: id) to contacts, without its export.

    When every other author is one contact, the chat joins that contact's conversation."""
    mapping = _pairs(maps)
    if me is None and not mapping:
        raise click.UsageError("give --me NAME and/or --map AUTHOR=USERNAME")
    client = opened(profile)
    try:
        row = find_chat(client, chat)
        ids = row.imported
        if len(ids) != 1:
            raise CliError(f"{chat!r} is not an imported chat", "not_imported")
        try:
            target, changed = remap_chat(client.store, ids[0], me=me, mapping=mapping)
        except ImportProblem as exc:
            raise CliError(str(exc), "import_problem") from exc
    finally:
        client.store.close()
    out = {"chat_id": ids[0], "conversation": target, "reattributed": changed}
    if as_json:
        click.echo(json.dumps(out))
    else:
        console.print(f"{changed} messages reattributed; the chat is now in {target}.")
