"""A small framework for business devices (docs/BUSINESS.md §5).

A bot is a device of a business account: usually a device linked to the account
(``baat device link`` on the first device, ``baat register --link CODE`` for the bot's
profile), with its own encrypted store, like any Baat device. It runs a loop:

1. Connect; on a failure wait (0.5 s, doubling up to 30 s) and connect again, for as long as
   it runs. A server restart or a network cut costs a reconnect, never a message.
2. Receive. The client acknowledges an envelope only after the message is stored in the
   bot's store (``Client._handle_deliver``), so whatever the server deleted is on disk.
3. Handle every stored message that is still "new", oldest first: a command handler for
   ``/name args``, else the message handlers. A handled message becomes "seen" (and a read
   receipt goes out), so a bot that stops between storing and handling handles the
   message when it starts again; one that stops during a handler may run it twice.
4. Send what the handlers queued (replies, files, typing) and go back to 2.

A handler that raises is logged and the message counts as handled: one bad message must
not stop a bot (nor be retried forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baat.client.core import ClientError, Content, NotConnected
from baat.client.sdk import Client
from baat.client.store import StoredMessage

log = logging.getLogger("baat.bot")

MessageHandler = Callable[["Message"], Awaitable[None]]
CommandHandler = Callable[["Message", list[str]], Awaitable[None]]

FIRST_RETRY_S = 0.5
MAX_RETRY_S = 30.0


@dataclass
class Message:
    """A message the bot received, with the ways to answer it."""

    bot: Bot
    stored: StoredMessage

    @property
    def id(self) -> str:
        return self.stored.message_id

    @property
    def chat(self) -> str:
        """The sender's account id (bots answer people one to one)."""
        return self.stored.chat

    @property
    def sender(self) -> str:
        return str(self.stored.body.get("sender") or self.stored.body.get("peer") or "")

    @property
    def text(self) -> str:
        return str(self.stored.body.get("text") or "")

    @property
    def attachment(self) -> dict[str, Any] | None:
        """File name, type and size of an attached file, if any."""
        att = self.stored.body.get("attachment")
        if not isinstance(att, dict):
            return None
        keys = ("file_name", "content_type", "size", "state")
        return {k: att[k] for k in keys if k in att}

    def save_attachment(self, dst: Path) -> Path:
        """Decrypt the attached file to ``dst``.

        Raises:
            AttachmentError: no file, or it could not be fetched.
        """
        return self.bot.client.attachments.save(self.stored, dst)

    async def reply(self, text: str) -> str:
        """Answer in the same chat, quoting this message. Returns the new message's id."""
        c = self.bot.client
        content = Content(
            v=1, type="text", sender_name=c.info.username, sent_at=0, text=text, ref=self.id
        )
        peer = str(self.stored.body.get("peer") or self.sender)
        return await c.features.post(self.chat, content, {"peer": peer})

    async def reply_file(self, path: Path, caption: str | None = None) -> str:
        """Answer with a file, encrypted on this device (docs/ATTACHMENTS.md)."""
        return await self.bot.client.send_file(self.sender, path, caption)

    async def typing(self, started: bool = True) -> None:
        """Show (or stop showing) "typing…" in this chat."""
        with contextlib.suppress(NotConnected):
            await self.bot.client.features.typing(self.chat, started)


class Bot:
    """Handlers for messages and ``/commands`` on one Baat device.

    ::

        bot = Bot.open(Path("./shop-bot"), passphrase)

        @bot.command("status")
        async def status(message, args):
            await message.reply(f"order {args[0]}: shipped")

        @bot.on_message
        async def echo(message):
            await message.reply(message.text)

        asyncio.run(bot.run())
    """

    def __init__(self, client: Client, poll_s: float = 0.2) -> None:
        self.client = client
        self.poll_s = poll_s
        self._handlers: list[MessageHandler] = []
        self._commands: dict[str, CommandHandler] = {}
        self._stop = asyncio.Event()
        self.connected = asyncio.Event()
        self.handled = 0
        # A long-running device takes messages from the store, never from sync().
        client.keep_for_sync = False

    @classmethod
    def open(cls, profile: Path, passphrase: str, poll_s: float = 0.2) -> Bot:
        """A bot on the device whose profile is ``profile``.

        Raises:
            NoProfile, WrongPassphrase: from the store.
        """
        return cls(Client.open(profile, passphrase), poll_s)

    def on_message(self, handler: MessageHandler) -> MessageHandler:
        """Register ``handler`` for every message that is not a known command."""
        self._handlers.append(handler)
        return handler

    def command(self, name: str) -> Callable[[CommandHandler], CommandHandler]:
        """Register a handler for ``/name arg ...``; it gets the words after the name."""

        def register(handler: CommandHandler) -> CommandHandler:
            self._commands[name.lstrip("/").casefold()] = handler
            return handler

        return register

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Connect, handle messages and reconnect until :meth:`stop`; closes the client."""
        delay = FIRST_RETRY_S
        try:
            while not self._stop.is_set():
                try:
                    await self.client.connect()
                except NotConnected as exc:
                    if exc.code == "auth_failed":
                        raise  # the device was removed: retrying cannot help
                    log.info("cannot connect (%s); again in %.1f s", exc, delay)
                    await self._sleep(delay)
                    delay = min(delay * 2, MAX_RETRY_S)
                    continue
                delay = FIRST_RETRY_S
                self.connected.set()
                try:
                    await self._serve()
                finally:
                    self.connected.clear()
                    await self.client.disconnect()
        finally:
            await self.client.close()

    async def _serve(self) -> None:
        while not self._stop.is_set() and self.client.connected:
            try:
                await self.client.receive(wait=self.poll_s)
            except (NotConnected, TimeoutError) as exc:
                log.info("connection lost: %s", exc)
                return
            await self.handle_stored()
            if self.client.connected:
                with contextlib.suppress(NotConnected):
                    await self.client.flush_outbox()

    async def handle_stored(self) -> int:
        """Handle every stored message still "new", oldest first; returns how many."""
        me = self.client.info.account_id
        pending = [
            m
            for m in self.client.store.messages(status="new")
            if m.direction == "in" and m.sender_account != me and not _fetching(m)
        ]
        for m in pending:
            await self._dispatch(Message(self, m))
            self.client.features.mark_read([m])
            self.handled += 1
        return len(pending)

    async def _dispatch(self, message: Message) -> None:
        words = message.text.split()
        try:
            if words and words[0].startswith("/"):
                handler = self._commands.get(words[0][1:].casefold())
                if handler is not None:
                    await handler(message, words[1:])
                    return
            for h in self._handlers:
                await h(message)
        except (ClientError, OSError, ValueError, LookupError) as exc:
            log.exception("handler failed on %s: %s", message.id, exc)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)


def _fetching(m: StoredMessage) -> bool:
    """A file still being fetched: handled once it is here (or failed)."""
    att = m.body.get("attachment")
    return isinstance(att, dict) and att.get("state") == "pending"
