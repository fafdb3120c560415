"""Device and group commands: ``baat device link|list|remove`` and ``baat group
create|add|remove|leave|rename|promote|info|list``; plus reactions, edits, deletes, replies,
typing, settings and timers (docs/GROUPS.md §4 and §5)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from pathlib import Path
from typing import Any

import click
import segno
from rich.markup import escape
from rich.table import Table

from baat.cli.client import CliError, console, opened, profile_option, report, run
from baat.client.core import ClientError, Incident
from baat.client.devices import DeviceError
from baat.client.features import READ_RECEIPTS, TYPING, FeatureError
from baat.client.group_messaging import GroupFailure
from baat.client.groups import GroupError
from baat.client.sdk import Client


def _run(coro: Any) -> Any:
    try:
        return run(coro)
    except (DeviceError, GroupFailure, GroupError, FeatureError) as exc:
        raise CliError(str(exc)) from exc


async def _online(client: Client) -> None:
    await client.connect()


# -- devices ------------------------------------------------------------------------------


@click.group()
def device() -> None:
    """This account's devices: link a new one, list them, remove one."""


@device.command("link")
@click.option("--wait", default=300.0, show_default=True, help="Seconds to wait for the device.")
@click.option("--yes", is_flag=True, help="Do not ask to confirm the 6-digit code.")
@profile_option
def link(wait: float, yes: bool, profile: Path, as_json: bool) -> None:
    """Show a one-time code (text and QR) for a new device, wait for it to join, show the
    6-digit code both screens must agree on, then sign the new device list."""

    async def go() -> None:
        client = opened(profile)
        try:
            before = {d["device_id"] for d in await client.devices.server_devices()}
            code, expires_at = await client.devices.create_link_code()
            payload = code.to_bytes()
            if as_json:
                out = {"code": code.to_text(), "qr_hex": payload.hex(), "expires_at": expires_at}
                click.echo(json.dumps(out), nl=True)
            else:
                console.print("On the new device run:")
                console.print(f"  baat register --link {code.to_text()}")
                console.print("or scan:")
                segno.make(payload, error="m").terminal(compact=True)
            deadline = time.monotonic() + wait
            new: dict[str, Any] | None = None
            while new is None and time.monotonic() < deadline:
                await asyncio.sleep(0.3)
                now = await client.devices.server_devices()
                new = next((d for d in now if d["device_id"] not in before), None)
            if new is None:
                raise CliError("no device joined in time; the code expires unused")
            import base64

            from baat.client.devices import DeviceError
            from baat.crypto import LinkCommitmentMismatch

            try:
                sas = await client.devices.confirm_link(
                    code, int(new["device_id"]), base64.b64decode(new["identity_key"])
                )
            except (DeviceError, LinkCommitmentMismatch) as exc:
                await client.devices.remove(int(new["device_id"]))
                raise CliError(f"linking failed, the new device was removed: {exc}") from exc
            if as_json:
                click.echo(json.dumps({"device_id": new["device_id"], "sas": sas}))
            else:
                console.print(
                    f"Device {new['device_id']} joined. Code on both screens: [bold]{sas}[/]"
                )
            if not yes and not click.confirm("Do both screens show the same code?"):
                await client.devices.remove(int(new["device_id"]))
                raise CliError("codes differ: the new device was removed")
            listed = await client.devices.publish(include=[int(new["device_id"])])
            if not as_json:
                console.print(f"Device list version {listed.version} signed and published.")
        finally:
            await client.close()

    _run(go())


@device.command("list")
@profile_option
def list_devices(profile: Path, as_json: bool) -> None:
    """This account's devices, and whether the signed device list names them."""

    async def go() -> list[dict[str, Any]]:
        client = opened(profile)
        try:
            devices = await client.devices.server_devices()
            with client.store.transaction() as tx:
                known = client.devices.known(tx, client.info.account_id) or {}
            return [{**d, "listed": d["device_id"] in known} for d in devices]
        finally:
            await client.close()

    rows = _run(go())
    if as_json:
        click.echo(json.dumps(rows))
        return
    table = Table(title="Devices")
    for col in ("id", "added", "primary", "this one", "signed list"):
        table.add_column(col)
    for r in rows:
        yes = {True: "yes", False: ""}
        table.add_row(
            str(r["device_id"]),
            str(r["created_day"]),
            yes[r["primary"]],
            yes[r["current"]],
            "yes" if r["listed"] else "[yellow]not yet[/]",
        )
    console.print(table)


