"""The cores of the limits on a fake clock: the address limiter, the region request
verifier, the served-prefix tracker, and the send quotas on the real store over in-memory
SQLite. Their real-process tests are in ``test_admission_e2e.py``, ``test_regions_e2e.py``,
``test_blob_fetch_count_e2e.py`` and ``test_quotas_e2e.py``."""

from __future__ import annotations

import os

import pytest

from baat.proto import OutgoingEnvelope
from baat.server.admission import AddressLimiter, address_key
from baat.server.blob_progress import ServedPrefixes
from baat.server.quotas import QuotaExceeded, SendQuotas
from baat.server.regions.signing import (
    BadRegionSignature,
    RegionSigner,
    RegionVerifier,
    load_private_key,
    new_private_key_text,
)
from baat.server.storage.base import QueuedEnvelope
from baat.testing import FakeClock, memory_store


def test_address_keys() -> None:
    assert address_key("127.0.0.2") == "127.0.0.2"
    # One host usually holds a whole /64: it is one address for the limits.
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert address_key("2001:db8:0:1::1") != address_key("2001:db8::1")
    assert address_key("::ffff:10.0.0.1") == "10.0.0.1"
    assert address_key(None) == "unknown"


def test_per_address_share_under_a_ceiling_with_sliding_windows() -> None:
    clock = FakeClock()
    limiter = AddressLimiter(2, 5, clock=clock)
    assert [limiter.charge("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.charge("a") == pytest.approx(60.0)
    assert limiter.charge("b") == limiter.charge("c") == 0.0
    clock.advance(10)
    assert limiter.charge("d") == 0.0
    # The ceiling (5) is reached by several addresses together; a refusal charges nothing.
    assert limiter.charge("e") == pytest.approx(50.0)
    assert limiter.charge("e") == pytest.approx(50.0)
    clock.advance(50)
    assert limiter.charge("e") == 0.0 and limiter.charge("a") == 0.0
    # One address never gets more than half of the ceiling, whatever it is given.
    assert AddressLimiter(100, 10).per_address == 5
    with pytest.raises(ValueError):
        AddressLimiter(0, 10)


def make_signer() -> RegionSigner:
    return RegionSigner(load_private_key(new_private_key_text()))


def test_region_signatures_name_the_caller_and_refuse_replays() -> None:
    clock = FakeClock(1_700_000_000.0)
    eu, us, stranger = make_signer(), make_signer(), make_signer()
    verifier = RegionVerifier("in", {"eu": eu.public_key, "us": us.public_key}, clock=clock)
    header = eu.header("in", "POST", "/v1/regions/send", b"body", now=clock())
    assert verifier.caller(header, "POST", "/v1/regions/send", b"body") == "eu"
    with pytest.raises(BadRegionSignature) as info:
        verifier.caller(header, "POST", "/v1/regions/send", b"body")
    assert info.value.code == "replayed_request"
    cases = [
        (eu.header("in", "POST", "/p", b"a", now=clock()), "POST", "/p", b"b", "unauthorized"),
        (eu.header("in", "POST", "/p", b"", now=clock()), "GET", "/p", b"", "unauthorized"),
        (eu.header("us", "GET", "/p", now=clock()), "GET", "/p", b"", "unauthorized"),
        (stranger.header("in", "GET", "/p", now=clock()), "GET", "/p", b"", "unknown_region"),
        (eu.header("in", "GET", "/p", now=clock() - 61), "GET", "/p", b"", "stale_request"),
        (eu.header("in", "GET", "/p", now=clock() + 61), "GET", "/p", b"", "stale_request"),
        ("key=a, time=1", "GET", "/p", b"", "unauthorized"),
        ("", "GET", "/p", b"", "unauthorized"),
    ]
    for value, method, path, body, code in cases:
        with pytest.raises(BadRegionSignature) as info:
            verifier.caller(value, method, path, body)
        assert info.value.code == code, value
    # The fetcher a blob is streamed for is signed too.
    header = us.header("in", "GET", "/b", fetcher="us-1.2", now=clock())
    with pytest.raises(BadRegionSignature):
        verifier.caller(header, "GET", "/b", b"", fetcher="us-9.9")
    clock.advance(30)
    assert verifier.caller(us.header("in", "GET", "/b", now=clock()), "GET", "/b", b"") == "us"


def test_served_prefixes_count_only_a_gap_free_whole() -> None:
    served = ServedPrefixes(max_tracked=2)
    key = ("blob", "acct", 1)
    served.advance(key, 90, 100)  # the end alone
    assert not served.complete(key, 100) and served.served(key) == 0
    served.advance(key, 0, 40)
    served.advance(key, 30, 70)  # overlapping resumption
    assert served.served(key) == 70 and not served.complete(key, 100)
    served.advance(key, 70, 100)
    assert served.complete(key, 100) and served.served(key) == 0  # forgotten once counted
    # Bounded: the oldest progress is dropped first.
    for i in range(3):
        served.advance(("b", "a", i), 0, 10)
    assert served.served(("b", "a", 0)) == 0 and served.served(("b", "a", 2)) == 10


def queued(n: int, size: int = 10) -> list[QueuedEnvelope]:
    return [
        QueuedEnvelope(os.urandom(16), "bob", 1, "alice", 1, f"m{i}", b"x" * size, 0)
        for i in range(n)
    ]


async def test_send_quotas_read_the_queue_and_charge_only_what_they_accept() -> None:
    store = await memory_store()
    try:
        clock = FakeClock()
        quotas = SendQuotas(
            store.engine, max_queued_envelopes=5, max_queued_bytes=100, per_second=1, clock=clock
        )
        stored = queued(4)
        await store.enqueue(stored)
        to_bob = [OutgoingEnvelope("bob", 1, b"y" * 10)]
        await quotas.check("alice", to_bob, online=set())  # 4 + 1 = 5: fits
        with pytest.raises(QuotaExceeded) as info:
            await quotas.check("carol", to_bob, online=set())  # 6: refused, not charged
        assert info.value.code == "recipient_queue_full" and info.value.retry_after_ms > 0
        # Connected here: its queue drains as it acknowledges, so it is not checked.
        await quotas.check("carol", to_bob, online={("bob", 1)})
        # Bytes count as well as envelopes.
        with pytest.raises(QuotaExceeded):
            await quotas.check("dan", [OutgoingEnvelope("eve", 1, b"z" * 101)], online=set())
        # Bob acknowledges: within a second the cached size still refuses, after it the
        # queue is read again before refusing.
        await store.delete_envelopes("bob", 1, [e.guid for e in stored])
        with pytest.raises(QuotaExceeded):
            await quotas.check("carol", to_bob, online=set())
        clock.advance(1.5)
        await quotas.check("carol", to_bob, online=set())
        # The rate from one account to one device: bursts of ten, then one a second.
        for _ in range(8):
            await quotas.check("frank", [OutgoingEnvelope("gus", 1, b".")], online={("gus", 1)})
        with pytest.raises(QuotaExceeded) as info:
            await quotas.check("frank", [OutgoingEnvelope("gus", 1, b".")] * 3, online=set())
        assert info.value.code == "recipient_rate_limited"
        assert info.value.retry_after_ms == 1001
        clock.advance(1)
        await quotas.check("frank", [OutgoingEnvelope("gus", 1, b".")] * 3, online={("gus", 1)})
    finally:
        await store.close()
