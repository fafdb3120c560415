"""Group state: role rules for every event, error codes, concurrency, sender key plans."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baat.client.groups import (
    MAX_MEMBERS,
    AddMembers,
    AlreadyMember,
    CreateGroup,
    FutureVersion,
    GroupError,
    GroupEvent,
    GroupState,
    InvalidGroupEvent,
    LeaveGroup,
    NotAdmin,
    NotMember,
    PromoteAdmins,
    RemoveMembers,
    RenameGroup,
    StaleVersion,
    UnknownGroup,
    apply,
    create_group,
    decode_event,
    encode_event,
    event_digest,
    replay,
    sender_key_recipients,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GID = bytes(range(16))


def group() -> GroupState:
    """alice (creator, admin), bob (admin), carol, dave: version 2."""
    state = apply(
        None,
        CreateGroup(group_id=GID, version=0, name="Team", members=("bob", "carol", "dave")),
        "alice",
    )
    return apply(state, PromoteAdmins(group_id=GID, version=1, members=("bob",)), "alice")


def code_of(state: GroupState | None, event: GroupEvent, actor: str) -> str:
    try:
        apply(state, event, actor)
    except GroupError as exc:
        return exc.code
    return "ok"


def test_create() -> None:
    event = create_group("Friends", ["bob", "carol"])
    assert len(event.group_id) == 16 and event.version == 0
    state = apply(None, event, "alice")
    assert state.creator == "alice"
    assert state.members == ("alice", "bob", "carol")
    assert state.admins == ("alice",)
    assert (state.name, state.version) == ("Friends", 1)
    assert state.is_admin("alice") and not state.is_admin("bob") and state.is_member("bob")
    assert apply(None, create_group("Solo"), "alice").members == ("alice",)
    assert create_group("x").group_id != event.group_id


@pytest.mark.parametrize(
    ("event", "code"),
    [
        (CreateGroup(group_id=b"short", version=0, name="x"), "invalid_event"),
        (CreateGroup(group_id=GID, version=1, name="x"), "invalid_event"),
        (CreateGroup(group_id=GID, version=0, name=" "), "invalid_event"),
        (CreateGroup(group_id=GID, version=0, name="x" * 129), "invalid_event"),
        (CreateGroup(group_id=GID, version=0, name="x", members=("b", "b")), "invalid_event"),
        (CreateGroup(group_id=GID, version=0, name="x", members=("",)), "invalid_event"),
        (CreateGroup(group_id=GID, version=0, name="x", members=("alice",)), "already_member"),
        (
            CreateGroup(
                group_id=GID, version=0, name="x", members=tuple(map(str, range(MAX_MEMBERS)))
            ),
            "invalid_event",
        ),
    ],
)
def test_create_refused(event: CreateGroup, code: str) -> None:
    assert code_of(None, event, "alice") == code


def test_create_over_existing_group() -> None:
    assert (
        code_of(group(), CreateGroup(group_id=GID, version=0, name="x"), "alice") == "invalid_event"
    )
    assert code_of(None, create_group("x"), "") == "invalid_event"


# Every admin-only event, built for a given version.
ADMIN_EVENTS: dict[str, Callable[[int], GroupEvent]] = {
    "add": lambda v: AddMembers(group_id=GID, version=v, members=("erin",)),
    "remove": lambda v: RemoveMembers(group_id=GID, version=v, members=("dave",)),
    "rename": lambda v: RenameGroup(group_id=GID, version=v, name="New name"),
    "promote": lambda v: PromoteAdmins(group_id=GID, version=v, members=("dave",)),
}


@pytest.mark.parametrize("kind", sorted(ADMIN_EVENTS))
def test_admin_events_roles(kind: str) -> None:
    state = group()
    event = ADMIN_EVENTS[kind](state.version)
    assert code_of(state, event, "alice") == "ok"
    assert code_of(state, event, "bob") == "ok"  # a promoted admin has the same rights
    assert code_of(state, event, "carol") == "not_admin"
    assert code_of(state, event, "mallory") == "not_member"
    assert code_of(None, event, "alice") == "unknown_group"
    other = msgspec.structs.replace(event, group_id=bytes(16))
    assert code_of(state, other, "alice") == "unknown_group"
    assert code_of(state, ADMIN_EVENTS[kind](state.version - 1), "alice") == "stale_version"
    assert code_of(state, ADMIN_EVENTS[kind](state.version + 1), "alice") == "future_version"
    assert apply(state, event, "alice").version == state.version + 1


def test_leave_roles() -> None:
    state = group()
    leave = LeaveGroup(group_id=GID, version=state.version)
    for member in state.members:
        assert code_of(state, leave, member) == "ok"
    assert code_of(state, leave, "mallory") == "not_member"
    assert code_of(None, leave, "carol") == "unknown_group"
    assert code_of(state, LeaveGroup(group_id=GID, version=1), "carol") == "stale_version"
    after = apply(state, leave, "carol")
    assert after.members == ("alice", "bob", "dave") and after.admins == ("alice", "bob")


def test_event_effects() -> None:
    state = group()
    v = state.version
    added = apply(state, AddMembers(group_id=GID, version=v, members=("frank", "erin")), "bob")
    assert added.members[-2:] == ("frank", "erin")  # joining order kept
    removed = apply(state, RemoveMembers(group_id=GID, version=v, members=("bob", "dave")), "alice")
    assert removed.members == ("alice", "carol") and removed.admins == ("alice",)
    renamed = apply(state, RenameGroup(group_id=GID, version=v, name="Crew"), "alice")
    assert renamed.name == "Crew" and renamed.members == state.members
    promoted = apply(
        state, PromoteAdmins(group_id=GID, version=v, members=("dave", "carol")), "bob"
    )
    assert promoted.admins == ("alice", "bob", "carol", "dave")
    assert state.version == v  # the input is never changed


@pytest.mark.parametrize(
    ("event", "code"),
    [
        (AddMembers(group_id=GID, version=2, members=("carol",)), "already_member"),
        (AddMembers(group_id=GID, version=2, members=()), "invalid_event"),
        (AddMembers(group_id=GID, version=2, members=("erin", "erin")), "invalid_event"),
        (AddMembers(group_id=GID, version=2, members=("x" * 65,)), "invalid_event"),
        (
            AddMembers(group_id=GID, version=2, members=tuple(map(str, range(MAX_MEMBERS - 3)))),
            "invalid_event",
        ),
        (RemoveMembers(group_id=GID, version=2, members=("mallory",)), "not_member"),
        (RemoveMembers(group_id=GID, version=2, members=("alice",)), "invalid_event"),
        (RenameGroup(group_id=GID, version=2, name=""), "invalid_event"),
        (PromoteAdmins(group_id=GID, version=2, members=("bob",)), "invalid_event"),
        (PromoteAdmins(group_id=GID, version=2, members=("mallory",)), "not_member"),
    ],
)
def test_invalid_events(event: GroupEvent, code: str) -> None:
    assert code_of(group(), event, "alice") == code


def test_error_classes_carry_stable_codes() -> None:
    pairs = [
        (NotAdmin, "not_admin"),
        (NotMember, "not_member"),
        (UnknownGroup, "unknown_group"),
        (StaleVersion, "stale_version"),
        (FutureVersion, "future_version"),
        (AlreadyMember, "already_member"),
        (InvalidGroupEvent, "invalid_event"),
        (GroupError, "invalid_event"),
    ]
    for cls, code in pairs:
        assert cls.code == code and issubclass(cls, ValueError)


def test_last_admin_leaving_promotes_oldest_member() -> None:
    state = apply(
        None, CreateGroup(group_id=GID, version=0, name="x", members=("bob", "carol")), "alice"
    )
    state = apply(state, AddMembers(group_id=GID, version=1, members=("dave",)), "alice")
    state = apply(state, LeaveGroup(group_id=GID, version=2), "alice")
    assert state.members == ("bob", "carol", "dave") and state.admins == ("bob",)
    assert state.creator == "alice"  # history, not a role
    state = apply(state, LeaveGroup(group_id=GID, version=3), "bob")
    assert state.admins == ("carol",)
    state = apply(state, LeaveGroup(group_id=GID, version=4), "dave")  # not an admin
    assert state.admins == ("carol",)
    state = apply(state, LeaveGroup(group_id=GID, version=5), "carol")
    assert state.members == () and state.admins == ()
    assert code_of(state, LeaveGroup(group_id=GID, version=6), "carol") == "not_member"


def test_an_admin_leaving_with_other_admins_promotes_nobody() -> None:
    state = group()
    after = apply(state, LeaveGroup(group_id=GID, version=state.version), "alice")
    assert after.admins == ("bob",)


def test_records_round_trip() -> None:
    state = group()
    assert GroupState.from_bytes(state.to_bytes()) == state
    events = [
        create_group("x", ["b"]),
        *(make(3) for make in ADMIN_EVENTS.values()),
        LeaveGroup(group_id=GID, version=3),
    ]
    for event in events:
        blob = encode_event(event)
        assert decode_event(blob) == event
        assert encode_event(decode_event(blob)) == blob
        assert len(event_digest(event)) == 32
    for bad in (b"", b"\xc1", msgspec.msgpack.encode({"format": 2, "type": "leave"})):
        with pytest.raises(InvalidGroupEvent):
            decode_event(bad)
        with pytest.raises(InvalidGroupEvent):
            GroupState.from_bytes(bad)
    with pytest.raises(InvalidGroupEvent):
        decode_event(msgspec.msgpack.encode({"format": 1, "type": "explode"}))
    with pytest.raises(InvalidGroupEvent):
        GroupState.from_bytes(msgspec.msgpack.encode({"format": 1}))


# -- Concurrency ------------------------------------------------------------------------------


def test_concurrent_edits_resolve_the_same_everywhere() -> None:
    base = group()
    v = base.version
    by_alice = (RenameGroup(group_id=GID, version=v, name="Alice's"), "alice")
    by_bob = (RemoveMembers(group_id=GID, version=v, members=("carol",)), "bob")
    one, refused_one = replay(base, [by_alice, by_bob])
    two, refused_two = replay(base, [by_bob, by_alice])
    assert one == two
    assert one is not None and one.name == "Alice's" and "carol" in one.members  # "alice" < "bob"
    assert [(e, a, err.code) for e, a, err in refused_one] == [(*by_bob, "stale_version")]
    assert [r[:2] for r in refused_two] == [by_bob]
    # Bob re-issues against the new version; everyone applies it.
    again = (RemoveMembers(group_id=GID, version=one.version, members=("carol",)), "bob")
    final, refused = replay(base, [again, by_bob, by_alice, by_alice])
    assert final is not None and final.members == ("alice", "bob", "dave") and len(refused) == 1


@SETTINGS
@given(st.data())
def test_replay_is_order_independent(data: st.DataObject) -> None:
    base = group()
    actors = ["alice", "bob", "carol", "dave", "mallory"]
    pool: list[tuple[GroupEvent, str]] = []
    for _ in range(data.draw(st.integers(1, 8), label="events")):
        version = data.draw(st.integers(base.version, base.version + 3), label="version")
        kind = data.draw(st.sampled_from([*sorted(ADMIN_EVENTS), "leave"]), label="kind")
        event = (
            LeaveGroup(group_id=GID, version=version)
            if kind == "leave"
            else ADMIN_EVENTS[kind](version)
        )
        pool.append((event, data.draw(st.sampled_from(actors), label="actor")))
    order = data.draw(st.permutations(pool), label="arrival")
    first, refused_first = replay(base, pool)
    second, refused_second = replay(base, order)
    assert first == second
    assert [r[:2] for r in refused_first] == [r[:2] for r in refused_second]
    # Incremental application in arrival order, re-running replay on each arrival, agrees.
    seen: list[tuple[GroupEvent, str]] = []
    for item in order:
        seen.append(item)
        current, _ = replay(base, seen)
    assert current == first


# -- Sender keys after a change ---------------------------------------------------------------

DEVICES = {"alice": [1, 2], "bob": [1], "carol": [1, 3], "dave": [1]}


def test_removal_rotates_and_reaches_every_remaining_device() -> None:
    before = group()
    after = apply(before, RemoveMembers(group_id=GID, version=2, members=("carol",)), "alice")
    plan = sender_key_recipients(before, after, DEVICES, self_account="alice", self_device=1)
    assert plan.rotate
    assert plan.recipients == (("alice", 2), ("bob", 1), ("dave", 1))
    left = apply(before, LeaveGroup(group_id=GID, version=2), "dave")
    assert sender_key_recipients(before, left, DEVICES, self_account="bob", self_device=1).rotate


def test_addition_sends_the_current_key_to_newcomers_only() -> None:
    before = group()
    after = apply(before, AddMembers(group_id=GID, version=2, members=("erin",)), "alice")
    devices = {**DEVICES, "erin": [4, 1]}
    plan = sender_key_recipients(before, after, devices, self_account="bob", self_device=1)
    assert not plan.rotate
    assert plan.recipients == (("erin", 1), ("erin", 4))


def test_device_changes() -> None:
    state = group()
    more = {**DEVICES, "dave": [1, 7]}
    plan = sender_key_recipients(
        state, state, more, self_account="alice", self_device=1, previous_devices=DEVICES
    )
    assert plan == (False, (("dave", 7),))
    fewer = {**DEVICES, "carol": [1]}
    plan = sender_key_recipients(
        state, state, fewer, self_account="alice", self_device=1, previous_devices=DEVICES
    )
    assert plan.rotate and ("carol", 3) not in plan.recipients and ("alice", 2) in plan.recipients
    assert sender_key_recipients(state, state, DEVICES, self_account="alice", self_device=1) == (
        False,
        (),
    )


def test_joining_creating_and_leaving() -> None:
    before = group()
    created = sender_key_recipients(None, before, DEVICES, self_account="carol", self_device=3)
    assert created == (False, (("alice", 1), ("alice", 2), ("bob", 1), ("carol", 1), ("dave", 1)))
    after = apply(before, AddMembers(group_id=GID, version=2, members=("erin",)), "alice")
    joined = sender_key_recipients(
        before, after, {**DEVICES, "erin": [1]}, self_account="erin", self_device=1
    )
    assert not joined.rotate and len(joined.recipients) == 6
    gone = apply(before, LeaveGroup(group_id=GID, version=2), "carol")
    assert sender_key_recipients(before, gone, DEVICES, self_account="carol", self_device=1) == (
        False,
        (),
    )