@device.command("remove")
@click.argument("device_id", type=int)
@profile_option
def remove_device(device_id: int, profile: Path, as_json: bool) -> None:
    """Remove device DEVICE_ID: it stops receiving at once."""

    async def go() -> None:
        client = opened(profile)
        try:
            await client.devices.remove(device_id)
        finally:
            await client.close()

    _run(go())
    if as_json:
        click.echo(json.dumps({"removed": device_id}))
    else:
        console.print(f"Device {device_id} removed.")


# -- groups -------------------------------------------------------------------------------


@click.group()
def group() -> None:
    """Groups: create, add and remove members, promote admins, leave, rename, show."""


def _names(value: str) -> list[str]:
    return [n for n in re.split(r"[,\s]+", value) if n]


def _group_json(client: Client, chat: str, state: Any, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": chat,
        "name": state.name,
        "members": [client.groups.display(meta, m) for m in state.members],
        # In joining order, like the members (``state.admins`` is sorted by account id).
        "admins": [client.groups.display(meta, m) for m in state.members if state.is_admin(m)],
        "version": state.version,
        "member": state.is_member(client.info.account_id),
        "timer": client.features.timer(chat),
    }


def _group_change(profile: Path, as_json: bool, action: str, *args: Any) -> None:
    async def go() -> tuple[dict[str, Any], list[Incident]]:
        client = opened(profile)
        try:
            await _online(client)
            await client.receive()  # apply what others changed first
            if action == "create":
                chat = await client.groups.create(args[0], args[1])
            else:
                await getattr(client.groups, action)(*args)
                chat = client.groups.find(args[0])[0]
            found = client.groups.find(chat)
            return _group_json(client, *found), client.incidents
        finally:
            await client.close()

    out, incidents = _run(go())
    report(incidents, as_json)
    if as_json:
        click.echo(json.dumps(out))
    else:
        members = ", ".join(out["members"])
        console.print(f"[bold]{escape(out['name'])}[/] (version {out['version']}): {members}")
        console.print(f"admins: {', '.join(out['admins'])}")


@group.command("create")
@click.argument("name")
@click.option("--members", default="", help="Comma-separated usernames.")
@profile_option
def create(name: str, members: str, profile: Path, as_json: bool) -> None:
    """Create group NAME with you as admin."""
    _group_change(profile, as_json, "create", name, _names(members))


@group.command("add")
@click.argument("group_ref", metavar="GROUP")
@click.argument("users", nargs=-1, required=True)
@profile_option
def add(group_ref: str, users: tuple[str, ...], profile: Path, as_json: bool) -> None:
    """Add USERS to GROUP (admins only)."""
    _group_change(profile, as_json, "add", group_ref, [n for u in users for n in _names(u)])


@group.command("remove")
@click.argument("group_ref", metavar="GROUP")
@click.argument("user")
@profile_option
def remove(group_ref: str, user: str, profile: Path, as_json: bool) -> None:
    """Remove USER from GROUP (admins only); later messages use new sender keys."""
    _group_change(profile, as_json, "remove", group_ref, user)


@group.command("leave")
@click.argument("group_ref", metavar="GROUP")
@profile_option
def leave(group_ref: str, profile: Path, as_json: bool) -> None:
    """Leave GROUP."""
    _group_change(profile, as_json, "leave", group_ref)


@group.command("rename")
@click.argument("group_ref", metavar="GROUP")
@click.argument("name")
@profile_option
def rename(group_ref: str, name: str, profile: Path, as_json: bool) -> None:
    """Rename GROUP (admins only)."""
    _group_change(profile, as_json, "rename", group_ref, name)


