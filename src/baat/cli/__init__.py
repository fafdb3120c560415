"""The ``baat`` command line: thin commands over the server, the client SDK and privacy."""

from __future__ import annotations

from baat.cli._root import main, root

__all__ = ["main", "root"]
