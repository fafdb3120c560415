"""Session records (several sessions per peer device, docs/CRYPTO.md §13), without a server.

The property test plays two devices that start sessions whenever they like (crossing each
other's), and a network that drops, duplicates and reorders; every message delivered at
least once must be read exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baat.crypto import (
    MAX_INACTIVE,
    PREKEY_KIND_CURVE_ONE_TIME,
    PREKEY_KIND_KEM_ONE_TIME,
    DecryptionError,
    DuplicateMessage,
    InvalidState,
    PrekeyBundle,
    SessionRecord,
    add_session,
    encrypt,
    initiate_session,
    record_decrypt,
    record_encrypt,
)
from crypto.crypto_helpers import NOW, Device


@dataclass
class Side:
    device: Device = field(default_factory=Device)
    record: SessionRecord | None = None
    read: list[bytes] = field(default_factory=list)

    def bundle(self) -> PrekeyBundle:
        """A bundle as the server hands it out: each one-time key at most once."""
        b = self.device.bundle()
        for key in (b.one_time_prekey, None if b.kem_last_resort else b.kem_prekey):
            if key is not None:
                self.device.public.pop((key.kind, key.key_id), None)
        return b


def start(me: Side, peer: Side) -> None:
    me.record = add_session(me.record, initiate_session(me.device.identity, peer.bundle(), NOW))


def send(me: Side, peer: Side, text: bytes) -> bytes:
    if me.record is None or me.record.active is None:
        start(me, peer)
    assert me.record is not None
    me.record, data = record_encrypt(me.record, text, NOW)
    return data


def receive(me: Side, data: bytes) -> bytes:
    result = record_decrypt(me.record, data, NOW, me.device.identity, me.device.lookup)
    me.record = result.record
    if result.used is not None:
        me.device.delete(result.used)
    me.read.append(result.plaintext)
    return result.plaintext


def active_base(side: Side) -> bytes:
    assert side.record is not None and side.record.active is not None
    return side.record.active.base_key


# -- the crossing rule -------------------------------------------------------------------


@pytest.mark.parametrize("first_reader", [0, 1])
def test_crossed_first_messages_converge(first_reader: int) -> None:
    alice, bob = Side(), Side()
    a1 = send(alice, bob, b"a1")
    b1 = send(bob, alice, b"b1")
    if first_reader == 0:
        assert receive(alice, b1) == b"b1"
        assert receive(bob, a1) == b"a1"
    else:
        assert receive(bob, a1) == b"a1"
        assert receive(alice, b1) == b"b1"
    # Both now agree on the session with the lower base key, before anyone replies.
    assert active_base(alice) == active_base(bob)
    a2 = send(alice, bob, b"a2")
    b2 = send(bob, alice, b"b2")
    assert receive(bob, a2) == b"a2"
    assert receive(alice, b2) == b"b2"
    assert active_base(alice) == active_base(bob)
    for i in range(20):
        assert receive(bob, send(alice, bob, b"x%d" % i)) == b"x%d" % i
        assert receive(alice, send(bob, alice, b"y%d" % i)) == b"y%d" % i
    assert active_base(alice) == active_base(bob)
    assert alice.record is not None and len(alice.record.inactive) == 1


def test_crossing_with_bursts_before_reading() -> None:
    alice, bob = Side(), Side()
    from_alice = [send(alice, bob, b"a%d" % i) for i in range(5)]
    from_bob = [send(bob, alice, b"b%d" % i) for i in range(5)]
    for a, b in zip(from_alice, from_bob, strict=True):
        receive(bob, a)
        receive(alice, b)
    assert bob.read == [b"a%d" % i for i in range(5)]
    assert alice.read == [b"b%d" % i for i in range(5)]
    assert active_base(alice) == active_base(bob)


def test_inactive_session_decrypts_and_becomes_active() -> None:
    alice, bob = Side(), Side()
    receive(bob, send(alice, bob, b"one"))
    receive(alice, send(bob, alice, b"two"))
    old = active_base(alice)
    late = send(alice, bob, b"late on the old session")
    # Alice starts over (say, after a retry request); Bob reads the new session first.
    start(alice, bob)
    receive(bob, send(alice, bob, b"fresh"))
    assert active_base(bob) != old
    receive(bob, late)
    assert bob.read[-1] == b"late on the old session"
    assert active_base(bob) == old  # Sesame: the peer sent on it, so answer on it
    receive(alice, send(bob, alice, b"answer"))
    assert alice.read[-1] == b"answer"


def test_inactive_list_is_bounded_and_oldest_dropped() -> None:
    alice, bob = Side(), Side()
    firsts = []
    sessions = []
    for i in range(MAX_INACTIVE + 3):
        start(alice, bob)
        assert alice.record is not None and alice.record.active is not None
        sessions.append(alice.record.active)
        firsts.append(send(alice, bob, b"s%d" % i))
        receive(bob, firsts[-1])
    assert bob.record is not None and alice.record is not None
    assert len(bob.record.inactive) == MAX_INACTIVE == len(alice.record.inactive)
    # A kept session still knows its messages; a dropped one is gone, and every session
    # is tried (and refuses) before the message is reported.
    with pytest.raises(DuplicateMessage):
        receive(bob, firsts[-2])
    dropped = msgspec.structs.replace(sessions[0], pending_initial=None)
    _, lost = encrypt(dropped, b"lost", NOW)
    with pytest.raises(DecryptionError, match="41 tried"):
        receive(bob, lost)


def test_record_round_trip_and_legacy_blob() -> None:
    alice, bob = Side(), Side()
    receive(bob, send(alice, bob, b"hi"))
    assert bob.record is not None and bob.record.active is not None
    again = SessionRecord.from_bytes(bob.record.to_bytes())
    assert again == bob.record
    # Before records, the stored blob was one SessionState: it becomes the active session.
    legacy = SessionRecord.from_bytes(bob.record.active.to_bytes())
    assert legacy.active == bob.record.active and legacy.inactive == ()
    with pytest.raises(InvalidState):
        SessionRecord.from_bytes(b"\x00garbage")
    with pytest.raises(InvalidState):
        record_encrypt(SessionRecord(), b"x", NOW)


# -- any interleaving ----------------------------------------------------------------------


@dataclass
class Flight:
    to: int
    data: bytes
    text: bytes


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.data())
def test_any_interleaving_reads_every_delivered_message_once(data: st.DataObject) -> None:
    sides = [Side(), Side()]
    for s in sides:  # enough one-time keys for several starts
        for key_id in range(20, 26):
            s.device.add(PREKEY_KIND_CURVE_ONE_TIME, key_id)
            s.device.add(PREKEY_KIND_KEM_ONE_TIME, key_id)
    network: list[Flight] = []
    delivered: set[bytes] = set()
    undelivered: list[Flight] = []  # delivered once but not readable yet: the retry path
    counter = 0

    def attempt(f: Flight) -> None:
        delivered.add(f.text)
        try:
            receive(sides[f.to], f.data)
        except DuplicateMessage:
            assert f.text in sides[f.to].read
        except DecryptionError:
            undelivered.append(f)

    for _ in range(data.draw(st.integers(2, 30), label="steps")):
        action = data.draw(st.sampled_from(["send", "send", "start", "deliver", "deliver"]))
        who = data.draw(st.integers(0, 1), label="who")
        if action == "start":
            start(sides[who], sides[1 - who])
        elif action == "send":
            counter += 1
            text = b"m%d" % counter
            network.append(Flight(1 - who, send(sides[who], sides[1 - who], text), text))
        elif network:
            i = data.draw(st.integers(0, len(network) - 1), label="pick")
            fate = data.draw(st.sampled_from(["deliver", "duplicate", "drop"]), label="fate")
            f = network.pop(i) if fate != "duplicate" else network[i]
            if fate != "drop":
                attempt(f)
    # The network settles: what is still in flight arrives (in any order it was sent), and
    # what could not be read is tried again, as a re-send after a retry request would be.
    for f in network:
        attempt(f)
    for _ in range(3):
        pending, undelivered[:] = list(undelivered), []
        for f in pending:
            attempt(f)
    for s in sides:
        assert len(s.read) == len(set(s.read)), "a message was read twice"
    read = set(sides[0].read) | set(sides[1].read)
    assert delivered <= read, f"never readable: {sorted(delivered - read)}"
