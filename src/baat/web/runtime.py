"""The one ``Client`` behind the web app: unlocking, registering, staying connected, and
turning the SDK's listener callbacks into events for every open browser tab.

Keys and the decrypted store live only in this process; the browser sees what the JSON
routes hand it, over a connection only the launching user can open (``guard.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import shutil
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from baat.client.core import UNCONFIRMED, ClientError, Incident, UnknownContact
from baat.client.sdk import Client
from baat.client.store import PROFILE_FILE, STORE_FILE, StoredMessage
from baat.client.transport import TransportError
from baat.crypto import LinkCode
from baat.web.progress import on_download

log = logging.getLogger("baat.web")

ONBOARDING = "onboarding"  # no profile yet: register
LOCKED = "locked"  # a profile exists: the passphrase opens it
READY = "ready"  # unlocked; connected or retrying in the background

# Reconnect backoff: doubles from the first delay up to the cap, with jitter so that many
# apps restarted together by a server restart do not reconnect in lockstep.
BACKOFF_FIRST = 0.5
BACKOFF_CAP = 15.0
# While connected, retry the outbox this often when something is left in it (a send
# refused for a rate limit stays queued until the next flush).
OUTBOX_RETRY = 10.0
HUB_QUEUE = 1000
# Delivery receipts of what arrived meanwhile go out in one batch this often (seconds).
TICK = 1.0
# Which version of the privacy notice the person last saw (privacy_api.py); erased with the
# profile.
SEEN_POLICY_FILE = "policy-seen.json"

Event = dict[str, Any]


@dataclass
class PendingLink:
    """The link code the Devices screen shows, until it expires or a device used it:
    kept here because the QR route draws it again and the SAS needs its secret."""

    code: LinkCode
    expires_at: int  # Unix seconds
    known: set[int]  # device ids before the code was made
    device_id: int | None = None  # the device that joined with it
    sas: str | None = None


class Busy(Exception):
    """Another unlock, registration or deletion is running."""


class WrongState(Exception):
    def __init__(self, state: str) -> None:
        super().__init__(f"the app is {state}")
        self.state = state


class EventHub:
    """Fan-out of JSON events to every open WebSocket; ``None`` tells a reader to stop."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Event | None]] = set()

    def subscribe(self) -> asyncio.Queue[Event | None]:
        q: asyncio.Queue[Event | None] = asyncio.Queue(HUB_QUEUE)
        self._queues.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Event | None]) -> None:
        self._queues.discard(q)

    def publish(self, event: Event) -> None:
        for q in list(self._queues):
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:
                # A tab that stopped reading: drop it; it reconnects and reloads.
                self._queues.discard(q)
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
                q.put_nowait(None)

    def close(self) -> None:
        for q in list(self._queues):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)
        self._queues.clear()


def _attachment_json(body: dict[str, Any]) -> dict[str, Any] | None:
    """What the page may show of an attachment: its name, type, size, state and why it
    failed (never the sealed pointer); the file and its thumbnail have their own routes."""
    att = body.get("attachment")
    if not isinstance(att, dict):
        return None
    keys = ("file_name", "content_type", "size", "state", "error", "width", "height")
    if body.get("source") == "whatsapp":  # imported: named by the export; stored or not
        from baat.client.imported_files import content_type

        state = "ready" if att.get("media") else att.get("status")
        att = {**att, "file_name": att.get("name"), "state": state}
        att["content_type"] = content_type(att.get("name"))
    return {**{k: att.get(k) for k in keys}, "thumbnail": bool(att.get("thumbnail"))}


def message_json(m: StoredMessage) -> dict[str, Any]:
    # One's own message held for a business's new disclosure (docs/BUSINESS.md §3) is shown.
    held = m.status == "held" and m.direction == "in"
    body = m.body
    reactions = body.get("reactions")
    receipts = body.get("receipts")
    return {
        "id": m.message_id,
        "chat": m.chat,
        "peer": m.body.get("peer"),
        "sender": m.body.get("sender"),
        "direction": m.direction,
        "status": m.status,
        # A held message came with an identity nobody has compared yet: its text stays
        # here until the contact is verified again.
        "text": None if held else m.body.get("text", ""),
        "attachment": None if held else _attachment_json(m.body),
        "sent_at": m.sent_at,
        "received_at": m.received_at,
        "reply_to": None if held else body.get("reply_to") or None,
        "reactions": reactions if isinstance(reactions, dict) and not held else {},
        "edited": bool(body.get("edited")),
        # An imported "This message was deleted" is a deleted message too, not an empty one.
        "deleted": bool(body.get("deleted")) or body.get("kind") == "deleted",
        "notice": bool(body.get("notice")),
        # Per reader of an outgoing message: "delivered" or "read" (groups have several).
        "receipts": receipts if isinstance(receipts, dict) and m.direction == "out" else {},
    }