@group.command("promote")
@click.argument("group_ref", metavar="GROUP")
@click.argument("users", nargs=-1, required=True)
@profile_option
def promote(group_ref: str, users: tuple[str, ...], profile: Path, as_json: bool) -> None:
    """Make USERS, members of GROUP, admins too (admins only)."""
    _group_change(profile, as_json, "promote", group_ref, [n for u in users for n in _names(u)])


@group.command("info")
@click.argument("group_ref", metavar="GROUP")
@profile_option
def info(group_ref: str, profile: Path, as_json: bool) -> None:
    """Name, members and admins of GROUP."""
    client = opened(profile)
    try:
        out = _group_json(client, *client.groups.find(group_ref))
    except GroupFailure as exc:
        raise CliError(str(exc)) from exc
    finally:
        client.store.close()
    if as_json:
        click.echo(json.dumps(out))
        return
    console.print(f"[bold]{escape(out['name'])}[/] ({out['id']}, version {out['version']})")
    console.print(f"members: {', '.join(out['members'])}")
    console.print(f"admins: {', '.join(out['admins'])}")


@group.command("list")
@profile_option
def list_groups(profile: Path, as_json: bool) -> None:
    """Every group this device knows."""
    client = opened(profile)
    try:
        rows = [_group_json(client, *g) for g in client.groups.all()]
    finally:
        client.store.close()
    if as_json:
        click.echo(json.dumps(rows))
        return
    table = Table(title="Groups")
    for col in ("name", "members", "you"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], str(len(r["members"])), "member" if r["member"] else "left")
    console.print(table)


# -- reactions, edits, deletes, replies, settings, timers ---------------------------------


def _message_action(profile: Path, as_json: bool, action: str, *args: Any) -> None:
    async def go() -> tuple[str, list[Incident]]:
        client = opened(profile)
        try:
            with contextlib.suppress(ClientError):  # offline: queued for the next connect
                await _online(client)
            mid = await getattr(client.features, action)(*args)
            return mid, client.incidents
        finally:
            await client.close()

    mid, incidents = _run(go())
    report(incidents, as_json)
    if as_json:
        click.echo(json.dumps({"id": mid, "action": action, "ref": args[0]}))
    else:
        console.print(f"{action}: {mid}")


@click.command()
@click.argument("message_id")
@click.argument("emoji")
@profile_option
def react(message_id: str, emoji: str, profile: Path, as_json: bool) -> None:
    """React to MESSAGE_ID with EMOJI ("" takes it back)."""
    _message_action(profile, as_json, "react", message_id, emoji)


@click.command()
@click.argument("message_id")
@click.argument("text")
@profile_option
def edit(message_id: str, text: str, profile: Path, as_json: bool) -> None:
    """Replace the text of your message MESSAGE_ID (within 15 minutes)."""
    _message_action(profile, as_json, "edit", message_id, text)


@click.command()
@click.argument("message_id")
@profile_option
def delete(message_id: str, profile: Path, as_json: bool) -> None:
    """Delete your message MESSAGE_ID for everyone (within 24 hours)."""
    _message_action(profile, as_json, "delete", message_id)


@click.command()
@click.argument("message_id")
@click.argument("text")
@profile_option
def reply(message_id: str, text: str, profile: Path, as_json: bool) -> None:
    """Reply to MESSAGE_ID with TEXT, in its chat."""
    _message_action(profile, as_json, "reply", message_id, text)


async def _typing_chat(client: Client, name: str, is_group: bool) -> tuple[str, dict[str, str]]:
    """The chat id ``baat typing`` names, and how to show it: a group (by id or name) or a
    contact; a name that is both must be told apart with --group or the group's id."""
    group = None
    try:
        group = client.groups.find(name)
    except GroupFailure as exc:
        if is_group or exc.code != "unknown_group":
            raise
    if group is not None:
        chat, state, _ = group
        if not is_group and chat != name and client.store.contact_by_name(name.casefold()):
            raise CliError(f"{name!r} is a contact and a group: add --group, or use the group's id")
        if not state.is_member(client.info.account_id):
            raise GroupFailure("not_member", f"you are not a member of {state.name!r}")
        return chat, {"chat": state.name, "group": state.name}
    account_id, canonical = await client.resolve(name)
    return account_id, {"chat": canonical}


