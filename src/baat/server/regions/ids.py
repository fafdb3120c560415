"""Account ids that name their home region (``in-3f9c…``), as an e-mail address names its
domain: any node routes by the id alone, with no shared directory to consult or to leak."""

from __future__ import annotations

import re
import secrets

_ACCOUNT_ID = re.compile(r"^([a-z]{2,8})-[0-9a-f]{16,}$")
ACCOUNT_ID_CHARS = 32  # the width of every account id column
MAX_REGION_CHARS = 8  # leaves at least 23 random hex digits (92 bits) in an id


def new_account_id(region: str) -> str:
    """A random account id that names its home region."""
    if not re.fullmatch(r"[a-z]{2,8}", region):
        raise ValueError(f"a region id is 2 to {MAX_REGION_CHARS} lowercase letters: {region!r}")
    return f"{region}-{secrets.token_hex(16)}"[:ACCOUNT_ID_CHARS]


def region_of(account_id: str) -> str | None:
    """The home region named by ``account_id``; None for an id without one."""
    m = _ACCOUNT_ID.match(account_id)
    return m.group(1) if m else None


_BLOB_ID = re.compile(r"^([a-z]{2,8})_[A-Za-z0-9_-]{16,}$")


def region_of_blob(blob_id: str) -> str | None:
    """The region a blob id names (its uploader's home region), if any."""
    m = _BLOB_ID.match(blob_id)
    return m.group(1) if m else None
