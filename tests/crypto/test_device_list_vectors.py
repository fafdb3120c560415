"""Version 1 device list and link code vectors (tests/vectors/device_list_v1.json).

Everything here is deterministic (fixed keys, Ed25519 is deterministic), so the test rebuilds
each value from its inputs and compares bytes. The file was written once by running this
module (``.venv/bin/python tests/crypto/test_device_list_vectors.py``); never regenerate it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from baat.crypto import (
    DeviceList,
    IdentityKeyPair,
    LinkCode,
    link_sas,
    sign_device_list,
    verify_device_list,
)
from crypto.crypto_helpers import VECTORS, load_vector

FIXTURE = "device_list_v1.json"
h = bytes.fromhex


def _identity(n: int) -> IdentityKeyPair:
    return IdentityKeyPair(bytes([n]) * 32, bytes([n + 100]) * 32)


def _make() -> dict[str, Any]:
    primary, linked, tablet = _identity(1), _identity(2), _identity(3)
    account = "00112233445566778899aabbccddeeff"
    listed = DeviceList.build(
        account,
        7,
        [(1, primary.identity_key), (2, linked.identity_key), (5, tablet.identity_key)],
        1_700_000_000,
    )
    code = LinkCode(secret=bytes(range(20)), account_id=account, server_url="https://baat.example")
    return {
        "comment": "Version 1 device list and link code; see test_device_list_vectors.py",
        "primary_signing_private": (bytes([1]) * 32).hex(),
        "primary_dh_private": (bytes([101]) * 32).hex(),
        "account_identity_key": primary.identity_key.hex(),
        "device_list": {
            "account_id": account,
            "version": 7,
            "timestamp": 1_700_000_000,
            "devices": [[e.device_id, e.identity_key.hex()] for e in listed.devices],
            "blob": sign_device_list(primary, listed).hex(),
        },
        "link_code": {
            "secret": code.secret.hex(),
            "account_id": account,
            "server_url": code.server_url,
            "bytes": code.to_bytes().hex(),
            "text": code.to_text(),
            "new_device_identity_key": linked.identity_key.hex(),
            "sas": link_sas(code, primary.identity_key, linked.identity_key),
        },
    }


def test_device_list_v1() -> None:
    v = load_vector(FIXTURE)
    primary = IdentityKeyPair(h(v["primary_signing_private"]), h(v["primary_dh_private"]))
    assert primary.identity_key == h(v["account_identity_key"])
    d = v["device_list"]
    listed = DeviceList.build(
        d["account_id"], d["version"], [(i, h(k)) for i, k in d["devices"]], d["timestamp"]
    )
    assert sign_device_list(primary, listed).hex() == d["blob"]
    verified = verify_device_list(primary.identity_key, h(d["blob"]), account_id=d["account_id"])
    assert verified == listed


def test_link_code_v1() -> None:
    v = load_vector(FIXTURE)
    c = v["link_code"]
    code = LinkCode(secret=h(c["secret"]), account_id=c["account_id"], server_url=c["server_url"])
    assert code.to_bytes().hex() == c["bytes"]
    assert code.to_text() == c["text"]
    assert LinkCode.from_text(c["text"]) == LinkCode.from_bytes(h(c["bytes"])) == code
    sas = link_sas(code, h(v["account_identity_key"]), h(c["new_device_identity_key"]))
    assert sas == c["sas"]


def main() -> None:
    out = VECTORS / FIXTURE
    if out.exists() and "--force" not in sys.argv:
        raise SystemExit(f"{out} exists; version 1 fixtures must not change")
    out.write_text(json.dumps(_make(), indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
