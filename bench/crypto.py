"""Throughput of Baat's Double Ratchet sessions and the cost of a PQXDH handshake.

Baseline: the ``doubleratchet`` package (dev dependency), measured in the same run with the
same primitives (X25519, HKDF-SHA256, HMAC-SHA256 chains, AES-256-CBC + HMAC-SHA256).

* alternating: the direction changes every message, so every message is a DH ratchet step.
* batched: 50 messages one way, then 50 back; one DH step per 50 messages.
* X25519 bound: the rate if a message cost nothing but the three X25519 operations of its DH
  ratchet step, against the package's best alternating rate.
* inactive sessions: decrypt time through a session record (docs/CRYPTO.md §13) holding 0, 1
  and 40 inactive sessions, against a bare ``decrypt`` on the one session in the same run:
  a message on the active session, one on the oldest inactive session, and one no session
  can decrypt (every session is tried, the worst case).

Baat is measured through the session API (ciphertext framing and parsing included); the
package through its own API (no framing). A "message" is one encryption plus one decryption.

* sealed sender (docs/CRYPTO.md §18.2): the cost of sealing a 200-byte envelope and of
  opening it, certificate check included; warm (a sender writing to a known device, a
  certificate already verified once) and cold (a new recipient key, a new certificate).
  Target: under 0.2 ms each.

Usage: ``python bench/crypto.py [--seconds S]`` (S per measurement; default 2.5, ~35 s total).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from baat.crypto import (
    PREKEY_KIND_CURVE_ONE_TIME,
    PREKEY_KIND_CURVE_SIGNED,
    PREKEY_KIND_KEM_LAST_RESORT,
    PREKEY_KIND_KEM_ONE_TIME,
    CryptoError,
    IdentityKeyPair,
    PrekeyBundle,
    SessionRecord,
    SessionState,
    add_session,
    decrypt,
    encrypt,
    generate_prekey,
    initiate_session,
    prekey_lookup,
    record_decrypt,
    respond_to_initial,
)
from baat.crypto.ratchet import MESSAGE_KEY_INFO, ROOT_KDF_INFO

NOW = 1_700_000_000
BATCH = 50
PAYLOADS = {"100 B": 100, "1 KiB": 1024}


def _timed(step: Callable[[], int], seconds: float) -> float:
    """Run ``step`` (which returns how many messages it handled) for ``seconds``; msgs/s."""
    step()  # warm up
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        count += step()
    return count / elapsed


async def _timed_async(step: Callable[[], Awaitable[int]], seconds: float) -> float:
    await step()
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        count += await step()
    return count / elapsed


# -- Baat --------------------------------------------------------------------------------


class _Device:
    def __init__(self) -> None:
        self.identity = IdentityKeyPair.generate()
        kinds = [
            (PREKEY_KIND_CURVE_SIGNED, 1),
            (PREKEY_KIND_KEM_LAST_RESORT, 1),
            (PREKEY_KIND_CURVE_ONE_TIME, 1),
            (PREKEY_KIND_KEM_ONE_TIME, 1),
        ]
        self.pairs = {kind: generate_prekey(self.identity, kind, key_id) for kind, key_id in kinds}
        self.lookup = prekey_lookup(p.private for p in self.pairs.values())

    def bundle(self) -> PrekeyBundle:
        pub = self.identity.public
        return PrekeyBundle.from_parts(
            pub.identity_key,
            pub.identity_dh_key,
            pub.identity_dh_sig,
            self.pairs[PREKEY_KIND_CURVE_SIGNED].public,
            self.pairs[PREKEY_KIND_KEM_LAST_RESORT].public,
            self.pairs[PREKEY_KIND_CURVE_ONE_TIME].public,
            self.pairs[PREKEY_KIND_KEM_ONE_TIME].public,
        )


def _baat_pair() -> list[SessionState]:
    alice_dev, bob_dev = _Device(), _Device()
    alice = initiate_session(alice_dev.identity, bob_dev.bundle(), NOW)
    alice, first = encrypt(alice, b"hi", NOW)
    bob, _, _ = respond_to_initial(bob_dev.identity, bob_dev.lookup, first, NOW)
    bob, reply = encrypt(bob, b"hi", NOW)
    alice, _ = decrypt(alice, reply, NOW)
    return [alice, bob]


def baat_alternating(size: int, seconds: float) -> float:
    pair = _baat_pair()
    payload = os.urandom(size)
    turn = 0

    def step() -> int:
        nonlocal turn
        for _ in range(20):
            sender, receiver = turn, 1 - turn
            pair[sender], data = encrypt(pair[sender], payload, NOW)
            pair[receiver], _ = decrypt(pair[receiver], data, NOW)
            turn = receiver
        return 20

    return _timed(step, seconds)


def baat_batched(size: int, seconds: float) -> float:
    pair = _baat_pair()
    payload = os.urandom(size)
    turn = 0

    def step() -> int:
        nonlocal turn
        sender, receiver = turn, 1 - turn
        sent = []
        for _ in range(BATCH):
            pair[sender], data = encrypt(pair[sender], payload, NOW)
            sent.append(data)
        for data in sent:
            pair[receiver], _ = decrypt(pair[receiver], data, NOW)
        turn = receiver
        return BATCH

    return _timed(step, seconds)


def baat_handshake(seconds: float) -> tuple[float, float]:
    """Milliseconds for the initiator (verify bundle, PQXDH, first encryption) and the
    responder (PQXDH from the first message, first decryption)."""
    alice_dev, bob_dev = _Device(), _Device()
    bundle = bob_dev.bundle()

    def initiator() -> int:
        session = initiate_session(alice_dev.identity, bundle, NOW)
        encrypt(session, b"hello", NOW)
        return 1

    first = encrypt(initiate_session(alice_dev.identity, bundle, NOW), b"hello", NOW)[1]

    def responder() -> int:
        respond_to_initial(bob_dev.identity, bob_dev.lookup, first, NOW)
        return 1

    return 1000 / _timed(initiator, seconds / 2), 1000 / _timed(responder, seconds / 2)


def x25519_floor(seconds: float) -> float:
    """Messages/s if an alternating message cost only its three X25519 operations (one key
    generation, two agreements: the DH ratchet step of Double Ratchet section 3.5). No
    implementation built on the same X25519 can exceed this."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    peer = X25519PrivateKey.generate().public_key()
    old = X25519PrivateKey.generate()

    def step() -> int:
        for _ in range(20):
            old.exchange(peer)
            X25519PrivateKey.generate().exchange(peer)
        return 20

    return _timed(step, seconds)


