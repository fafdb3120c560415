"""Root command group and the server commands."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click

from baat import __version__
from baat.cli._limits import OPTIONS as TRANSPORT_OPTIONS
from baat.cli._limits import settings_kwargs, transport_options
from baat.cli._serve_options import quota_options
from baat.cli._serve_options import region_keys as _region_keys

# Commands of the other layers, loaded only when named, so that ``baat serve`` does not
# import the client, the web app or the importers (nor fail with them).
LAZY_COMMANDS = {
    "register": "baat.cli.client:register",
    "send": "baat.cli.client:send",
    "sync": "baat.cli.client:sync",
    "history": "baat.cli.client:history",
    "chats": "baat.cli.chats:chats",
    "contacts": "baat.cli.client:contacts",
    "safety-number": "baat.cli.client:safety_number",
    "verify": "baat.cli.client:verify",
    "attachments": "baat.cli.client:attachments",
    "device": "baat.cli.groups:device",
    "group": "baat.cli.groups:group",
    "react": "baat.cli.groups:react",
    "edit": "baat.cli.groups:edit",
    "delete": "baat.cli.groups:delete",
    "reply": "baat.cli.groups:reply",
    "typing": "baat.cli.groups:typing_",
    "settings": "baat.cli.groups:settings",
    "sealed": "baat.cli.sealed:sealed",
    "timer": "baat.cli.groups:timer",
    "app": "baat.cli.app:app",
    "import": "baat.cli.leave:import_",
    "export": "baat.cli.leave:export",
    "backup": "baat.cli.leave:backup",
    "policy": "baat.cli.privacy:policy",
    "consent": "baat.cli.privacy:consent",
    "me": "baat.cli.privacy:me",
    "transparency": "baat.cli.privacy:transparency",
    "admin": "baat.cli.admin_ops:admin",
    "business": "baat.cli.business:business",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, attr = target.split(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="baat")
def root() -> None:
    """Baat: a private messenger. Messages only the people in the chat can read."""


@root.command()
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    default=Path("./var/server"),
    show_default=True,
    help="Directory for the SQLite database and server keys.",
)
@click.option("--db", default=None, help="Database URL: sqlite:///PATH or postgresql://...")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8780, show_default=True, type=int)
@click.option(
    "--region",
    default="in",
    show_default=True,
    help="Region this node stores data in (in, eu, us).",
)
@click.option(
    "--node-id",
    default="node-1",
    show_default=True,
    help="Unique name of this node among those sharing a database.",
)
@click.option(
    "--bus",
    default=None,
    help="redis://HOST:PORT/DB to run several nodes on one PostgreSQL database.",
)
@click.option("--max-envelope-bytes", default=64 * 1024, show_default=True, type=int)
@click.option(
    "--envelopes-per-second",
    default=5000.0,
    show_default=True,
    type=float,
    help="Per-account send rate limit; sealed sends: per access key and per connection.",
)
@click.option(
    "--frames-per-second",
    default=2000.0,
    show_default=True,
    type=float,
    help="Per-connection frame rate limit.",
)
@click.option(
    "--registrations-per-minute",
    default=60,
    show_default=True,
    type=int,
    help="Server-wide ceiling on new accounts per minute.",
)
@click.option(
    "--registrations-per-address",
    default=10,
    show_default=True,
    type=int,
    help="New accounts per minute from one client address (an IPv6 /64 counts as one); "
    "at most half the ceiling. Invalid requests are not counted.",
)
@click.option(
    "--registration",
    type=click.Choice(["open", "invite"]),
    default="open",
    show_default=True,
    help="'invite': a new account needs a one-time code from 'baat admin invite'.",
)
@click.option(
    "--links-per-minute",
    default=60,
    show_default=True,
    type=int,
    help="Server-wide ceiling on devices linked per minute.",
)
@click.option(
    "--links-per-address",
    default=10,
    show_default=True,
    type=int,
    help="Devices linked per minute from one client address.",
)
@quota_options
@click.option(
    "--max-blob-bytes",
    default=100 * 1024 * 1024,
    show_default=True,
    type=int,
    help="Largest attachment upload accepted.",
)
@click.option(
    "--affiliate-url",
    default=None,
    help="Where the consented affiliate export posts; told of erasures and withdrawals.",
)
@click.option(
    "--support-url",
    default=None,
    help="Where the support desk is told of erasures of accounts it looked up.",
)
@click.option(
    "--unserved-jurisdictions",
    type=click.Choice(["store-here", "refuse"]),
    default="store-here",
    show_default=True,
    help="Registrations of a jurisdiction whose region neither this node nor a --peer "
    "serves: store them here (the notice this server publishes says so) or refuse them.",
)
@click.option(
    "--peer",
    "peers",
    multiple=True,
    metavar="REGION=URL",
    help="Another storage region of this deployment and its URL (repeatable); accounts "
    "of that region are stored and served there.",
)
@click.option(
    "--region-key-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="This region's private key, made by 'baat admin region-key' (needed with --peer).",
)
@click.option(
    "--peer-key",
    "peer_keys",
    multiple=True,
    metavar="REGION=PUBLIC_KEY",
    help="The public key of a linked region (repeatable; one for each --peer).",
)
@click.option(
    "--migrate",
    type=click.Choice(["auto", "off"]),
    default="auto",
    show_default=True,
    help="auto: apply pending schema migrations at start; off: refuse a database that "
    "needs them (run `baat admin migrate`). A newer schema is always refused.",
)
@transport_options
def serve(
    data_dir: Path,
    db: str | None,
    host: str,
    port: int,
    region: str,
    node_id: str,
    bus: str | None,
    max_envelope_bytes: int,
    envelopes_per_second: float,
    frames_per_second: float,
    registrations_per_minute: int,
    registrations_per_address: int,
    registration: str,
    links_per_minute: int,
    links_per_address: int,
    max_blob_bytes: int,
    affiliate_url: str | None,
    support_url: str | None,
    unserved_jurisdictions: str,
    peers: tuple[str, ...],
    region_key_file: Path | None,
    peer_keys: tuple[str, ...],
    migrate: str,
    **quotas: Any,
) -> None:
    """Run a Baat server (SQLite under --data by default)."""
    from baat.proto import Limits
    from baat.server.config import ServerConfig
    from baat.server.main import serve as run
    from baat.server.storage.sql import engine_url
    from baat.server.transport import TransportSettings

    if bus is not None and not bus.startswith(("redis://", "rediss://", "unix://")):
        raise click.BadParameter("use redis://HOST:PORT/DB", param_hint="--bus")
    if bus is not None and (db is None or not db.startswith("postgres")):
        raise click.BadParameter(
            "several nodes need a shared PostgreSQL database (--db postgresql://...)",
            param_hint="--bus",
        )
    if db is not None:
        try:
            engine_url(db)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--db") from exc
    linked = _peers(region, peers)
    region_key, keys = _region_keys(linked, region_key_file, peer_keys)
    limits = Limits(
        max_envelope_bytes=max_envelope_bytes,
        max_frame_bytes=max(256 * 1024, max_envelope_bytes * 2),
        frames_per_second=frames_per_second,
        frame_burst=frames_per_second * 2,
    )
    run(
        ServerConfig(
            host=host,
            port=port,
            data_dir=data_dir,
            db=db,
            region=region,
            node_id=node_id,
            bus=bus,
            limits=limits,
            envelopes_per_second=envelopes_per_second,
            envelope_burst=envelopes_per_second * 2,
            registrations_per_minute=registrations_per_minute,
            registrations_per_address=registrations_per_address,
            registration=registration,
            links_per_minute=links_per_minute,
            links_per_address=links_per_address,
            max_blob_bytes=max_blob_bytes,
            affiliate_url=affiliate_url,
            support_url=support_url,
            unserved_jurisdictions=unserved_jurisdictions,
            peers=linked,
            # Both option groups arrive in **quotas: the transport's are taken out here.
            transport=TransportSettings(
                **settings_kwargs({n: quotas.pop(n) for n, *_ in TRANSPORT_OPTIONS})
            ),
            region_key=region_key,
            peer_keys=keys,
            migrate=migrate == "auto",
            **quotas,
        )
    )


def _peers(region: str, values: tuple[str, ...]) -> dict[str, str]:
    from baat.privacy.policy import Policy
    from baat.server.regions.ids import new_account_id

    policy = Policy.current()
    linked: dict[str, str] = {}
    for one in (region, *(v.partition("=")[0] for v in values)):
        if policy.region(one) is None:
            declared = ", ".join(r.id for r in policy.regions)
            raise click.BadParameter(
                f"region {one!r} is not declared in the policy; use one of: {declared}",
                param_hint="--region/--peer",
            )
        new_account_id(one)
    for value in values:
        name, sep, url = value.partition("=")
        if not sep or not url.startswith(("http://", "https://")):
            raise click.BadParameter("use REGION=http(s)://HOST:PORT", param_hint="--peer")
        if name == region:
            raise click.BadParameter(f"{name!r} is this node's own region", param_hint="--peer")
        linked[name] = url
    return linked


def main() -> None:
    root()
