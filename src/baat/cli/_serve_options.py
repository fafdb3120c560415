"""``baat serve`` options for quotas and for the keys of linked regions.

Each quota is a ``ServerConfig`` field of the same name (docs/PROTOCOL.md, "Quotas").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

MIB = 1024 * 1024

# (option, default, type, help): the option's name with dashes is the config field's.
QUOTAS: tuple[tuple[str, Any, type, str], ...] = (
    (
        "--max-queued-envelopes",
        10_000,
        int,
        "Envelopes queued for one offline device; past it senders get the retryable "
        "'recipient_queue_full' and keep the message in their outbox.",
    ),
    (
        "--max-queued-bytes",
        256 * MIB,
        int,
        "Ciphertext bytes queued for one offline device (same error).",
    ),
    (
        "--recipient-envelopes-per-second",
        50.0,
        float,
        "Envelopes one account may send to one device per second (bursts of ten times "
        "that); past it the retryable 'recipient_rate_limited'.",
    ),
    (
        "--max-blobs-per-account",
        1000,
        int,
        "Attachment blobs one account may have stored at once ('blob_quota_exceeded').",
    ),
    (
        "--max-blob-bytes-per-account",
        2048 * MIB,
        int,
        "Attachment bytes one account may have stored at once ('blob_quota_exceeded').",
    ),
)


# Delivery settings passed the same way (a ServerConfig field of the option's name).
DELIVERY: tuple[tuple[str, Any, type, str], ...] = (
    (
        "--fanout-hold",
        2.0,
        float,
        "Seconds the envelopes of a send to several devices (a group's fan-out) wait in "
        "memory for their acknowledgements before they are written to the database; 0 "
        "gives them the ordinary 5 ms grace (docs/ARCHITECTURE.md, 'Delivery').",
    ),
)


def quota_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for name, default, kind, text in reversed((*QUOTAS, *DELIVERY)):
        f = click.option(name, default=default, show_default=True, type=kind, help=text)(f)
    return f


def region_keys(
    linked: dict[str, str], key_file: Path | None, values: tuple[str, ...]
) -> tuple[str | None, dict[str, bytes]]:
    """This region's private key text and the linked regions' public keys.

    Raises:
        click.BadParameter: a key is missing, malformed or names an unlinked region.
    """
    from baat.server.regions.signing import decode_public_key, load_private_key

    private = None
    if key_file is not None:
        private = key_file.read_text().strip()
        try:
            load_private_key(private)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--region-key-file") from exc
    keys: dict[str, bytes] = {}
    for value in values:
        region, sep, text = value.partition("=")
        if not sep or region not in linked:
            raise click.BadParameter(
                f"use REGION=PUBLIC_KEY for a region given with --peer (got {value!r})",
                param_hint="--peer-key",
            )
        try:
            keys[region] = decode_public_key(text)
        except ValueError as exc:
            raise click.BadParameter(f"{region}: {exc}", param_hint="--peer-key") from exc
    if linked and private is None:
        raise click.BadParameter(
            "linking regions needs this region's key: --region-key-file "
            "(make one with 'baat admin region-key')",
            param_hint="--peer",
        )
    missing = sorted(set(linked) - set(keys))
    if missing:
        raise click.BadParameter(
            f"no public key for linked region(s) {', '.join(missing)}", param_hint="--peer-key"
        )
    return private, keys


def _host_port(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None or value == "":
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter("use HOST:PORT, e.g. 127.0.0.1:9780")
    return (host.strip("[]") or "127.0.0.1", int(port))


def ops_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Logs, metrics and the database pool (docs/DEPLOY.md, "Configuration")."""
    options = [
        click.option(
            "--log-level",
            type=click.Choice(["debug", "info", "warning", "error"]),
            default="info",
            show_default=True,
            help="Least severe log record written.",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            help="text: one human line per record; json: one JSON object per line.",
        ),
        click.option(
            "--log-interval",
            type=click.FloatRange(0.0),
            default=10.0,
            show_default=True,
            help="Seconds within which a repeated warning is written once (the next says how "
            "many were suppressed).",
        ),
        click.option(
            "--metrics",
            metavar="HOST:PORT",
            default=None,
            callback=_host_port,
            help="Serve Prometheus metrics at http://HOST:PORT/metrics (off unless set; keep "
            "it off the public address).",
        ),
        click.option(
            "--db-pool-size",
            type=click.IntRange(1, 1000),
            default=10,
            show_default=True,
            help="PostgreSQL connections kept open by this node (SQLite uses one).",
        ),
        click.option(
            "--db-max-overflow",
            type=click.IntRange(0, 1000),
            default=10,
            show_default=True,
            help="Extra PostgreSQL connections opened during bursts.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f