# -- the doubleratchet package -----------------------------------------------------------


def _package_class() -> tuple[Any, dict[str, Any]]:
    from doubleratchet import DoubleRatchet, Header
    from doubleratchet.recommended import (
        HashFunction,
        aead_aes_hmac,
        diffie_hellman_ratchet_curve25519,
        kdf_hkdf,
        kdf_separate_hmacs,
    )

    class RootKdf(kdf_hkdf.KDF):
        @staticmethod
        def _get_hash_function() -> HashFunction:
            return HashFunction.SHA_256

        @staticmethod
        def _get_info() -> bytes:
            return ROOT_KDF_INFO

    class ChainKdf(kdf_separate_hmacs.KDF):
        @staticmethod
        def _get_hash_function() -> HashFunction:
            return HashFunction.SHA_256

    class Aead(aead_aes_hmac.AEAD):
        @staticmethod
        def _get_hash_function() -> HashFunction:
            return HashFunction.SHA_256

        @staticmethod
        def _get_info() -> bytes:
            return MESSAGE_KEY_INFO

    class Ratchet(DoubleRatchet):
        @staticmethod
        def _build_associated_data(associated_data: bytes, header: Header) -> bytes:
            return (
                associated_data
                + header.ratchet_pub
                + header.previous_sending_chain_length.to_bytes(4, "big")
                + header.sending_chain_length.to_bytes(4, "big")
            )

    config = {
        "diffie_hellman_ratchet_class": diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet,
        "root_chain_kdf": RootKdf,
        "message_chain_kdf": ChainKdf,
        "message_chain_constant": b"\x02\x01",
        "dos_protection_threshold": 1000,
        "max_num_skipped_message_keys": 1000,
        "aead": Aead,
    }
    return Ratchet, config


async def _package_pair() -> list[Any]:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    ratchet, config = _package_class()
    bob_key = X25519PrivateKey.generate()
    secret, ad = os.urandom(32), bytes(130)
    alice, first = await ratchet.encrypt_initial_message(
        **config,
        shared_secret=secret,
        recipient_ratchet_pub=bob_key.public_key().public_bytes_raw(),
        message=b"hi",
        associated_data=ad,
    )
    bob, _ = await ratchet.decrypt_initial_message(
        **config,
        shared_secret=secret,
        own_ratchet_priv=bob_key.private_bytes_raw(),
        message=first,
        associated_data=ad,
    )
    return [alice, bob]


async def package_alternating(size: int, seconds: float) -> float:
    pair, payload, ad = await _package_pair(), os.urandom(size), bytes(130)
    turn = 1

    async def step() -> int:
        nonlocal turn
        for _ in range(20):
            sender, receiver = turn, 1 - turn
            message = await pair[sender].encrypt_message(payload, ad)
            await pair[receiver].decrypt_message(message, ad)
            turn = receiver
        return 20

    return await _timed_async(step, seconds)


