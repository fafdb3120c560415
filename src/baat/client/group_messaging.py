"""Groups on the client: state kept per device, management events over the pairwise
sessions, messages encrypted once with this device's sender key (docs/GROUPS.md §4).

* **Management** (create, add, remove, leave, rename, promote) is an event of
  ``baat.client.groups`` sent pairwise to every device of every member concerned (and our
  own other devices); the server sees per-device envelopes only. A member being added gets
  the whole state from the admin who adds it (§3.2). Events for a version not reached yet
  wait in the group's bookkeeping and are replayed when the missing ones arrive (§3.3).
* **Sender keys** (§1, [WA] "Group Messages"): before sending, ``sender_key_recipients``
  compares the members and devices that hold our current key with today's: a member or a
  device gone means a new key for everyone left; newcomers get the current key only.
* **Messages**: one ``encrypt_group`` per message, one ``Send`` with the same ciphertext in
  one envelope per member device.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Connection, delete, insert, select, update

from baat.client import schema as s
from baat.client.core import Content, Incident, Origin, _content_decoder
from baat.client.groups import (
    AddMembers,
    FutureVersion,
    GroupError,
    GroupEvent,
    GroupState,
    LeaveGroup,
    NotAdmin,
    NotMember,
    PromoteAdmins,
    RemoveMembers,
    RenameGroup,
    apply,
    create_group,
    decode_event,
    encode_event,
    replay,
    sender_key_recipients,
)
from baat.client.store import StoredMessage
from baat.crypto import CryptoError, DuplicateMessage
from baat.crypto.sender_keys import (
    SenderKeyDistribution,
    SenderKeyState,
    decrypt_group,
    encrypt_group,
    group_message_info,
    new_sender_key,
    process_distribution,
    rotate_sender_key,
)
from baat.proto import OutgoingEnvelope, SendResult

if TYPE_CHECKING:
    from baat.client.core import ClientCore
    from baat.proto import Deliver

_PREFIX = "g:"
_GROUP_MESSAGE = 3  # ciphertext type of a sender key message (docs/GROUPS.md §1.2)


def chat_id(group_id: bytes) -> str:
    """A group's chat id: ``g:`` and the unpadded base64url of its 16-byte id (24 chars)."""
    return _PREFIX + base64.urlsafe_b64encode(group_id).decode().rstrip("=")


def group_id_of(chat: str) -> bytes:
    raw = chat[len(_PREFIX) :]
    return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))


def is_group_chat(chat: str) -> bool:
    return chat.startswith(_PREFIX)


def is_group_message(content: bytes) -> bool:
    return len(content) > 2 and content[0] == 1 and content[1] == _GROUP_MESSAGE


