"""``baat app``: the messenger in the browser, served by this device's own client.

The client (keys, ratchet state, the encrypted store) runs in this process; the browser only
draws it, over 127.0.0.1, with a secret kept in the profile (``web/guard.py``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import webbrowser
from pathlib import Path

import click

DEFAULT_SERVER = "http://127.0.0.1:8780"
DEFAULT_PORT = 8781


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(
            f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); pick another --port"
        ) from exc
    # Listening before the URL is printed: whoever reads it can connect at once.
    sock.listen(128)
    return sock


def _has_browser() -> bool:
    # On a Linux machine without a display, webbrowser would fall back to a text browser
    # inside this very terminal; only open a graphical one.
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@click.command("app")
@click.option(
    "--profile",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="BAAT_PROFILE",
    default=Path.home() / ".baat",
    show_default=True,
    help="Profile directory (or BAAT_PROFILE).",
)
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port on 127.0.0.1 (0 picks a free one).",
)
@click.option(
    "--server",
    default=DEFAULT_SERVER,
    show_default=True,
    envvar="BAAT_SERVER",
    help="Server offered when creating an account (an existing profile keeps its own).",
)
@click.option("--no-browser", is_flag=True, help="Print the URL without opening a browser.")
@click.option(
    "--new-secret",
    is_flag=True,
    help="Replace the secret in the app's address (every open tab must use the new one).",
)
def app(profile: Path, port: int, server: str, no_browser: bool, new_secret: bool) -> None:
    """Open Baat in the browser: chats, safety numbers and the privacy dashboard.

    Set BAAT_PASSPHRASE to unlock the local store at start; otherwise the page asks.
    """
    import uvicorn

    from baat.web.app import create_app
    from baat.web.guard import profile_secret
    from baat.web.runtime import Runtime

    logging.basicConfig(level=logging.WARNING, format="baat app: %(levelname)s %(message)s")
    sock = _bind(port)
    actual = int(sock.getsockname()[1])
    try:
        # Kept in the profile: open tabs and bookmarks survive a restart.
        secret = profile_secret(profile, renew=new_secret)
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot keep the app's secret in {profile}: {exc}") from exc
    runtime = Runtime(profile, server, os.environ.get("BAAT_PASSPHRASE"))
    config = uvicorn.Config(
        create_app(runtime, secret, actual),
        log_level="warning",
        access_log=False,  # no request log: URLs may carry the secret
        lifespan="on",
        timeout_graceful_shutdown=3,
        server_header=False,
    )
    url = f"http://127.0.0.1:{actual}/?k={secret}"
    click.echo(f"baat app: {url}")
    sys.stdout.flush()
    if not no_browser and _has_browser():
        with contextlib.suppress(webbrowser.Error):  # the printed URL is enough
            webbrowser.open(url)
    uvicorn.Server(config).run(sockets=[sock])