async def package_batched(size: int, seconds: float) -> float:
    pair, payload, ad = await _package_pair(), os.urandom(size), bytes(130)
    turn = 1

    async def step() -> int:
        nonlocal turn
        sender, receiver = turn, 1 - turn
        sent = [await pair[sender].encrypt_message(payload, ad) for _ in range(BATCH)]
        for message in sent:
            await pair[receiver].decrypt_message(message, ad)
        turn = receiver
        return BATCH

    return await _timed_async(step, seconds)


# -- several sessions per peer device ------------------------------------------------------


def _established(alice_dev: _Device, bob_dev: _Device) -> tuple[SessionState, SessionState]:
    """One session past its first exchange, so that Alice's messages are NORMAL ones."""
    pub = bob_dev.bundle()
    bundle = PrekeyBundle.from_parts(
        pub.identity_key,
        pub.identity_dh_key,
        pub.identity_dh_sig,
        bob_dev.pairs[PREKEY_KIND_CURVE_SIGNED].public,
        bob_dev.pairs[PREKEY_KIND_KEM_LAST_RESORT].public,
    )
    alice = initiate_session(alice_dev.identity, bundle, NOW)
    alice, first = encrypt(alice, b"hi", NOW)
    bob, _, _ = respond_to_initial(bob_dev.identity, bob_dev.lookup, first, NOW)
    bob, reply = encrypt(bob, b"hi", NOW)
    alice, _ = decrypt(alice, reply, NOW)
    return alice, bob


def inactive_sessions(seconds: float) -> list[tuple[str, int, float]]:
    """(case, inactive sessions, microseconds per decrypt), plus the bare baseline."""
    alice_dev, bob_dev = _Device(), _Device()
    pairs = [_established(alice_dev, bob_dev) for _ in range(41)]
    stranger, _ = _established(alice_dev, _Device())
    payload = os.urandom(100)

    def record(inactive: int) -> SessionRecord:
        # Newest session active; the older ones inactive, most recent first.
        rec = None
        for _, bob in pairs[40 - inactive :]:
            rec = add_session(rec, bob)
        assert rec is not None
        return rec

    def message(session: SessionState) -> bytes:
        return encrypt(session, payload, NOW)[1]  # the same key each time: no state grows

    active_msg = message(pairs[40][0])
    bare = _per_call(lambda: decrypt(pairs[40][1], active_msg, NOW), seconds)
    rows = [("bare decrypt", 0, bare)]
    for inactive in (0, 1, 40):
        rec = record(inactive)
        cases = [("active", active_msg)]
        if inactive:
            cases.append(("oldest inactive", message(pairs[40 - inactive][0])))
        cases.append(("no session fits", message(stranger)))
        for case, data in cases:
            rows.append((case, inactive, _record_cost(rec, data, bob_dev, seconds)))
    return rows


def _per_call(fn: Callable[[], object], seconds: float) -> float:
    """Microseconds per call: the best of three runs, as the machine may be shared."""

    def step() -> int:
        for _ in range(20):
            fn()
        return 20

    return min(1e6 / _timed(step, seconds / 6) for _ in range(3))


def _record_cost(rec: SessionRecord, data: bytes, me: _Device, seconds: float) -> float:
    def once() -> None:
        with contextlib.suppress(CryptoError):  # "no session fits" raises, as it should
            record_decrypt(rec, data, NOW, me.identity, me.lookup)

    return _per_call(once, seconds)


def _print_sessions(rows: list[tuple[str, int, float]]) -> None:
    base = rows[0][2]
    print("Decrypt through a session record (100 B payload), microseconds per message")
    print(f"{'case':<16} {'inactive':>8} {'us':>10} {'vs bare':>8}")
    for case, inactive, us in rows:
        print(f"{case:<16} {inactive:>8} {us:>10.1f} {us / base:>7.2f}x")


# -- sealed sender ----------------------------------------------------------------------


