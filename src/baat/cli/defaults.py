"""Defaults that spare typing what the machine already knows.

- ``default_db``: the database ``baat serve`` uses when given no ``--db`` (SQLite under its
  default ``--data`` directory), for the operator commands run beside it.
- ``profile_server``: the server a client profile is registered with, read from the
  profile's ``profile.json`` (its account section is not sealed, so no passphrase is
  needed), for ``baat consent verify`` to fetch that server's published keys.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# Keep in step with ``baat serve --data`` (cli/_root.py) and ServerConfig.db_url.
SERVE_DATA_DIR = Path("./var/server")
SERVE_DB_FILE = "baat.sqlite3"


def default_db() -> str:
    """``BAAT_DB`` if set, else the SQLite file ``baat serve`` creates by default."""
    return os.environ.get("BAAT_DB") or f"sqlite:///{(SERVE_DATA_DIR / SERVE_DB_FILE).resolve()}"


def profile_server(profile: Path | None = None) -> str | None:
    """The server URL of the profile in ``profile`` (default ``BAAT_PROFILE`` or ``~/.baat``),
    or ``None`` when there is no registered profile there."""
    if profile is None:
        profile = Path(os.environ.get("BAAT_PROFILE") or Path.home() / ".baat")
    try:
        doc = json.loads((profile / "profile.json").read_text(encoding="utf-8"))
        url = doc["account"]["server_url"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else None
