"""Loading a profile's server credentials (for commands that call the HTTP API)."""

from __future__ import annotations

import os
from pathlib import Path

from baat.client.store import Store
from baat.contract import DeviceCredentials


def passphrase_from_env() -> str | None:
    return os.environ.get("BAAT_PASSPHRASE")


def load_credentials(profile_dir: Path, passphrase: str | None) -> tuple[str, DeviceCredentials]:
    """The server URL and bearer credentials of the profile's device.

    Raises:
        NoProfile, WrongPassphrase: from the store.
        ValueError: no passphrase given and none in BAAT_PASSPHRASE.
    """
    secret = passphrase if passphrase is not None else passphrase_from_env()
    if secret is None:
        raise ValueError("a passphrase is needed: set BAAT_PASSPHRASE or pass one")
    store = Store.open(profile_dir, secret)
    try:
        _, creds = store.load_identity()
        info = store.info
        if info is None:
            raise ValueError("this profile has not finished registering")
        return info.server_url, DeviceCredentials(info.account_id, info.device_id, creds["token"])
    finally:
        store.close()
