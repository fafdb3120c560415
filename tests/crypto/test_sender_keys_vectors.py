"""Version 1 sender key records and messages (tests/vectors/sender_keys_v1.json).

The fixture was written once by running this file
(``.venv/bin/python tests/crypto/test_sender_keys_vectors.py``) and must never be
regenerated: it proves that bytes written by version 1 still load, re-encode identically,
decrypt, and that encryption from a stored state still produces the very same bytes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from baat.crypto import (
    DuplicateMessage,
    SenderKeyDistribution,
    SenderKeyState,
    decrypt_group,
    encrypt_group,
    new_sender_key,
    process_distribution,
)
from crypto.crypto_helpers import NOW, VECTORS, load_vector

FIXTURE = "sender_keys_v1.json"
GROUP = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
h = bytes.fromhex


def _make() -> dict[str, Any]:
    sender = new_sender_key(GROUP, NOW)
    distribution = sender.distribution()
    receiver = process_distribution(distribution, NOW)
    texts = [b"zero", b"one, read last", b"two", b"three" * 20]
    sent = []
    for text in texts:
        sender, data = encrypt_group(sender, text, NOW)
        sent.append(data)
    receiver, _ = decrypt_group(receiver, sent[0], NOW)
    receiver, _ = decrypt_group(receiver, sent[2], NOW)  # leaves iteration 1 skipped
    next_plaintext = b"encrypted from the stored sender state"
    _, next_data = encrypt_group(sender, next_plaintext, NOW)
    return {
        "comment": "Version 1 sender key records; see tests/crypto/test_sender_keys_vectors.py",
        "now": NOW,
        "group_id": GROUP.hex(),
        "distribution": distribution.encode().hex(),
        "sender_state": sender.to_bytes().hex(),
        "receiver_state": receiver.to_bytes().hex(),
        "receiver_messages": [{"data": sent[i].hex(), "plaintext": texts[i].hex()} for i in (1, 3)],
        "already_read": [sent[0].hex(), sent[2].hex()],
        "next_message": {"plaintext": next_plaintext.hex(), "data": next_data.hex()},
    }


def test_distribution_v1() -> None:
    v = load_vector(FIXTURE)
    dist = SenderKeyDistribution.decode(h(v["distribution"]))
    assert dist.encode() == h(v["distribution"])
    assert dist.group_id == h(v["group_id"]) and dist.iteration == 0
    sender = SenderKeyState.from_bytes(h(v["sender_state"]))
    assert (dist.key_id, dist.signing_public) == (sender.key_id, sender.signing_public)
    fresh = process_distribution(dist, v["now"])
    for item in v["receiver_messages"]:  # a fresh receiver reads everything
        fresh, plaintext = decrypt_group(fresh, h(item["data"]), v["now"])
        assert plaintext == h(item["plaintext"])


def test_sender_state_v1_encrypts_the_same_bytes() -> None:
    v = load_vector(FIXTURE)
    blob = h(v["sender_state"])
    sender = SenderKeyState.from_bytes(blob)
    assert sender.is_sender and sender.iteration == 4 and sender.created_at == v["now"]
    assert sender.to_bytes() == blob
    _, data = encrypt_group(sender, h(v["next_message"]["plaintext"]), v["now"])
    assert data == h(v["next_message"]["data"])


def test_receiver_state_v1_decrypts() -> None:
    v = load_vector(FIXTURE)
    blob = h(v["receiver_state"])
    receiver = SenderKeyState.from_bytes(blob)
    assert not receiver.is_sender
    assert receiver.to_bytes() == blob
    assert list(receiver.skipped) == [1]
    for old in v["already_read"]:
        try:
            decrypt_group(receiver, h(old), v["now"])
        except DuplicateMessage:
            continue
        raise AssertionError("a message read before was accepted again")
    for item in [*v["receiver_messages"], v["next_message"]]:
        receiver, plaintext = decrypt_group(receiver, h(item["data"]), v["now"])
        assert plaintext == h(item["plaintext"])
    assert receiver.skipped == {}


def main() -> None:
    out = VECTORS / FIXTURE
    if out.exists() and "--force" not in sys.argv:
        raise SystemExit(f"{out} exists; version 1 fixtures must not change")
    out.write_text(json.dumps(_make(), indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
