"""Write tests/vectors/baat_v1_fixtures.json: version 1 records and messages they must open.

Run once per record version (``.venv/bin/python tests/crypto/make_fixtures.py``) and commit the
output. Never regenerate the version 1 file: its purpose is to prove that bytes written by this
version still load, re-encode identically and decrypt after any later change.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from baat.crypto import decrypt, encrypt, initiate_session, respond_to_initial
from crypto.crypto_helpers import (
    AD,
    NOW,
    VECTORS,
    Device,
    ratchet_pair,
    receive,
    send,
)


def _ratchet() -> dict[str, object]:
    alice, bob = ratchet_pair()
    alice, skipped_msg = send(alice, b"sent first, read last")
    alice, read = send(alice, b"read before the one above")
    bob, from_bob = send(bob, b"from bob")
    bob, _ = receive(bob, read)  # the state below holds one skipped key
    alice, in_chain = send(alice, b"next in the same chain")
    alice, _ = receive(alice, from_bob)
    alice, new_chain = send(alice, b"after a DH ratchet step")
    messages = [skipped_msg, in_chain, new_chain]
    plaintexts = [b"sent first, read last", b"next in the same chain", b"after a DH ratchet step"]
    return {
        "state": bob.to_bytes().hex(),
        "associated_data": AD.hex(),
        "now": NOW,
        "messages": [
            {"header": h.encode().hex(), "ciphertext": ct.hex(), "plaintext": pt.hex()}
            for (h, ct), pt in zip(messages, plaintexts, strict=True)
        ],
    }


def _session() -> dict[str, object]:
    alice_dev, bob_dev = Device(), Device()
    alice = initiate_session(alice_dev.identity, bob_dev.bundle(), NOW)
    alice, first = encrypt(alice, b"first message", NOW)
    alice, second = encrypt(alice, b"second, still a prekey message", NOW)
    bob_private = [p.to_bytes().hex() for p in bob_dev.private.values()]
    bob_identity = bob_dev.identity.to_bytes().hex()
    bob, _, used = respond_to_initial(bob_dev.identity, bob_dev.lookup, first, NOW)
    bob_state = bob.to_bytes().hex()
    bob, reply = encrypt(bob, b"reply from bob", NOW)
    alice, _ = decrypt(alice, reply, NOW)
    alice, normal = encrypt(alice, b"a normal message", NOW)
    return {
        "responder_identity": bob_identity,
        "responder_private_prekeys": bob_private,
        "prekey_message": first.hex(),
        "prekey_plaintext": b"first message".hex(),
        "used_one_time": [list(slot) for slot in used.one_time()],
        "responder_state": bob_state,
        "now": NOW,
        "messages": [
            {"data": second.hex(), "plaintext": b"second, still a prekey message".hex()},
            {"data": normal.hex(), "plaintext": b"a normal message".hex()},
        ],
    }


def main() -> None:
    out = VECTORS / "baat_v1_fixtures.json"
    if out.exists() and "--force" not in sys.argv:
        raise SystemExit(f"{out} exists; version 1 fixtures must not change")
    fixture = {
        "comment": "Version 1 state records and ciphertexts; see tests/crypto/make_fixtures.py",
        "ratchet": _ratchet(),
        "session": _session(),
    }
    out.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