def _quote_of(m: StoredMessage) -> dict[str, Any]:
    held = m.status == "held"
    text = body_text = m.body.get("text", "")
    if not text and isinstance(m.body.get("attachment"), dict):
        att = _attachment_json(m.body) or {}
        body_text = f"📎 {att.get('file_name') or 'file'}"
    return {
        "id": m.message_id,
        "sender": m.body.get("sender"),
        "direction": m.direction,
        "text": None if held else body_text,
        "deleted": bool(m.body.get("deleted")),
    }


def messages_json(messages: list[StoredMessage]) -> list[dict[str, Any]]:
    """One chat's messages for the page, each reply carrying a quote of what it answers
    (looked up in the same chat: a reply never quotes another conversation)."""
    by_id = {m.message_id: m for m in messages}
    out = []
    for m in messages:
        row = message_json(m)
        ref = row["reply_to"]
        if ref:
            target = by_id.get(ref)
            row["quote"] = _quote_of(target) if target is not None else {"id": ref, "missing": True}
        out.append(row)
    return out


class Runtime:
    def __init__(
        self, profile: Path, default_server: str, env_passphrase: str | None = None
    ) -> None:
        self.profile = profile
        self.default_server = default_server
        self.env_passphrase = env_passphrase
        self.client: Client | None = None
        self.connection = "offline"
        self.last_error = ""  # why the last connection attempt failed, for the UI
        self.hub = EventHub()
        self._runner: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._busy = asyncio.Lock()
        self._stopping = False
        # Why a contact's name is in doubt (account id -> reason), and who was checked.
        self.doubts: dict[str, str] = {}
        self._checked: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # A message arrived since the last tick: its delivery receipt is due.
        self._receipts_due = False
        self.pending_link: PendingLink | None = None

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> str:
        if self.client is not None:
            return READY
        return LOCKED if (self.profile / PROFILE_FILE).exists() else ONBOARDING

    def describe(self) -> dict[str, Any]:
        info = self.client.info if self.client is not None else None
        return {
            "state": self.state,
            "connection": self.connection,
            "reason": self.last_error,
            "username": info.username if info else None,
            "account_id": info.account_id if info else None,
            "server_url": info.server_url if info else self.default_server,
            "passphrase_from_env": self.env_passphrase is not None,
            "profile": str(self.profile),
            "profile_name": self.profile_name(),
        }

    def profile_name(self) -> str | None:
        """Whose profile this is, for the unlock screen: ``username`` on the server's host,
        from the part of the profile file that is not encrypted (None before registering)."""
        if self.client is not None:
            info = self.client.info
            return f"{info.username} on {urlsplit(info.server_url).netloc}"
        try:
            doc = json.loads((self.profile / PROFILE_FILE).read_text())
            account = doc["account"]
            return f"{account['username']} on {urlsplit(str(account['server_url'])).netloc}"
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def need_client(self) -> Client:
        if self.client is None:
            raise WrongState(self.state)
        return self.client

    def _publish_state(self) -> None:
        self.hub.publish({"type": "state", **self.describe()})

    # -- opening -------------------------------------------------------------------------

    async def start(self) -> None:
        """Unlock at once when ``BAAT_PASSPHRASE`` opens the profile; else wait for the UI."""
        if self.env_passphrase is not None and self.state == LOCKED:
            try:
                await self.unlock(self.env_passphrase)
            except Exception as exc:  # the unlock screen shows; the reason goes to the log
                log.warning("BAAT_PASSPHRASE did not open %s: %s", self.profile, exc)

    async def unlock(self, passphrase: str) -> None:
        """Raises: NoProfile, WrongPassphrase (from the store), Busy, WrongState."""
        if self._busy.locked():
            raise Busy("the profile is being opened")
        async with self._busy:
            if self.state != LOCKED:
                raise WrongState(self.state)
            # Argon2 takes a noticeable fraction of a second: keep the loop serving.
            client = await asyncio.to_thread(Client.open, self.profile, passphrase)
            self._attach(client)

    async def register(self, server_url: str, username: str, passphrase: str) -> None:
        """Raises: RegistrationFailed, NotConnected, ProfileExists, Busy, WrongState."""
        if self._busy.locked():
            raise Busy("a registration is running")
        async with self._busy:
            if self.state != ONBOARDING:
                raise WrongState(self.state)
            client = await Client.register(self.profile, passphrase, server_url, username)
            self._attach(client)

    def _attach(self, client: Client) -> None:
        # Listeners go in before the first connect: queued envelopes arrive right after
        # authentication.
        client.message_listeners.append(self._on_message)
        client.status_listeners.append(self._on_status)
        client.incident_listeners.append(self._on_incident)
        client.features.typing_listeners.append(self._on_typing)
        client.expiry_listeners.append(self._on_expired)
        client.features.change_listeners.append(self._on_changed)
        # Messages reach the page through the listeners; none wait for a sync() call.
        client.keep_for_sync = False
        # Attachments finish downloading after their message arrived.
        client.attachment_listeners.append(self._on_attachment)
        client.attachments.progress_listeners.append(on_download(self.hub.publish))
        self.client = client
        self._stopping = False
        self._runner = asyncio.create_task(self._run(client), name="baat-web-connection")
        self.spawn(self._tick(client))
        self._publish_state()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A background task that ends with the profile (cancelled on lock or stop)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- listeners (called by the SDK inside the event loop) -----------------------------

    def _on_message(self, m: StoredMessage) -> None:
        if m.direction == "in":
            self._receipts_due = True
        self.hub.publish({"type": "message", "message": message_json(m)})
        if m.chat not in self._checked and self.client is not None:
            self._check_names_soon(self.client, {m.chat})

    def _on_attachment(self, m: StoredMessage) -> None:
        self.hub.publish({"type": "contact", "chat": m.chat})

    def _on_changed(self, chat: str, kind: str) -> None:
        # Reactions, edits, deletes, receipts and timers change stored messages: the page
        # reads the chat again (after the SDK's transaction committed: the hub's readers
        # run only once this synchronous call has returned).
        self.hub.publish({"type": "changed", "chat": chat, "kind": kind})

    def _on_expired(self, chat: str, ids: list[str]) -> None:
        self.hub.publish({"type": "expired", "chat": chat, "count": len(ids)})

    def _on_typing(self, chat: str, sender: str, kind: str) -> None:
        self.hub.publish({"type": "typing", "chat": chat, "sender": sender, "kind": kind})

    def _on_status(self, message_id: str, status: str) -> None:
        self.hub.publish({"type": "status", "id": message_id, "status": status})

    def _on_incident(self, incident: Incident) -> None:
        self.hub.publish(
            {
                "type": "incident",
                "kind": incident.kind,
                "chat": incident.account_id,
                "detail": incident.detail,
            }
        )

    def _set_connection(self, value: str) -> None:
        if value == "online":
            self.last_error = ""
        if value != self.connection:
            self.connection = value
            self.hub.publish({"type": "connection", "connection": value, "reason": self.last_error})

    # -- staying connected ---------------------------------------------------------------

    def poke(self) -> None:
        """Skip the current backoff wait (e.g. the user pressed "retry")."""
        self._wake.set()

    async def _run(self, client: Client) -> None:
        delay = BACKOFF_FIRST
        while not self._stopping:
            self._set_connection("connecting")
            try:
                await client.connect()
                self._set_connection("online")
                delay = BACKOFF_FIRST
                self._check_names_soon(client)
                await client.flush_outbox()
                self._resume_downloads(client)
                await self._stay(client)
            except (ClientError, TransportError, OSError) as exc:
                log.info("connection to %s: %s", client.info.server_url, exc)
                self.last_error = str(exc)
            except Exception as exc:
                # Never let one bad turn end reconnecting for the rest of the launch.
                log.exception("connection to %s failed", client.info.server_url)
                self.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                with contextlib.suppress(Exception):
                    await client.disconnect()
            if self._stopping:
                break
            self._set_connection("offline")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, BACKOFF_CAP)
        self._set_connection("offline")

    async def _stay(self, client: Client) -> None:
        """Until the connection drops; retries the outbox now and then."""
        while client.transport is not None and not client.transport.closed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(client.transport.closed.wait(), OUTBOX_RETRY)
            if client.connected and client.store.outbox():
                await client.flush_outbox()

    async def _tick(self, client: Client) -> None:
        """Once a second, the delivery receipts of what arrived since the last tick, in one
        batch (disappearing messages are deleted by the SDK's own timer, on time)."""
        while True:
            await asyncio.sleep(TICK)
            try:
                if self._receipts_due:
                    self._receipts_due = False
                    await self.send_receipts(client)
            except Exception as exc:  # the next tick tries again
                log.info("delivery receipts: %s", exc)

    async def send_receipts(self, client: Client) -> None:
        """Queue the receipts due (stored in the outbox, so they survive going offline)
        and send them now when connected."""
        client.features.queue_receipts()
        if client.connected:
            with contextlib.suppress(ClientError, TransportError):
                await client.flush_outbox()

    def _resume_downloads(self, client: Client) -> None:
        """Fetch attachments still pending, those left by earlier runs too, in the
        background (failures become incidents)."""
        self.spawn(client.attachments.wait())

    # -- names -------------------------------------------------------------------------------

    def _check_names_soon(self, client: Client, only: set[str] | None = None) -> None:
        self.spawn(self._check_names(client, only))

    async def _check_names(self, client: Client, only: set[str] | None) -> None:
        """Someone who writes first is named by their own message; the SDK marks a name the
        server did not confirm with ``~``. Ask the server again, once per launch, whether
        each name is theirs (a name can change hands), and say why when it is not."""
        for c in client.store.contacts():
            if c.account_id in self._checked or (only is not None and c.account_id not in only):
                continue
            claimed = c.username.removeprefix(UNCONFIRMED)
            try:
                account_id, _, _ = await client.lookup(claimed)
                doubt = (
                    None
                    if account_id == c.account_id and claimed == c.username
                    else f"on the server, {claimed} is another account"
                    if account_id != c.account_id
                    else f"the server confirms {claimed}; not yet renamed here"
                )
            except UnknownContact:
                doubt = f"the server knows nobody called {claimed}"
            except (ClientError, OSError):
                return  # offline: checked after the next connect
            self._checked.add(c.account_id)
            if doubt != self.doubts.get(c.account_id):
                if doubt is None:
                    self.doubts.pop(c.account_id, None)
                else:
                    self.doubts[c.account_id] = doubt
                self.hub.publish({"type": "contact", "chat": c.account_id})

    # -- sending ---------------------------------------------------------------------------

    async def send(self, chat: str | None, username: str, text: str) -> tuple[str, str]:
        """Store and queue a message; (message id, status). Returns once it is stored and,
        when connected, the server answered; offline it stays "sending" until reconnect.

        Raises:
            UnknownContact, IdentityChanged, NotConnected (a new contact while offline),
            ValueError: the chat and the name disagree.
        """
        client = self.need_client()
        name = username.strip().casefold()
        known = client.store.contact_by_name(name)
        if chat is not None and known is not None and known.account_id != chat:
            # Two contacts can carry one name (a new contact names itself); never let a
            # name lookup send into another conversation than the one on screen.
            raise ValueError(f"{name!r} names another contact than this chat")
        before = {mid for mid, _, _ in client.store.outbox()}
        try:
            message_id = await client.send_text(name, text)
        except (ClientError, TransportError) as exc:
            # The SDK stores first and sends second: a dropped connection during the send
            # leaves the message queued, which is a success for the person typing.
            queued = [mid for mid, _, _ in client.store.outbox() if mid not in before]
            if not queued or (isinstance(exc, ClientError) and exc.code != "not_connected"):
                raise
            self.poke()
            return queued[0], "sending"
        contact = client.store.contact_by_name(name)
        where = chat or (contact.account_id if contact is not None else None)
        mine = client.store.messages(chat=where) if where is not None else []
        status = next((m.status for m in reversed(mine) if m.message_id == message_id), "sending")
        return message_id, status

    # -- stopping ---------------------------------------------------------------------------

    async def _detach(self) -> Client | None:
        client, self.client = self.client, None
        self.pending_link = None
        self._stopping = True
        self._wake.set()
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
            self._runner = None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
        self.connection = "offline"
        return client

    async def forget_profile(self) -> None:
        """After the account is erased on the server: close and erase this device's copy
        (keys, messages, contacts). Only Baat's own files go; the directory stays."""
        from baat.client.media import MEDIA_DIR

        async with self._busy:
            await self._detach()
            names = (PROFILE_FILE, STORE_FILE, f"{STORE_FILE}-wal", f"{STORE_FILE}-shm")
            for name in (*names, SEEN_POLICY_FILE):
                (self.profile / name).unlink(missing_ok=True)
            # Attachments, kept encrypted under the profile key, go with it.
            await asyncio.to_thread(shutil.rmtree, self.profile / MEDIA_DIR, True)
        self._publish_state()

    async def stop(self) -> None:
        await self._detach()
        self.hub.close()
