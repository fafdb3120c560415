"""``baat business``: the disclosure of a business (info), accepting and withdrawing it, and
a business's own profile (docs/BUSINESS.md). ``baat send`` asks through :func:`consent_to`."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from baat.cli._disclosure import card_text
from baat.cli.client import CliError, console, opened, profile_option, run
from baat.client.business import Disclosure
from baat.client.core import ClientError


@click.group()
def business() -> None:
    """Business accounts: what a business discloses, and your consent to chat with it."""


def _out(d: Disclosure | dict[str, Any], as_json: bool, title: str = "") -> None:
    data = d.to_json() if isinstance(d, Disclosure) else d
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
        return
    if title:
        console.print(title)
    console.print(card_text(data))


@business.command("info")
@click.argument("name")
@profile_option
def info(name: str, profile: Path, as_json: bool) -> None:
    """The disclosure card of the business NAME: who can read the chat, where, for what,
    for how long, and whether the operator verified it."""

    async def go() -> Disclosure:
        client = opened(profile)
        try:
            return await client.business.disclosure(name)
        finally:
            await client.close()

    _out(run(go()), as_json)


@business.command("accept")
@click.argument("name")
@profile_option
def accept(name: str, profile: Path, as_json: bool) -> None:
    """Accept the current disclosure of NAME (a consent business-chat:<account> with a signed
    receipt); queued messages are sent and held ones shown."""

    async def go() -> Disclosure:
        client = opened(profile)
        try:
            with contextlib.suppress(ClientError):  # offline: queued ones go at the next sync
                await client.connect()
            return await client.business.accept(name)
        finally:
            await client.close()

    shown = run(go())
    _out(shown, as_json, "[green]accepted[/]")
    if not as_json and shown.receipt:
        console.print(f"receipt: {shown.receipt['receipt']}")


@business.command("withdraw")
@click.argument("name")
@profile_option
def withdraw(name: str, profile: Path, as_json: bool) -> None:
    """Withdraw your consent to the chat with NAME: the chat becomes read-only."""

    async def go() -> dict[str, Any]:
        client = opened(profile)
        try:
            return await client.business.withdraw(name)
        finally:
            await client.close()

    receipt = run(go())
    if as_json:
        click.echo(json.dumps(receipt, ensure_ascii=False))
    else:
        console.print(f"withdrawn: the chat with {escape(name)} is read-only")


def parse_processor(spec: str) -> dict[str, Any]:
    """``NAME:COUNTRY:ROLE:DEVICE[,DEVICE...]``.

    Raises:
        click.BadParameter: not in that shape.
    """
    parts = spec.rsplit(":", 3)
    try:
        name, country, role, devices = parts
        ids = tuple(int(x) for x in devices.split(",") if x.strip())
    except ValueError as exc:
        raise click.BadParameter(f"{spec!r}: use NAME:COUNTRY:ROLE:DEVICE[,DEVICE...]") from exc
    return {"name": name, "country": country.upper(), "role": role, "devices": ids}


@business.command("profile")
@click.option("--display-name", default=None)
@click.option("--entity", default=None, help="The legal entity.")
@click.option("--country", default=None, help="Where the entity is established (ISO code).")
@click.option("--contact", default=None)
@click.option("--purpose", "purposes", multiple=True, help="What chat content is used for.")
@click.option("--retention", default=None, help="How long the business keeps chat content.")
@click.option("--device", "devices", multiple=True, type=int, help="A device the business runs.")
@click.option(
    "--processor",
    "processors",
    multiple=True,
    help="A host or processor that can read messages: NAME:COUNTRY:ROLE:DEVICE[,DEVICE...].",
)
@click.option("--no-processors", is_flag=True, help="Declare that no host or processor reads.")
@click.option("--show", is_flag=True, help="Only show the published profile.")
@profile_option
def profile_cmd(
    display_name: str | None,
    entity: str | None,
    country: str | None,
    contact: str | None,
    purposes: tuple[str, ...],
    retention: str | None,
    devices: tuple[int, ...],
    processors: tuple[str, ...],
    no_processors: bool,
    show: bool,
    profile: Path,
    as_json: bool,
) -> None:
    """Publish the next version of this business account's signed profile (options not
    given keep their current value); run on the account's first device."""
    procs = [parse_processor(p) for p in processors]

    async def go() -> dict[str, Any]:
        client = opened(profile)
        try:
            if show:
                current = await client.business.own_profile()
                if current is None:
                    raise CliError("this account has no business profile", "not_a_business")
                p = current
            else:
                p = await client.business.publish(
                    display_name=display_name,
                    entity=entity,
                    country=country,
                    contact=contact,
                    purposes=purposes or None,
                    retention=retention,
                    devices=devices or None,
                    processors=procs or (() if no_processors else None),
                )
            me = client.info
            return Disclosure(me.account_id, me.username, p, False, "accepted", None).to_json()
        finally:
            await client.close()

    data = run(go())
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
        return
    console.print(f"business profile version {data['version']}")
    for r in data["readers"]:
        console.print(f"  {escape(r['name'])}, {escape(r['role'])}, {r['country']}: {r['devices']}")
