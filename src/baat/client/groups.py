"""Group state and group management events: pure functions, no storage and no IO.

A group is a random 16-byte id, a name, its members (account ids, oldest first), its admins,
its creator and a version that every applied event increases by one. Management events
(:class:`CreateGroup`, :class:`AddMembers`, :class:`RemoveMembers`, :class:`LeaveGroup`,
:class:`RenameGroup`, :class:`PromoteAdmins`) travel end-to-end encrypted over the pairwise
sessions, like any other message, and are not signed: the pairwise session already
authenticates the sending device, and the account that device belongs to is the *actor*
passed to :func:`apply`, never a field of the event. The price is that an event cannot be
forwarded with proof of its author, so every admin sends its events to every member itself.

Rules (:func:`apply`): admins add and remove members, rename the group and promote members to
admins; anyone may leave; when the last admin leaves, the oldest remaining member becomes an
admin. A refused event raises a :class:`GroupError` whose ``code`` is stable.

Concurrency: an event names the group version it was written against and applies only to
exactly that version. Two admins who both edit version ``v`` produce two events for ``v``;
:func:`replay` orders any set of events by ``(version, actor, digest)`` and applies each one
that is valid at that point, so every device that holds the same events reaches the same
state whatever order they arrived in. The event that sorts first wins; the other is stale
and its author may re-issue it against the new version. See docs/GROUPS.md.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection, Iterable, Mapping
from typing import ClassVar, Final, NamedTuple

import msgspec

__all__ = [
    "GROUP_ID_BYTES",
    "GROUP_RECORD_FORMAT",
    "MAX_MEMBERS",
    "AddMembers",
    "AlreadyMember",
    "CreateGroup",
    "FutureVersion",
    "GroupError",
    "GroupEvent",
    "GroupState",
    "InvalidGroupEvent",
    "LeaveGroup",
    "NotAdmin",
    "NotMember",
    "PromoteAdmins",
    "RemoveMembers",
    "RenameGroup",
    "SenderKeyPlan",
    "StaleVersion",
    "UnknownGroup",
    "apply",
    "create_group",
    "decode_event",
    "encode_event",
    "event_digest",
    "new_group_id",
    "replay",
    "sender_key_recipients",
]

GROUP_ID_BYTES: Final = 16
GROUP_RECORD_FORMAT: Final = 1
MAX_MEMBERS: Final = 1024
MAX_NAME_CHARS: Final = 128
MAX_ACCOUNT_ID_CHARS: Final = 64


# -- Errors -----------------------------------------------------------------------------------


class GroupError(ValueError):
    """An event that cannot be applied. ``code`` is stable; the message is for people."""

    code: ClassVar[str] = "invalid_event"


class NotAdmin(GroupError):
    """The actor is a member but the event needs an admin."""

    code = "not_admin"


class NotMember(GroupError):
    """The actor, or a member the event names, is not in the group."""

    code = "not_member"


class UnknownGroup(GroupError):
    """No state for the event's group (or the state is of another group)."""

    code = "unknown_group"


class StaleVersion(GroupError):
    """The event was written against an older version: another edit came first."""

    code = "stale_version"


class FutureVersion(GroupError):
    """The event is for a version not reached yet: keep it and retry after earlier events."""

    code = "future_version"


class AlreadyMember(GroupError):
    """Adding (or creating with) an account that is already a member."""

    code = "already_member"


class InvalidGroupEvent(GroupError):
    """Anything else: bad sizes, empty lists, promoting an admin, removing oneself."""

    code = "invalid_event"


# -- Records ----------------------------------------------------------------------------------