class GroupFailure(ValueError):
    """A group command that cannot be done; ``code`` is stable (also ``GroupError``'s)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Fanout(msgspec.Struct, array_like=True):
    """An outbox item sent pairwise to these accounts only (management events)."""

    to: list[str]
    payload: bytes


class GroupMessaging:
    def __init__(self, client: ClientCore) -> None:
        self.client = client

    # -- stored state ----------------------------------------------------------------------

    def _load(self, tx: Connection, chat: str) -> tuple[GroupState, dict[str, Any]] | None:
        row = tx.execute(select(s.groups).where(s.groups.c.chat == chat)).first()
        if row is None:
            return None
        seal = self.client.store.sealer
        state = GroupState.from_bytes(seal.open(f"groups.{chat}.state", row.state_blob))
        meta = json.loads(seal.open(f"groups.{chat}.meta", row.meta_blob))
        # Members another admin added are known by the name that admin gave; a new process
        # needs them to fetch those members' device lists before its first group send.
        for account_id, name in meta.get("names", {}).items():
            self.client._names.setdefault(account_id, name)
        return state, meta

    def _save(self, tx: Connection, chat: str, state: GroupState, meta: dict[str, Any]) -> None:
        seal = self.client.store.sealer
        values = {
            "state_blob": seal.seal(f"groups.{chat}.state", state.to_bytes()),
            "meta_blob": seal.seal(f"groups.{chat}.meta", json.dumps(meta).encode()),
        }
        if not tx.execute(
            update(s.groups).where(s.groups.c.chat == chat).values(**values)
        ).rowcount:
            tx.execute(insert(s.groups).values(chat=chat, **values))
        for account_id, name in meta.get("names", {}).items():
            self.client._names.setdefault(account_id, name)

    def _key(
        self, tx: Connection, chat: str, account: str, device: int, key_id: int
    ) -> SenderKeyState | None:
        t = s.sender_keys
        row = tx.execute(
            select(t.c.state_blob).where(
                t.c.chat == chat,
                t.c.account_id == account,
                t.c.device_id == device,
                t.c.key_id == key_id,
            )
        ).first()
        where = f"sender_keys.{chat}.{account}.{device}.{key_id}"
        return (
            None
            if row is None
            else SenderKeyState.from_bytes(self.client.store.sealer.open(where, row[0]))
        )

    def _put_key(
        self, tx: Connection, chat: str, account: str, device: int, state: SenderKeyState
    ) -> None:
        t = s.sender_keys
        where = f"sender_keys.{chat}.{account}.{device}.{state.key_id}"
        blob = self.client.store.sealer.seal(where, state.to_bytes())
        match = (
            t.c.chat == chat,
            t.c.account_id == account,
            t.c.device_id == device,
            t.c.key_id == state.key_id,
        )
        if not tx.execute(update(t).where(*match).values(state_blob=blob)).rowcount:
            tx.execute(
                insert(t).values(
                    chat=chat,
                    account_id=account,
                    device_id=device,
                    key_id=state.key_id,
                    state_blob=blob,
                    created_at=state.created_at,
                )
            )

    def all(self) -> list[tuple[str, GroupState, dict[str, Any]]]:
        with self.client.store.transaction() as tx:
            chats = [r[0] for r in tx.execute(select(s.groups.c.chat))]
            found = [(c, *loaded) for c in chats if (loaded := self._load(tx, c)) is not None]
        return sorted(found, key=lambda g: g[1].name)

    def find(self, ref: str) -> tuple[str, GroupState, dict[str, Any]]:
        """A group by chat id or name (members' groups first).

        Raises:
            GroupFailure: ``unknown_group``, or ``ambiguous`` when two groups share the name.
        """
        groups = self.all()
        exact = [g for g in groups if g[0] == ref]
        named = exact or [g for g in groups if g[1].name == ref]
        live = [g for g in named if g[1].is_member(self.client.info.account_id)] or named
        if not live:
            raise GroupFailure("unknown_group", f"no group {ref!r}")
        if len(live) > 1:
            raise GroupFailure("ambiguous", f"several groups are named {ref!r}; use the id")
        return live[0]

    def members_of(self, chat: str) -> list[str]:
        with self.client.store.transaction() as tx:
            loaded = self._load(tx, chat)
        return [] if loaded is None else list(loaded[0].members)

    def members_in(self, tx: Connection, chat: str) -> list[str]:
        """Today's members of ``chat`` (account ids), inside the caller's transaction."""
        loaded = self._load(tx, chat)
        return [] if loaded is None else list(loaded[0].members)

    def names_in(self, tx: Connection, chat: str) -> dict[str, str]:
        """Account id -> display name of the members of ``chat`` (empty for a 1:1 chat)."""
        loaded = self._load(tx, chat)
        if loaded is None:
            return {}
        return {a: self.display(loaded[1], a) for a in loaded[0].members}

    def name_of(self, tx: Connection, chat: str) -> str | None:
        loaded = self._load(tx, chat)
        return None if loaded is None else loaded[0].name

    def display(self, meta: dict[str, Any], account_id: str) -> str:
        if account_id == self.client.info.account_id:
            return self.client.info.username
        return str(meta.get("names", {}).get(account_id, account_id))

    # -- management ------------------------------------------------------------------------

    async def _accounts(self, usernames: list[str]) -> dict[str, str]:
        found = {}
        for name in usernames:
            account_id, canonical = await self.client.resolve(name)
            found[account_id] = canonical
        return found

    async def create(self, name: str, usernames: list[str]) -> str:
        """Create a group with us as its admin; returns its chat id.

        Raises:
            UnknownContact, IdentityChanged: a member cannot be resolved.
            GroupError: ``invalid_event`` (a bad name, a member twice).
        """
        me = self.client.info.account_id
        names = await self._accounts(usernames)
        names.pop(me, None)
        event = create_group(name, list(names))
        state = apply(None, event, me)
        chat = chat_id(state.group_id)
        names[me] = self.client.info.username
        with self.client.store.transaction() as tx:
            self._save(tx, chat, state, {"names": names})
        await self._queue(chat, list(names), self._event(chat, event, names))
        return chat

    async def add(self, ref: str, usernames: list[str]) -> GroupState:
        chat, state, meta = self.find(ref)
        self._check_admin(state, meta, "add members")
        names = await self._accounts(usernames)
        event = AddMembers(group_id=state.group_id, version=state.version, members=tuple(names))
        new = self._apply_own(chat, state, meta, event, names)
        all_names = {
            **meta.get("names", {}),
            **names,
            self.client.info.account_id: self.client.info.username,
        }
        await self._queue(chat, list(state.members), self._event(chat, event, names))
        joined = self._content("group_state", to=chat, data=new.to_bytes(), names=all_names)
        await self._queue(chat, list(names), joined)
        return new

    async def remove(self, ref: str, username: str) -> GroupState:
        chat, state, meta = self.find(ref)
        self._check_admin(state, meta, "remove members")
        names = await self._accounts([username])
        event = RemoveMembers(group_id=state.group_id, version=state.version, members=tuple(names))
        new = self._apply_own(chat, state, meta, event, {})
        # The removed member learns it too; our next message uses a new sender key (§1.5).
        await self._queue(chat, list(state.members), self._event(chat, event, {}))
        return new

    async def leave(self, ref: str) -> GroupState:
        chat, state, meta = self.find(ref)
        event = LeaveGroup(group_id=state.group_id, version=state.version)
        new = self._apply_own(chat, state, meta, event, {})
        await self._queue(chat, list(state.members), self._event(chat, event, {}))
        return new

    async def rename(self, ref: str, name: str) -> GroupState:
        chat, state, meta = self.find(ref)
        self._check_admin(state, meta, "rename it")
        event = RenameGroup(group_id=state.group_id, version=state.version, name=name)
        new = self._apply_own(chat, state, meta, event, {})
        await self._queue(chat, list(state.members), self._event(chat, event, {}))
        return new

    async def promote(self, ref: str, members: list[str]) -> GroupState:
        """Make ``members`` admins of the group (admins only). Each is named as the group
        shows it (its username) or by account id; no server lookup is needed, since only
        members can be promoted and a member need not be a contact.

        Raises:
            GroupFailure: ``unknown_group``, ``ambiguous``, ``already_admin``.
            NotMember: we are not a member, or one of ``members`` is not.
            NotAdmin: we are not an admin.
        """
        chat, state, meta = self.find(ref)
        self._check_admin(state, meta, "make members admins")
        accounts = list(dict.fromkeys(self._member(state, meta, m) for m in members))
        already = [self.display(meta, a) for a in accounts if state.is_admin(a)]
        if already:
            raise GroupFailure(
                "already_admin", f"already an admin of {state.name!r}: {', '.join(already)}"
            )
        event = PromoteAdmins(
            group_id=state.group_id, version=state.version, members=tuple(accounts)
        )
        new = self._apply_own(chat, state, meta, event, {})
        await self._queue(chat, list(state.members), self._event(chat, event, {}))
        return new

    def _check_admin(self, state: GroupState, meta: dict[str, Any], what: str) -> None:
        """Refuse early what ``apply`` would refuse, with the same errors but with the names
        people know rather than account ids."""
        me = self.client.info.account_id
        if not state.is_member(me):
            raise NotMember(f"you are not a member of {state.name!r}")
        if not state.is_admin(me):
            admins = ", ".join(self.display(meta, m) for m in state.members if state.is_admin(m))
            raise NotAdmin(f"only an admin of {state.name!r} can {what}; ask one of them: {admins}")

    def _member(self, state: GroupState, meta: dict[str, Any], name: str) -> str:
        """The account id of the member shown as ``name`` (or with that account id)."""
        wanted = name.strip()
        if wanted in state.members:
            return wanted
        found = [m for m in state.members if self.display(meta, m).casefold() == wanted.casefold()]
        if not found:
            raise NotMember(f"{wanted!r} is not a member of {state.name!r}")
        if len(found) > 1:
            raise GroupFailure("ambiguous", f"several members of {state.name!r} are {wanted!r}")
        return found[0]

    def _apply_own(
        self,
        chat: str,
        state: GroupState,
        meta: dict[str, Any],
        event: GroupEvent,
        names: dict[str, str],
    ) -> GroupState:
        new = apply(state, event, self.client.info.account_id)
        meta = {**meta, "names": {**meta.get("names", {}), **names}}
        with self.client.store.transaction() as tx:
            self._save(tx, chat, new, meta)
        return new

    def _content(self, type_: str, **fields: Any) -> Content:
        c = self.client
        return Content(v=1, type=type_, sender_name=c.info.username, sent_at=c.clock(), **fields)

    def _event(self, chat: str, event: GroupEvent, names: dict[str, str]) -> Content:
        return self._content("group_event", to=chat, data=encode_event(event), names=names)

    async def _queue(self, chat: str, accounts: list[str], content: Content) -> None:
        c = self.client
        me = c.info.account_id
        item = _Fanout([a for a in accounts if a != me], msgspec.msgpack.encode(content))
        with c.store.transaction() as tx:
            c.store.queue_out(tx, secrets.token_hex(16), chat, msgspec.msgpack.encode(item))
        if c.transport is not None:
            await c.flush_outbox()

    async def send_text(self, ref: str, text: str, reply_to: str = "") -> str:
        """Queue a message for the group; sent with our sender key.

        Raises:
            GroupFailure: ``unknown_group``, ``not_member``.
        """
        chat, state, _ = self.find(ref)
        if not state.is_member(self.client.info.account_id):
            raise GroupFailure("not_member", f"you are not a member of {state.name!r}")
        content = self._content("text", text=text, ref=reply_to)
        return await self.client.features.post(
            chat, content, {"peer": state.name, "group": state.name}
        )

    # -- sending ---------------------------------------------------------------------------

    async def send(self, message_id: str, chat: str, payload: bytes) -> SendResult:
        """Send one outbox item of a group chat (see ``Client._send_item``).

        Raises:
            SendRefused, NotConnected: from the server.
        """
        c = self.client
        try:
            fan = msgspec.msgpack.decode(payload, type=_Fanout)
        except (msgspec.DecodeError, msgspec.ValidationError):
            fan = None
        if fan is not None:
            async with c._store_lock:
                envelopes = await c.devices.encrypt(fan.to, fan.payload, chat)
            return await self._send(message_id, envelopes)
        async with c._store_lock:
            with c.store.transaction() as tx:
                loaded = self._load(tx, chat)
            if loaded is None or not loaded[0].is_member(c.info.account_id):
                return SendResult(message_id, [])  # we left: nothing to send
            state, meta = loaded
            devices = {m: sorted(await c.devices.devices_of(m)) for m in state.members}
            key, plan_to, rotated = self._plan(chat, state, meta, devices)
            dist = None
            if plan_to:
                accounts = sorted({a for a, _ in plan_to})
                dist_content = self._content(
                    "sender_key", to=chat, data=key.distribution().encode()
                )
                dist = await c.devices.encrypt(accounts, msgspec.msgpack.encode(dist_content), chat)
        if dist:
            await self._send(secrets.token_hex(16), dist)
        meta = {
            **meta,
            "own_key": key.key_id,
            "key_members": list(state.members),
            "distributed": devices,
        }
        async with c._store_lock:
            with c.store.transaction() as tx:
                key, data = encrypt_group(key, payload, c.clock() // 1000)
                if rotated:
                    tx.execute(
                        delete(s.sender_keys).where(
                            s.sender_keys.c.chat == chat,
                            s.sender_keys.c.account_id == c.info.account_id,
                            s.sender_keys.c.device_id == c.info.device_id,
                        )
                    )
                self._put_key(tx, chat, c.info.account_id, c.info.device_id, key)
                self._save(tx, chat, state, meta)
        me = (c.info.account_id, c.info.device_id)
        envelopes = [
            OutgoingEnvelope(m, d, data) for m, ds in devices.items() for d in ds if (m, d) != me
        ]
        return await self._send(message_id, envelopes)

    def _plan(
        self, chat: str, state: GroupState, meta: dict[str, Any], devices: dict[str, list[int]]
    ) -> tuple[SenderKeyState, list[tuple[str, int]], bool]:
        """Our sender key for the next message, who must receive it, whether it is new."""
        c = self.client
        now = c.clock() // 1000
        me, my_device = c.info.account_id, c.info.device_id
        with c.store.transaction() as tx:
            key = (
                None
                if meta.get("own_key") is None
                else self._key(tx, chat, me, my_device, meta["own_key"])
            )
        before = None
        if key is not None:
            before = msgspec.structs.replace(state, members=tuple(meta.get("key_members", ())))
        plan = sender_key_recipients(
            before,
            state,
            devices,
            self_account=me,
            self_device=my_device,
            previous_devices=meta.get("distributed", devices),
        )
        if key is None:
            return new_sender_key(state.group_id, now), list(plan.recipients), True
        if plan.rotate:
            return rotate_sender_key(key, now), list(plan.recipients), True
        return key, list(plan.recipients), False

    async def _send(self, message_id: str, envelopes: list[OutgoingEnvelope]) -> SendResult:
        if not envelopes:
            return SendResult(message_id, [])
        return await self.client.send_envelopes(message_id, envelopes)

    # -- receiving -------------------------------------------------------------------------

    def receive(self, d: Deliver, now: int) -> StoredMessage | None:
        """A sender key message: decrypt it with the sending device's key and file it."""
        c = self.client
        try:
            info = group_message_info(d.content)
            chat = chat_id(info.group_id)
            with c.store.transaction() as tx:
                loaded = self._load(tx, chat)
                if loaded is None or not loaded[0].is_member(d.sender_account):
                    raise GroupFailure("not_member", "a group message from a non-member")
                state, meta = loaded
                key = self._key(tx, chat, d.sender_account, d.sender_device, info.key_id)
                if key is None:
                    raise GroupFailure("unknown_sender_key", "no sender key for this message")
                key, plaintext = decrypt_group(key, d.content, now // 1000)
                self._put_key(tx, chat, d.sender_account, d.sender_device, key)
                content = _content_decoder.decode(plaintext)
                c.sealed.learn(tx, d.sender_account, content.profile_key, d.sender_device)
                mine = d.sender_account == c.info.account_id
                origin = Origin(
                    chat=chat,
                    sender_account=d.sender_account,
                    sender_device=d.sender_device,
                    message_id=d.message_id,
                    direction="out" if mine else "in",
                    status="sent" if mine else "new",
                    sender_name=self.display(meta, d.sender_account),
                    peer=state.name,
                    group=state.name,
                )
                return c.features.file(tx, d, content, origin, now)
        except DuplicateMessage:
            return None
        except (CryptoError, GroupFailure, msgspec.DecodeError, msgspec.ValidationError) as exc:
            c._incident(
                Incident(
                    "undecryptable",
                    d.sender_account,
                    f"group message {d.message_id} from {d.sender_account} was rejected: {exc}",
                )
            )
            return None

    def on_pairwise(
        self, tx: Connection, d: Deliver, content: Content, now: int
    ) -> StoredMessage | None:
        """A group event, a group state for a new member, or a sender key, from a device
        the pairwise session authenticated (its account is the actor)."""
        actor = d.sender_account
        chat = content.to
        if content.data is None or not is_group_chat(chat):
            return None
        if content.type == "sender_key":
            loaded = self._load(tx, chat)
            dist = SenderKeyDistribution.decode(content.data)
            if loaded is None or not loaded[0].is_member(actor) or chat_id(dist.group_id) != chat:
                return None  # only a member's device may give us its key (§1.2)
            existing = self._key(tx, chat, actor, d.sender_device, dist.key_id)
            state = process_distribution(dist, now // 1000, existing)
            self._put_key(tx, chat, actor, d.sender_device, state)
            return None
        if content.type == "group_state":
            return self._joined(tx, d, content, now)
        return self._event_arrived(tx, d, content, now)

    def _joined(
        self, tx: Connection, d: Deliver, content: Content, now: int
    ) -> StoredMessage | None:
        assert content.data is not None
        new = GroupState.from_bytes(content.data)
        me = self.client.info.account_id
        chat = chat_id(new.group_id)
        loaded = self._load(tx, chat)
        fresh = loaded is None or loaded[0].version < new.version or not loaded[0].is_member(me)
        if (
            chat != content.to
            or not fresh
            or not new.is_admin(d.sender_account)
            or not new.is_member(me)
        ):
            return None  # a state only counts from an admin of it, adding us (§3.2)
        meta = dict(loaded[1]) if loaded else {}
        meta["names"] = {**meta.get("names", {}), **content.names}
        self._save(tx, chat, new, meta)
        who = self.display(meta, d.sender_account)
        text = f"{who} added you to {new.name!r}"
        return self._notice(tx, d, chat, new, meta, text, content.sent_at or now)

    def _event_arrived(
        self, tx: Connection, d: Deliver, content: Content, now: int
    ) -> StoredMessage | None:
        assert content.data is not None
        event = decode_event(content.data)
        chat = chat_id(event.group_id)
        if chat != content.to:
            return None
        loaded = self._load(tx, chat)
        state, meta = loaded if loaded is not None else (None, {})
        meta = {**meta, "names": {**meta.get("names", {}), **content.names}}
        actor = d.sender_account
        try:
            new = apply(state, event, actor)
        except FutureVersion:
            # Kept until the events before it arrive (docs/GROUPS.md §3.3).
            pending = [*meta.get("pending", []), [base64.b64encode(content.data).decode(), actor]]
            if state is not None:
                self._save(tx, chat, state, {**meta, "pending": pending})
            return None
        except GroupError:
            return None
        pending = [(decode_event(base64.b64decode(e)), a) for e, a in meta.pop("pending", [])]
        if pending:
            replayed, refused = replay(new, pending)
            assert replayed is not None
            new = replayed
            meta["pending"] = [
                [base64.b64encode(encode_event(e)).decode(), a]
                for e, a, err in refused
                if isinstance(err, FutureVersion)
            ]
        self._save(tx, chat, new, meta)
        text = self._describe(event, actor, meta)
        return self._notice(tx, d, chat, new, meta, text, content.sent_at or now)

    def _describe(self, event: GroupEvent, actor: str, meta: dict[str, Any]) -> str:
        who = self.display(meta, actor)
        named = ", ".join(self.display(meta, m) for m in getattr(event, "members", ()))
        kind = event.__class__.__name__
        return {
            "CreateGroup": f"{who} created the group with {named}",
            "AddMembers": f"{who} added {named}",
            "RemoveMembers": f"{who} removed {named}",
            "LeaveGroup": f"{who} left",
            "RenameGroup": f"{who} renamed the group to {getattr(event, 'name', '')!r}",
            "PromoteAdmins": f"{who} made {named} admin",
        }[kind]

    def _notice(
        self,
        tx: Connection,
        d: Deliver,
        chat: str,
        state: GroupState,
        meta: dict[str, Any],
        text: str,
        sent_at: int,
    ) -> StoredMessage | None:
        """A line in the group's history saying what changed (shown by 'baat sync')."""
        from dataclasses import replace

        mine = d.sender_account == self.client.info.account_id
        m = StoredMessage(
            chat=chat,
            sender_account=d.sender_account,
            sender_device=d.sender_device,
            message_id=d.message_id,
            direction="out" if mine else "in",
            status="sent" if mine else "new",
            body={
                "text": text,
                "peer": state.name,
                "group": state.name,
                "sender": self.display(meta, d.sender_account),
                "notice": True,
            },
            sent_at=sent_at,
            received_at=self.client.clock(),
        )
        row = self.client.store.add_message(tx, m)
        return None if row is None else replace(m, row_id=row)