def sealed_costs(seconds: float) -> list[tuple[str, float]]:
    """Milliseconds per seal and per open, warm and cold (see the module docstring)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from baat.crypto.sealed import (
        CertificateValidator,
        SealCache,
        issue_sender_certificate,
        issue_server_certificate,
        open_sealed,
        seal,
    )

    alice, bob = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    root, server_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    now = int(time.time() * 1000)
    server = issue_server_certificate(
        root, 1, server_key.public_key().public_bytes_raw(), now + 10**9
    )
    cert = issue_sender_certificate(
        server_key,
        server,
        "in-" + "a" * 29,
        1,
        alice.identity_key,
        alice.identity_dh_key,
        now + 10**8,
    )
    roots = [root.public_key().public_bytes_raw()]
    body = os.urandom(200)
    warm_seal, warm_open = SealCache(), SealCache()
    validator = CertificateValidator(roots)
    sealed = seal(bob.identity_dh_key, alice.dh_pair, cert, body, cache=warm_seal)
    open_sealed(sealed, bob.dh_pair, validator, now, warm_open)

    def cold_open() -> None:
        open_sealed(sealed, bob.dh_pair, CertificateValidator(roots), now, SealCache())

    rows = [
        (
            "seal, known recipient",
            _per_call(
                lambda: seal(bob.identity_dh_key, alice.dh_pair, cert, body, cache=warm_seal),
                seconds,
            ),
        ),
        (
            "seal, new recipient",
            _per_call(
                lambda: seal(bob.identity_dh_key, alice.dh_pair, cert, body, cache=SealCache()),
                seconds,
            ),
        ),
        (
            "open, known sender",
            _per_call(lambda: open_sealed(sealed, bob.dh_pair, validator, now, warm_open), seconds),
        ),
        ("open, new certificate", _per_call(cold_open, seconds)),
    ]
    return [(name, us / 1000) for name, us in rows]


def _print_sealed(rows: list[tuple[str, float]]) -> None:
    print("Sealed sender, 200-byte envelope: ms per call (target < 0.2 ms)")
    for name, ms in rows:
        print(f"  {name:<24} {ms:7.3f} ms  {'ok' if ms < 0.2 else 'over'}")


# -- report ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.5, help="time per measurement")
    args = parser.parse_args()
    seconds: float = args.seconds

    rows = []
    for mode, ours, theirs in (
        ("alternating", baat_alternating, package_alternating),
        ("batched", baat_batched, package_batched),
    ):
        for label, size in PAYLOADS.items():
            baat = ours(size, seconds)
            package = asyncio.run(theirs(size, seconds))
            rows.append((mode, label, baat, package))
    floor = x25519_floor(seconds / 2)
    package_alt = max(p for mode, _, _, p in rows if mode == "alternating")
    rows.append(("X25519 bound", "any", floor, package_alt))
    initiator_ms, responder_ms = baat_handshake(seconds)
    _print(rows, initiator_ms, responder_ms)
    _print_sessions(inactive_sessions(seconds))
    _print_sealed(sealed_costs(seconds))


def _print(rows: list[tuple[str, str, float, float]], init_ms: float, resp_ms: float) -> None:
    alternating_ratio = min(b / p for mode, _, b, p in rows if mode == "alternating")
    bound = next(b / p for mode, _, b, p in rows if mode == "X25519 bound")
    verdicts = [
        f"alternating >= 5x doubleratchet: {'yes' if alternating_ratio >= 5 else 'no'} "
        f"(worst {alternating_ratio:.1f}x; three X25519 operations per message alone "
        f"cap any ratio at {bound:.1f}x)",
        f"PQXDH handshake < 2 ms: {'yes' if init_ms + resp_ms < 2 else 'no'} "
        f"({init_ms + resp_ms:.2f} ms initiator + responder)",
    ]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain output without rich
        print(f"{'mode':<12} {'payload':<8} {'baat msg/s':>12} {'package msg/s':>14} {'ratio':>6}")
        for mode, label, baat, package in rows:
            print(f"{mode:<12} {label:<8} {baat:>12,.0f} {package:>14,.0f} {baat / package:>5.1f}x")
        print(f"PQXDH initiator {init_ms:.3f} ms, responder {resp_ms:.3f} ms")
        print("\n".join(verdicts))
        return
    table = Table(title="Double Ratchet: messages/s (encrypt + decrypt)")
    for name, justify in (
        ("mode", "left"),
        ("payload", "left"),
        ("Baat", "right"),
        ("doubleratchet", "right"),
        ("ratio", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for mode, label, baat, package in rows:
        table.add_row(mode, label, f"{baat:,.0f}", f"{package:,.0f}", f"{baat / package:.1f}x")
    handshake = Table(title="PQXDH (X25519 + ML-KEM-768), ms per call")
    handshake.add_column("side")
    handshake.add_column("ms", justify="right")
    handshake.add_row("initiator: verify bundle, agree, first encrypt", f"{init_ms:.3f}")
    handshake.add_row("responder: agree, first decrypt", f"{resp_ms:.3f}")
    console = Console()
    console.print(table)
    console.print(handshake)
    for line in verdicts:
        console.print(line)


if __name__ == "__main__":
    main()
