"""Helpers the browser tests share (fixtures stay in tests/e2e/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from e2e.conftest import AppProcess
    from support.server import ServerProcess

PASS = "correct horse battery staple"


def registered(apps: Callable[..., AppProcess], server: ServerProcess, name: str) -> AppProcess:
    """A web app for a new account ``name`` on ``server``, unlocked with ``PASS``."""
    app = apps(name, server.url, passphrase=PASS)
    with app.http() as http:
        r = http.post("/api/register", json={"server_url": server.url, "username": name})
        assert r.status_code == 201, r.text
    return app