@click.command("typing")
@click.argument("chat")
@click.option("--stop", is_flag=True, help="Say that you stopped typing.")
@click.option("--group", "is_group", is_flag=True, help="CHAT is a group (name or id).")
@profile_option
def typing_(chat: str, stop: bool, is_group: bool, profile: Path, as_json: bool) -> None:
    """Tell CHAT (a contact's username or a group) that you are typing, or with --stop that
    you stopped. Nothing is sent while typing indicators are off ('baat settings typing')."""
    kind = "stopped" if stop else "started"

    async def go() -> tuple[dict[str, Any], list[Incident]]:
        client = opened(profile)
        try:
            target, shown = await _typing_chat(client, chat, is_group)
            if not client.features.enabled(TYPING):
                return {**shown, "typing": kind, "sent": False, "reason": "off"}, []
            # Connected first: the SDK never queues an indicator, it would be stale later.
            await _online(client)
            sent = await client.features.typing(target, started=not stop)
            return {**shown, "typing": kind, "sent": sent}, client.incidents
        finally:
            await client.close()

    out, incidents = _run(go())
    report(incidents, as_json)
    if out["sent"] is False and "reason" not in out:
        raise CliError(f"could not tell {out['chat']} now; typing indicators are never queued")
    if as_json:
        click.echo(json.dumps(out))
    elif not out["sent"]:
        console.print("Typing indicators are off: nothing sent ('baat settings typing on').")
    else:
        what = "you stopped typing" if stop else "you are typing"
        console.print(f"Told {escape(out['chat'])} {what}.")


@click.group()
def settings() -> None:
    """Per-account switches."""


def _switch(name: str, label: str) -> click.Command:
    @click.command(name.replace("_", "-"))
    @click.argument("state", type=click.Choice(["on", "off"]))
    @profile_option
    def command(state: str, profile: Path, as_json: bool) -> None:
        client = opened(profile)
        try:
            client.features.set_enabled(name, state == "on")
        finally:
            client.store.close()
        if as_json:
            click.echo(json.dumps({name: state == "on"}))
        else:
            console.print(f"{label}: {state}")

    command.help = f"Turn {label} on or off."
    return command


settings.add_command(_switch(READ_RECEIPTS, "read receipts"))
settings.add_command(_switch(TYPING, "typing indicators"))

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """``off``, ``30s``, ``5m``, ``8h``, ``7d``, ``1w`` or plain seconds."""
    if text == "off":
        return 0
    match = re.fullmatch(r"(\d+)([smhdw]?)", text.strip())
    if match is None:
        raise click.BadParameter("a duration like 30s, 5m, 8h, 7d, 1w, or off")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


@click.command()
@click.argument("name", required=False)
@click.argument("duration")
@click.option("--group", "group_ref", help="The group's timer instead of a contact's.")
@profile_option
def timer(
    name: str | None, duration: str, group_ref: str | None, profile: Path, as_json: bool
) -> None:
    """Disappearing messages with NAME (or --group GROUP): DURATION after arrival, or off."""
    if (name is None) == (group_ref is None):
        raise click.UsageError("give a contact NAME or --group GROUP")
    seconds = parse_duration(duration)

    async def go() -> str:
        client = opened(profile)
        try:
            with contextlib.suppress(ClientError):
                await _online(client)
            if group_ref is not None:
                chat, state, _ = client.groups.find(group_ref)
                body = {"peer": state.name, "group": state.name}
            else:
                assert name is not None
                chat, canonical = await client.resolve(name)
                body = {"peer": canonical}
            return await client.features.set_timer(chat, seconds, body)
        finally:
            await client.close()

    _run(go())
    if as_json:
        click.echo(json.dumps({"chat": group_ref or name, "timer": seconds}))
    else:
        console.print(f"Timer for {group_ref or name}: {duration}")
