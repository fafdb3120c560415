"""What the limits of issue 14 cost: the send quotas on the delivery path, and signed region
requests, each against a baseline measured in the same run.

1. Sends to offline devices through the real ``Router`` on a file SQLite store (group
   commit, as ``baat serve`` runs it): without quotas (baseline) and with ``SendQuotas``
   (per-device queue size read from the database at most once a second per device, plus the
   per-pair token bucket). Reports accepted sends/s and the ratio.
2. A region request: Ed25519 signature and its verification with the replay check, against
   the shared-secret comparison it replaced (baseline). Reports requests/s and the ratio.

    .venv/bin/python bench/limits.py [--sends 5000] [--devices 100]
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import secrets
import tempfile
import time
from pathlib import Path

from baat.proto import OutgoingEnvelope, SendResult
from baat.server.delivery import Router
from baat.server.quotas import SendQuotas
from baat.server.regions.signing import (
    RegionSigner,
    RegionVerifier,
    load_private_key,
    new_private_key_text,
)
from baat.server.storage.base import Account, Device
from baat.server.storage.sql import SqlStore


async def _sends(db: Path, sends: int, devices: int, quotas: bool) -> float:
    store = await SqlStore.open(f"sqlite:///{db}")
    names = [f"r{i}" for i in range(devices)]
    for name in ["sender", *names]:
        await store.create_account(
            Account(name, name, "local", "IN", 1, 1),
            Device(name, 1, b"i" * 32, b"d" * 32, b"s" * 64, 1, b"h" * 32),
        )
    router = Router(
        store,
        envelopes_per_second=1e12,
        envelope_burst=1e12,
        quotas=SendQuotas(store.engine, per_second=1e12) if quotas else None,
    )
    await router.start()
    done: list[SendResult] = []
    content = secrets.token_bytes(256)
    start = time.perf_counter()
    for n in range(sends):
        to = names[n % devices]
        await router.accept_send(
            ("sender", 1), f"m{n}", [OutgoingEnvelope(to, 1, content)], done.append
        )
    await router.flush_now()
    elapsed = time.perf_counter() - start
    assert len(done) == sends and all(r.results[0].status == "stored" for r in done)
    await router.stop()
    await store.close()
    return sends / elapsed


def _regions(n: int) -> tuple[float, float]:
    secret = secrets.token_hex(32)
    start = time.perf_counter()
    for _ in range(n):
        hmac.compare_digest(secret.encode(), secret.encode())
    baseline = n / (time.perf_counter() - start)
    signer = RegionSigner(load_private_key(new_private_key_text()))
    verifier = RegionVerifier("in", {"eu": signer.public_key})
    body = secrets.token_bytes(1024)
    start = time.perf_counter()
    for _ in range(n):
        header = signer.header("in", "POST", "/v1/regions/send", body)
        verifier.caller(header, "POST", "/v1/regions/send", body)
    return baseline, n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sends", type=int, default=5000)
    p.add_argument("--devices", type=int, default=100)
    p.add_argument("--requests", type=int, default=5000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # Alternate, so that a neighbour's load on a shared machine hits both alike.
        rates: dict[bool, list[float]] = {False: [], True: []}
        for round_ in range(2):
            for quotas in (False, True):
                db = Path(tmp) / f"q{int(quotas)}-{round_}.sqlite3"
                rates[quotas].append(asyncio.run(_sends(db, args.sends, args.devices, quotas)))
    base, with_quotas = max(rates[False]), max(rates[True])
    print(f"sends to {args.devices} offline devices, {args.sends} sends of 256 bytes (best of 2)")
    print(f"  without quotas  {base:10.0f} sends/s")
    print(f"  with quotas     {with_quotas:10.0f} sends/s   ratio {with_quotas / base:.2f}")
    plain, signed = _regions(args.requests)
    print(f"region request authentication, {args.requests} requests of 1 KiB")
    print(f"  shared secret   {plain:10.0f} /s")
    print(f"  signed (Ed25519 sign + verify + replay check) {signed:10.0f} /s   "
          f"cost {1e6 / signed:.0f} µs per request")  # fmt: skip


if __name__ == "__main__":
    main()