class GroupState(msgspec.Struct, frozen=True, kw_only=True):
    """One group as this device knows it. ``members`` is in joining order (oldest first);
    ``admins`` is sorted. Empty ``members`` means everyone left."""

    format: int = GROUP_RECORD_FORMAT
    group_id: bytes
    name: str
    creator: str
    members: tuple[str, ...]
    admins: tuple[str, ...]
    version: int

    def is_member(self, account_id: str) -> bool:
        return account_id in self.members

    def is_admin(self, account_id: str) -> bool:
        return account_id in self.admins

    def to_bytes(self) -> bytes:
        """MessagePack, ``format`` first. Raises: nothing."""
        return _ENCODER.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> GroupState:
        """Inverse of :meth:`to_bytes`.

        Raises:
            InvalidGroupEvent: corrupt bytes or a format other than 1.
        """
        _check_format(data)
        try:
            return _STATE_DECODER.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidGroupEvent("corrupt group state") from exc


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    format: int = GROUP_RECORD_FORMAT
    group_id: bytes
    version: int
    """The group version this event applies to (0 for :class:`CreateGroup`)."""


class CreateGroup(_Event, frozen=True, kw_only=True, tag="create"):
    """The actor creates the group, becomes its first member and only admin."""

    name: str
    members: tuple[str, ...] = ()
    """The other initial members, in this order."""


class AddMembers(_Event, frozen=True, kw_only=True, tag="add"):
    members: tuple[str, ...]


class RemoveMembers(_Event, frozen=True, kw_only=True, tag="remove"):
    members: tuple[str, ...]


class LeaveGroup(_Event, frozen=True, kw_only=True, tag="leave"):
    pass


class RenameGroup(_Event, frozen=True, kw_only=True, tag="rename"):
    name: str


class PromoteAdmins(_Event, frozen=True, kw_only=True, tag="promote"):
    members: tuple[str, ...]


GroupEvent = CreateGroup | AddMembers | RemoveMembers | LeaveGroup | RenameGroup | PromoteAdmins


class _FormatProbe(msgspec.Struct):
    format: int = -1


_ENCODER = msgspec.msgpack.Encoder()
_PROBE = msgspec.msgpack.Decoder(_FormatProbe)
_STATE_DECODER = msgspec.msgpack.Decoder(GroupState)
_EVENT_DECODER: msgspec.msgpack.Decoder[GroupEvent] = msgspec.msgpack.Decoder(GroupEvent)


def _check_format(data: bytes) -> None:
    try:
        found = _PROBE.decode(data).format
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidGroupEvent("not a group record") from exc
    if found != GROUP_RECORD_FORMAT:
        raise InvalidGroupEvent(f"group record format {found} is not supported")


def encode_event(event: GroupEvent) -> bytes:
    """MessagePack with a ``type`` tag; the plaintext of a pairwise message. Raises: nothing."""
    return _ENCODER.encode(event)


def decode_event(data: bytes) -> GroupEvent:
    """Inverse of :func:`encode_event`.

    Raises:
        InvalidGroupEvent: corrupt bytes, an unknown type or a format other than 1.
    """
    _check_format(data)
    try:
        return _EVENT_DECODER.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidGroupEvent("corrupt group event") from exc


def event_digest(event: GroupEvent) -> bytes:
    """SHA-256 of the encoded event: breaks ties between concurrent events. Raises: nothing."""
    return hashlib.sha256(encode_event(event)).digest()


# -- Applying events --------------------------------------------------------------------------


def new_group_id() -> bytes:
    """16 random bytes."""
    return secrets.token_bytes(GROUP_ID_BYTES)


def create_group(name: str, members: Iterable[str] = ()) -> CreateGroup:
    """A :class:`CreateGroup` event with a fresh id; apply it with the creator as actor."""
    return CreateGroup(group_id=new_group_id(), version=0, name=name, members=tuple(members))


