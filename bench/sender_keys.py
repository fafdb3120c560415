"""Cost of a group message with sender keys: one encryption, then one decryption per receiver.

* sender: CPU time of ``encrypt_group`` for one message (derive, AES-CBC + HMAC, Ed25519 sign);
* receiver: CPU time of ``decrypt_group`` on each of the receivers (Ed25519 verify, derive,
  HMAC, AES-CBC), averaged over all receivers and messages;
* for comparison, the sender's cost without sender keys: one pairwise Double Ratchet
  encryption per receiver (symmetric-key steps only, no DH step), and the cost of a
  rotation: sending a new 90-byte distribution over every pairwise session.

Usage: ``python bench/sender_keys.py [--receivers N] [--messages M] [--size BYTES]``
(defaults 256, 40, 100; a few seconds).
"""

from __future__ import annotations

import argparse
import os
import time

from rich.console import Console
from rich.table import Table

from baat.crypto import (
    RatchetState,
    X25519KeyPair,
    decrypt_group,
    encrypt_group,
    init_initiator,
    new_sender_key,
    process_distribution,
    ratchet_encrypt,
)

NOW = 1_700_000_000
AD = bytes(130)


def _pairwise(count: int) -> list[RatchetState]:
    return [init_initiator(os.urandom(32), X25519KeyPair.generate().public) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receivers", type=int, default=256)
    parser.add_argument("--messages", type=int, default=40)
    parser.add_argument("--size", type=int, default=100)
    args = parser.parse_args()
    n, m = args.receivers, args.messages
    plaintext = os.urandom(args.size)

    sender = new_sender_key(os.urandom(16), NOW)
    receivers = [process_distribution(sender.distribution(), NOW) for _ in range(n)]
    sender, warm = encrypt_group(sender, plaintext, NOW)
    receivers = [decrypt_group(r, warm, NOW)[0] for r in receivers]

    encrypt_cpu = decrypt_cpu = 0.0
    wall = time.perf_counter()
    size = 0
    for _ in range(m):
        start = time.process_time()
        sender, data = encrypt_group(sender, plaintext, NOW)
        encrypt_cpu += time.process_time() - start
        size = len(data)
        start = time.process_time()
        for i, receiver in enumerate(receivers):
            receivers[i], out = decrypt_group(receiver, data, NOW)
        decrypt_cpu += time.process_time() - start
        assert out == plaintext
    wall = time.perf_counter() - wall

    sessions = _pairwise(n)
    start = time.process_time()
    for _ in range(m):
        for i, session in enumerate(sessions):
            sessions[i], _, _ = ratchet_encrypt(session, plaintext, AD, NOW)
    pairwise_cpu = time.process_time() - start
    distribution = sender.distribution().encode()
    start = time.process_time()
    for i, session in enumerate(sessions):
        sessions[i], _, _ = ratchet_encrypt(session, distribution, AD, NOW)
    rotation_cpu = time.process_time() - start

    per_message = encrypt_cpu / m
    per_receiver = decrypt_cpu / (m * n)
    pairwise = pairwise_cpu / m
    table = Table(title=f"Sender keys: {args.size} B message, {n} receivers, {m} messages")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("group message size", f"{size} B")
    table.add_row("sender CPU per message (encrypt + sign)", f"{per_message * 1e6:,.1f} µs")
    table.add_row("decrypt per receiver (verify + decrypt)", f"{per_receiver * 1e6:,.1f} µs")
    table.add_row(f"all {n} receivers, one message", f"{per_receiver * n * 1e3:,.2f} ms")
    table.add_row(f"pairwise fan-out instead: {n} encryptions", f"{pairwise * 1e3:,.2f} ms")
    table.add_row("sender saving with sender keys", f"{pairwise / per_message:,.0f}x")
    table.add_row(f"rotation: {n} distributions over pairwise", f"{rotation_cpu * 1e3:,.2f} ms")
    table.add_row("wall time of the sender-key loop", f"{wall:,.2f} s")
    Console().print(table)


if __name__ == "__main__":
    main()
