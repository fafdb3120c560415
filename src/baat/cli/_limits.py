"""``baat serve`` options for the abuse limits (issue 14; docs/DEPLOY.md, "Limits").

Kept apart from ``_root.py`` so that the serve command only gains one decorator and one
keyword argument. The defaults repeat ``baat.server.transport.TransportSettings``'s (this
module must not import the server: other commands load ``_root`` too); a test checks that
they agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

# name, default, type, help
OPTIONS: list[tuple[str, Any, type, str]] = [
    ("header_timeout", 10.0, float, "Seconds to receive a request's headers (slowloris)."),
    (
        "body_timeout",
        30.0,
        float,
        "Window in seconds over which a request body must bring --body-min-rate bytes/s.",
    ),
    ("body_min_rate", 1024, int, "Slowest accepted request body, in bytes per second."),
    ("keep_alive_timeout", 5.0, float, "Idle seconds allowed between two HTTP requests."),
    (
        "auth_timeout",
        10.0,
        float,
        "Seconds from the WebSocket upgrade to a successful Authenticate.",
    ),
    (
        "ping_interval",
        30.0,
        float,
        "Ping a silent authenticated WebSocket after this many seconds; close it after twice.",
    ),
    (
        "max_connections",
        0,
        int,
        "Total open connections (0: the open-file limit minus 256).",
    ),
    (
        "connection_reserve",
        0,
        int,
        "Connections kept for /healthz and authenticated devices (0: 5%, at least 16).",
    ),
    (
        "max_connections_per_address",
        256,
        int,
        "Open connections per client address (0: no limit; use 0 behind a reverse proxy).",
    ),
    ("max_json_body", 64 * 1024, int, "Largest JSON request body, in bytes."),
    (
        "max_write_buffer",
        16 * 1024 * 1024,
        int,
        "Unsent bytes a WebSocket may accumulate before it is closed as too slow.",
    ),
]

# Option name -> TransportSettings field where they differ.
FIELD = {"connection_reserve": "reserve", "max_connections_per_address": "per_address"}


def transport_options(command: F) -> F:
    for name, default, kind, text in reversed(OPTIONS):
        flag = "--" + name.replace("_", "-")
        command = click.option(
            flag, name, default=default, type=kind, show_default=True, help=text
        )(command)
    return command


def settings_kwargs(values: dict[str, Any]) -> dict[str, Any]:
    """The collected option values as ``TransportSettings`` keyword arguments.

    Raises:
        click.BadParameter: a negative limit.
    """
    out: dict[str, Any] = {}
    for name, *_ in OPTIONS:
        value = values[name]
        if value < 0:
            raise click.BadParameter("must be 0 or more", param_hint="--" + name.replace("_", "-"))
        out[FIELD.get(name, name)] = value
    return out
