"""Leaving is easy: import chats from WhatsApp, export everything, back up and restore.

Commands: ``import whatsapp``, ``export``, ``backup create``, ``backup restore``. Nothing
here talks to a server: imports and exports stay on this device.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import click
import msgspec
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn
from rich.table import Table

from baat.cli.client import CliError, passphrase, profile_option
from baat.client.backup import BackupError, check_backup, create_backup, restore_backup
from baat.client.export import ExportError, write_export
from baat.client.importing import (
    ImportProblem,
    check_authors,
    import_chat,
    import_report,
)
from baat.client.store import PROFILE_FILE, Store, StoreError
from baat.importers.whatsapp import (
    AmbiguousDateOrder,
    Calendar,
    ChatImport,
    DateOrder,
    ImplausibleYear,
    WhatsAppExport,
    WhatsAppImportError,
    open_export,
)

console = Console()
err_console = Console(stderr=True)
# Below this (about 20 000 messages zipped, 8 000 as text) an import takes under a second:
# a bar would only flicker.
PROGRESS_BYTES = 512 << 10


# -- progress --------------------------------------------------------------------------


class Bars:
    """One rich progress bar per phase, on stderr so that ``--json`` output stays clean."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self._progress is None:
            return
        if phase not in self._tasks:
            self._tasks[phase] = self._progress.add_task(phase, total=total)
        self._progress.update(self._tasks[phase], completed=done, total=total)

    def finish(self) -> None:
        if self._progress is not None:
            for task in self._tasks.values():
                total = self._progress.tasks[task].total
                self._progress.update(task, completed=total)


@contextmanager
def bars(enabled: bool, in_bytes: bool = False) -> Iterator[Bars]:
    if not (enabled and err_console.is_terminal):
        yield Bars(None)
        return
    columns = [TextColumn("{task.description:>9}"), BarColumn()]
    columns.append(DownloadColumn() if in_bytes else TextColumn("{task.completed}/{task.total}"))
    with Progress(*columns, console=err_console, transient=True) as progress:
        b = Bars(progress)
        yield b
        b.finish()


# -- import ----------------------------------------------------------------------------


@click.group("import")
def import_() -> None:
    """Bring chats in from another app's export; parsed and stored on this device only."""