def apply(state: GroupState | None, event: GroupEvent, actor: str) -> GroupState:
    """Apply one event sent by ``actor`` (the account authenticated by the pairwise session).

    Checks, in this order: the group is known (``unknown_group``); the event is for the
    current version (``stale_version`` / ``future_version``); the actor is a member
    (``not_member``) and, except for leaving, an admin (``not_admin``); then the
    event's own fields. Returns a new state with ``version + 1``.

    Raises:
        GroupError: one of its subclasses, with the codes above, ``already_member`` or
            ``invalid_event``. ``state`` is never changed.
    """
    _check_account(actor)
    if isinstance(event, CreateGroup):
        return _create(state, event, actor)
    if state is None or state.group_id != event.group_id:
        raise UnknownGroup("no such group")
    if event.version < state.version:
        raise StaleVersion(f"event for version {event.version}, group is at {state.version}")
    if event.version > state.version:
        raise FutureVersion(f"event for version {event.version}, group is at {state.version}")
    if actor not in state.members:
        raise NotMember(f"{actor} is not a member")
    if isinstance(event, LeaveGroup):
        return _leave(state, actor)
    if actor not in state.admins:
        raise NotAdmin(f"{actor} is not an admin")
    if isinstance(event, RenameGroup):
        return _next(state, name=_check_name(event.name))
    targets = _check_targets(event.members)
    if isinstance(event, AddMembers):
        present = [m for m in targets if m in state.members]
        if present:
            raise AlreadyMember(f"already members: {', '.join(present)}")
        members = state.members + targets
        if len(members) > MAX_MEMBERS:
            raise InvalidGroupEvent(f"a group has at most {MAX_MEMBERS} members")
        return _next(state, members=members)
    missing = [m for m in targets if m not in state.members]
    if missing:
        raise NotMember(f"not members: {', '.join(missing)}")
    if isinstance(event, RemoveMembers):
        if actor in targets:
            raise InvalidGroupEvent("leave the group instead of removing yourself")
        gone = set(targets)
        return _next(
            state,
            members=tuple(m for m in state.members if m not in gone),
            admins=tuple(a for a in state.admins if a not in gone),
        )
    # PromoteAdmins
    promoted = [m for m in targets if m in state.admins]
    if promoted:
        raise InvalidGroupEvent(f"already admins: {', '.join(promoted)}")
    return _next(state, admins=tuple(sorted({*state.admins, *targets})))


def replay(
    state: GroupState | None, events: Iterable[tuple[GroupEvent, str]]
) -> tuple[GroupState | None, tuple[tuple[GroupEvent, str, GroupError], ...]]:
    """Apply ``(event, actor)`` pairs in the deterministic order, skipping refused ones.

    Order: group version the event names, then actor id, then :func:`event_digest`;
    identical pairs count once. Devices that start from the same ``state`` and hold the same
    set of events reach the same result, whatever order the events arrived in. Returns the
    final state and the refused events with their errors (the losers of concurrent edits
    come back as ``stale_version``).

    Raises: nothing (refusals are returned).
    """
    keyed = {(e.version, actor, event_digest(e)): (e, actor) for e, actor in events}
    refused: list[tuple[GroupEvent, str, GroupError]] = []
    for key in sorted(keyed):
        event, actor = keyed[key]
        try:
            state = apply(state, event, actor)
        except GroupError as exc:
            refused.append((event, actor, exc))
    return state, tuple(refused)


def _create(state: GroupState | None, event: CreateGroup, actor: str) -> GroupState:
    if state is not None:
        raise InvalidGroupEvent("the group exists already")
    if len(event.group_id) != GROUP_ID_BYTES:
        raise InvalidGroupEvent("a group id is 16 bytes")
    if event.version != 0:
        raise InvalidGroupEvent("a creation event is for version 0")
    others = _check_targets(event.members, allow_empty=True)
    if actor in others:
        raise AlreadyMember("the creator is a member already")
    if len(others) + 1 > MAX_MEMBERS:
        raise InvalidGroupEvent(f"a group has at most {MAX_MEMBERS} members")
    return GroupState(
        group_id=event.group_id,
        name=_check_name(event.name),
        creator=actor,
        members=(actor, *others),
        admins=(actor,),
        version=1,
    )


