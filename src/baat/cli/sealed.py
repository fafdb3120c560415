"""``baat sealed``: sealed sender on this device (docs/CRYPTO.md §18, docs/PRIVACY.md).

``status`` shows whether messages went sealed or fell back to authenticated sends (and
why the last one did); ``anyone on|off`` lets anyone send this account sealed messages, not
only contacts holding its profile key (off by default); ``rotate`` makes a new profile key,
which locks out the old access key at once; ``profile`` publishes the display name
encrypted under the profile key.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from baat.cli.client import console, opened, profile_option, run


@click.group()
def sealed() -> None:
    """Sealed sender: messages the server cannot attribute to you."""


def _show(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(data))
        return
    last = data.get("last_fallback")
    lines = [
        f"sealed from anyone: {'on' if data['sealed_from_anyone'] else 'off'}",
        f"access key registered: {'yes' if data['access_key_registered'] else 'no'}",
        f"contacts whose profile key you hold: {data['contacts_with_profile_key']}",
        f"envelopes sent sealed: {data['sealed']}",
        f"envelopes sent authenticated instead: {data['fallback']}",
    ]
    if last:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(last["at"]))
        lines.append(f"last fallback: {when} UTC ({last['reason']})")
    for line in lines:
        console.print(line)


@sealed.command("status")
@profile_option
def status(profile: Path, as_json: bool) -> None:
    """How many envelopes went sealed, how many fell back to authenticated sends, and why."""
    client = opened(profile)
    try:
        data = client.sealed.status()
    finally:
        client.store.close()
    _show(data, as_json)


async def _online(client: Any, action: Any) -> None:
    try:
        await client.connect()
        await action()
    finally:
        await client.close()


@sealed.command("anyone")
@click.argument("state", type=click.Choice(["on", "off"]))
@profile_option
def anyone(state: str, profile: Path, as_json: bool) -> None:
    """Take sealed messages from anyone (on), or only from contacts with your profile key."""
    client = opened(profile)
    client.sealed.set_anyone(state == "on")
    run(_online(client, client.sealed.register_access))
    if as_json:
        click.echo(json.dumps({"sealed_from_anyone": state == "on"}))
    else:
        console.print(f"sealed from anyone: {state}")


@sealed.command("rotate")
@profile_option
def rotate(profile: Path, as_json: bool) -> None:
    """A new profile key: sealed sends made with the old one are refused from now on;
    contacts get the new key with your next message."""
    client = opened(profile)

    async def go() -> None:
        client.sealed.rotate_profile_key()
        await client.sealed.register_access()

    run(_online(client, go))
    if as_json:
        click.echo(json.dumps({"rotated": True}))
    else:
        console.print("profile key rotated; contacts get the new one with your next message")


@sealed.command("profile")
@click.argument("name")
@profile_option
def set_profile(name: str, profile: Path, as_json: bool) -> None:
    """Publish NAME as your display name, encrypted with your profile key."""
    client = opened(profile)
    run(_online(client, lambda: client.sealed.publish_profile(name)))
    if as_json:
        click.echo(json.dumps({"published": True}))
    else:
        console.print("display name published, encrypted; contacts read it with your key")