def _mapping(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for value in values:
        author, sep, username = value.rpartition("=")
        if not sep or not author.strip() or not username.strip():
            raise click.BadParameter(f"{value!r}: use AUTHOR=USERNAME", param_hint="--map")
        out[author.strip()] = username.strip()
    return out


def _ambiguous(exc: AmbiguousDateOrder) -> str:
    shown = "\n".join(
        f"  line {s.line_no}: {s.raw!r} = {s.dmy or 'no such date'} day-first, "
        f"{s.mdy or 'no such date'} month-first"
        for s in exc.samples
    )
    return (
        "cannot tell whether the dates are day-first or month-first (no day is above 12 and "
        "the dates never cross a month end). Run again with --date-order dmy or "
        f"--date-order mdy. The first dates read both ways:\n{shown}"
    )


def error_code(exc: Exception) -> str:
    """A stable code for an importer error: its class name in snake case
    (``AmbiguousDateOrder`` is ``ambiguous_date_order``); the classes are public API."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def _details(exc: WhatsAppImportError) -> dict[str, Any]:
    if isinstance(exc, AmbiguousDateOrder):
        return {"samples": [msgspec.to_builtins(s) for s in exc.samples]}
    if isinstance(exc, ImplausibleYear):
        return {"line": exc.line_no, "year": exc.year, "suggest_calendar": exc.suggest}
    return {}


def _parse(
    path: Path,
    chat_name: str | None,
    date_order: str | None,
    tz: str | None,
    report: Bars,
    calendar: str = "gregorian",
    summary_only: bool = False,
) -> tuple[WhatsAppExport, ChatImport]:
    try:
        export = open_export(path, chat_name=chat_name)
    except WhatsAppImportError as exc:
        raise CliError(f"{path.name}: {exc}", error_code(exc)) from exc
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", "unreadable_file") from exc
    try:
        if not export.chat_name:
            raise CliError(
                f"cannot tell the chat's name from {path.name!r}; pass --chat NAME", "no_chat_name"
            )
        chat = export.parse(
            date_order=cast(DateOrder | None, date_order),
            tz=tz,
            progress=lambda done, total: report("parse", done, total),
            calendar=cast(Calendar, calendar),
            summary_only=summary_only,
        )
    except AmbiguousDateOrder as exc:
        export.close()
        raise CliError(_ambiguous(exc), error_code(exc), _details(exc)) from exc
    except WhatsAppImportError as exc:
        export.close()
        raise CliError(f"{path.name}: {exc}", error_code(exc), _details(exc)) from exc
    except ValueError as exc:  # an unknown --tz
        export.close()
        raise CliError(str(exc), "unknown_time_zone") from exc
    except BaseException:
        export.close()
        raise
    return export, chat


def _print_report(r: dict[str, Any]) -> None:
    title = f"WhatsApp import: {r['chat']}" + (
        " (dry run: nothing written)" if r["dry_run"] else ""
    )
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    att = r["attachments"]
    rows = [
        ("file", r["file"]),
        ("dates", f"{r['date_order']}, zone {r['tz']}, {r['platform']}"),
        ("date order from", str(r["date_order_evidence"])),
        ("messages", str(r["messages"])),
        ("authors", ", ".join(f"{a} ({n})" for a, n in r["authors"].items()) or "none"),
        ("from", str(r["first"])),
        ("to", str(r["last"])),
        ("system events", str(r["system_events"])),
        ("attachments linked", str(att["linked"])),
        ("not in export", str(att["not_in_export"])),
        ("omitted (no media)", str(att["omitted"])),
    ]
    if "added" in r:
        rows += [
            ("added", str(r["added"])),
            ("already there", str(r["already_present"])),
            ("files stored", f"{att['stored_files']} ({att['stored_bytes']:,} bytes, encrypted)"),
        ]
        if att["completed"]:
            rows.append(("files completed", str(att["completed"])))
        if r["reattributed"]:
            rows.append(("reattributed", str(r["reattributed"])))
    unparsed = r["lines_not_understood"]
    rows.append(("lines not understood", str(r["lines_not_understood_total"])))
    for u in unparsed[:10]:
        rows.append((f"  line {u['line']}", f"{u['text'][:70]!r} ({u['reason']})"))
    if r["lines_not_understood_total"] > 10:
        rows.append(("", f"… {r['lines_not_understood_total'] - 10} more (--json lists them)"))
    for key, label in (
        ("ambiguous_local_times", "repeated hour"),
        ("nonexistent_local_times", "skipped hour"),
    ):
        if r[key]:
            rows.append((f"{label} (DST)", "lines " + ", ".join(map(str, r[key][:10]))))
    for row in rows:
        table.add_row(*row)
    console.print(table)


@import_.command("whatsapp")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--chat", "chat_name", help="The chat's name (default: from the file name).")
@click.option("--me", help="Your name in the export: your messages become outgoing.")
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="AUTHOR=USERNAME",
    help="An author is this Baat contact (repeatable).",
)
@click.option("--date-order", type=click.Choice(["dmy", "mdy", "ymd"]), help="When ambiguous.")
@click.option("--tz", help="The exporting phone's time zone (default: this machine's).")
@click.option(
    "--calendar",
    type=click.Choice(["gregorian", "buddhist"]),
    default="gregorian",
    show_default=True,
    help="The phone's calendar: buddhist reads Thai years (2566 is 2023).",
)
@click.option("--dry-run", is_flag=True, help="Show the summary; write nothing.")
@profile_option
def whatsapp(
    path: Path,
    chat_name: str | None,
    me: str | None,
    maps: tuple[str, ...],
    date_order: str | None,
    tz: str | None,
    calendar: str,
    dry_run: bool,
    profile: Path,
    as_json: bool,
) -> None:
    """Import a WhatsApp chat export (PATH: the .txt or .zip "Export chat" wrote).

    Importing the same chat again adds only what is new; --me and --map given again later
    apply to what was imported before (a chat mapped to one contact joins that
    conversation). 'baat chats' lists imported chats, 'baat history NAME' shows one."""
    mapping = _mapping(maps)
    try:
        large = path.stat().st_size >= PROGRESS_BYTES
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with bars(large) as report:
        # A dry run shows counts only: the records are counted and dropped as they are made.
        export, chat = _parse(path, chat_name, date_order, tz, report, calendar, dry_run)
    with export:
        result = None
        try:
            if dry_run:
                check_authors(chat, me, mapping)
            else:
                store = _open(profile)
                try:
                    with bars(large) as report:
                        result = import_chat(
                            store,
                            export,
                            chat,
                            me=me,
                            mapping=mapping,
                            file_name=path.name,
                            progress=report,
                        )
                finally:
                    store.close()
        except ImportProblem as exc:
            raise CliError(str(exc), "import_problem") from exc
        except WhatsAppImportError as exc:
            raise CliError(str(exc), error_code(exc)) from exc
        except StoreError as exc:
            raise CliError(str(exc), "store_error") from exc
    r = import_report(chat, result, path.name, dry_run)
    if as_json:
        click.echo(json.dumps(r, ensure_ascii=False))
    else:
        _print_report(r)


def _open(profile: Path) -> Store:
    try:
        return Store.open(profile, passphrase())
    except StoreError as exc:
        raise CliError(str(exc)) from exc


# -- export ----------------------------------------------------------------------------


@click.command("export")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path, dir_okay=False))
@profile_option
def export(out: Path, profile: Path, as_json: bool) -> None:
    """Write every chat, contact and file to a zip of JSON Lines (docs/EXPORT.md).

    For reading elsewhere: it holds no keys and cannot be restored (see 'baat backup').
    """
    store = _open(profile)
    try:
        with bars(True) as report:
            counts = write_export(store, out, report)
    except (ExportError, StoreError) as exc:
        raise CliError(str(exc)) from exc
    finally:
        store.close()
    r = {"out": str(out), **vars(counts)}
    if as_json:
        click.echo(json.dumps(r))
    else:
        console.print(
            f"Exported {counts.chats} chats, {counts.messages} messages, {counts.contacts} "
            f"contacts and {counts.media_files} files to {out}. It is not encrypted: keep it safe."
        )


# -- backup ----------------------------------------------------------------------------


@click.group("backup")
def backup() -> None:
    """Encrypted backups of the whole profile (keys, sessions, chats, files)."""


def backup_passphrase(confirm: bool) -> str:
    value = os.environ.get("BAAT_BACKUP_PASSPHRASE")
    if value is None:
        value = str(click.prompt("Backup passphrase", hide_input=True, confirmation_prompt=confirm))
    if not value:
        raise CliError("the backup passphrase is empty")
    return value


def _guarded(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except (BackupError, StoreError) as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")) from exc


@backup.command("create")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path, dir_okay=False))
@profile_option
def backup_create(out: Path, profile: Path, as_json: bool) -> None:
    """Write an encrypted backup of the profile to OUT."""
    if not (profile / PROFILE_FILE).exists():
        raise CliError(f"no Baat profile in {profile}")
    if out.exists():
        raise CliError(f"{out} already exists; choose another file name")
    secret = backup_passphrase(confirm=True)
    with bars(True, in_bytes=True) as report:
        info = _guarded(
            lambda: create_backup(profile, out, secret, lambda d, t: report("backup", d, t))
        )
    if as_json:
        click.echo(json.dumps({"out": str(info.path), "files": info.files, "bytes": info.bytes}))
    else:
        console.print(
            f"Backed up {profile} to {info.path} ({info.bytes:,} bytes). Restore it with "
            "'baat backup restore'; it opens with the profile's passphrase of today."
        )


@backup.command("restore")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@profile_option
def backup_restore(file: Path, profile: Path, as_json: bool) -> None:
    """Restore the backup FILE as a new profile (--profile; never over an existing one)."""
    if (profile / PROFILE_FILE).exists():
        raise CliError(f"{profile} already holds a Baat profile; restore with --profile NEW_DIR")
    # A file that is not a backup, or asks for too costly a key derivation, is refused
    # before the passphrase is asked for.
    _guarded(lambda: check_backup(file))
    secret = backup_passphrase(confirm=False)
    with bars(True, in_bytes=True) as report:
        files = _guarded(
            lambda: restore_backup(file, profile, secret, lambda d, t: report("restore", d, t))
        )
    if as_json:
        click.echo(json.dumps({"profile": str(profile), "files": files}))
    else:
        console.print(
            f"Restored {files} files into {profile}. Open it with the passphrase it had when "
            "backed up; 'baat sync' fetches what arrived since."
        )
