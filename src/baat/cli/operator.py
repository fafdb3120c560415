"""Operator commands for admission and linked regions, added to ``baat admin``.

``baat admin invite`` makes one-time registration codes for ``baat serve --registration
invite``; ``baat admin region-key`` makes (or shows) a region's key pair for the signed calls
between regions (docs/DEPLOY.md, "Regions").
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import click

from baat.cli.privacy import CliFailure, admin, db_options

__all__ = ["admin"]


@admin.command("invite")
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--days", default=30, show_default=True, type=click.IntRange(1, 365), help="Valid for."
)
@db_options
def admin_invite(count: int, days: int, db: str, as_json: bool) -> None:
    """Make one-time invite codes for a server run with --registration invite."""
    from baat.server.invites import create_invites
    from baat.server.storage.base import StorageUnavailable
    from baat.server.storage.sql import SqlStore

    async def go() -> tuple[list[str], int]:
        store = await SqlStore.open(db)
        try:
            return await create_invites(store.engine, count, days * 86_400)
        finally:
            await store.close()

    try:
        codes, expires_at = asyncio.run(go())
    except (StorageUnavailable, ValueError) as exc:
        raise CliFailure(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({"invites": codes, "expires_at": expires_at}))
        return
    for code in codes:
        click.echo(code)


@admin.command("region-key")
@click.argument("key_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def admin_region_key(key_file: Path, as_json: bool) -> None:
    """Make this region's private key in KEY_FILE (kept if it exists) and print its public
    key, which every other region is given with --peer-key REGION=KEY."""
    from baat.server.regions.signing import (
        RegionSigner,
        encode_public_key,
        load_private_key,
        new_private_key_text,
    )

    made = False
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        # Created readable by the owner only, never world-readable for a moment.
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(new_private_key_text() + "\n")
        made = True
    try:
        signer = RegionSigner(load_private_key(key_file.read_text()))
    except ValueError as exc:
        raise CliFailure(f"{key_file}: {exc}") from exc
    public = encode_public_key(signer.public_key)
    if as_json:
        click.echo(json.dumps({"key_file": str(key_file), "public_key": public, "made": made}))
        return
    click.echo(public)