def _leave(state: GroupState, actor: str) -> GroupState:
    members = tuple(m for m in state.members if m != actor)
    admins = tuple(a for a in state.admins if a != actor)
    if not admins and members:
        admins = (members[0],)  # the last admin left: the oldest member takes over
    return _next(state, members=members, admins=admins)


def _next(
    state: GroupState,
    *,
    name: str | None = None,
    members: tuple[str, ...] | None = None,
    admins: tuple[str, ...] | None = None,
) -> GroupState:
    return msgspec.structs.replace(
        state,
        name=state.name if name is None else name,
        members=state.members if members is None else members,
        admins=state.admins if admins is None else admins,
        version=state.version + 1,
    )


def _check_account(account_id: str) -> None:
    if not 0 < len(account_id) <= MAX_ACCOUNT_ID_CHARS:
        raise InvalidGroupEvent(f"an account id has 1 to {MAX_ACCOUNT_ID_CHARS} characters")


def _check_name(name: str) -> str:
    if not name.strip() or len(name) > MAX_NAME_CHARS:
        raise InvalidGroupEvent(f"a group name has 1 to {MAX_NAME_CHARS} characters")
    return name


def _check_targets(members: tuple[str, ...], *, allow_empty: bool = False) -> tuple[str, ...]:
    if not members and not allow_empty:
        raise InvalidGroupEvent("the event names no member")
    if len(set(members)) != len(members):
        raise InvalidGroupEvent("a member is named twice")
    if len(members) > MAX_MEMBERS:
        raise InvalidGroupEvent(f"a group has at most {MAX_MEMBERS} members")
    for member in members:
        _check_account(member)
    return members


# -- Sender keys after a change ---------------------------------------------------------------


class SenderKeyPlan(NamedTuple):
    """What this device does with its sender key after a change."""

    rotate: bool
    """Make a new sender key first (someone who could read the old one must not read on)."""
    recipients: tuple[tuple[str, int], ...]
    """``(account id, device id)`` pairs that must receive the (new or current) sender key."""


def sender_key_recipients(
    before: GroupState | None,
    after: GroupState,
    devices: Mapping[str, Collection[int]],
    *,
    self_account: str,
    self_device: int,
    previous_devices: Mapping[str, Collection[int]] | None = None,
) -> SenderKeyPlan:
    """Which devices get this device's sender key after a membership or device change.

    ``devices`` are the members' current device ids (from their verified device lists,
    including our own account's); ``previous_devices`` those when the current sender key was
    last distributed (defaults to ``devices``). White paper, "Group Messages": the sender key
    is reset when a member leaves; here also when a device disappears from a member's list.

    * A member left or was removed, or a device was removed: rotate, and send the new key
      to every device of every remaining member except this one.
    * Only additions: no rotation; send the current key (at its current iteration, so the
      newcomers cannot read earlier messages) to the new members' and new devices only.
    * The group is new or we just joined: send our first key to everyone.
    * We are no longer a member: nothing to send.

    Raises: nothing.
    """
    if self_account not in after.members:
        return SenderKeyPlan(False, ())
    old = previous_devices if previous_devices is not None else devices
    old_members = set(before.members) if before is not None else set()
    left = old_members - set(after.members)
    device_gone = any(
        set(old.get(m, ())) - set(devices.get(m, ())) for m in after.members if m in old_members
    )
    everyone = tuple(
        (m, d)
        for m in after.members
        for d in sorted(devices.get(m, ()))
        if (m, d) != (self_account, self_device)
    )
    if before is None or self_account not in old_members:
        return SenderKeyPlan(False, everyone)  # a new group, or we just joined: a first key
    if left or device_gone:
        return SenderKeyPlan(True, everyone)
    fresh = tuple(
        (m, d) for m, d in everyone if m not in old_members or d not in set(old.get(m, ()))
    )
    return SenderKeyPlan(False, fresh)
