"""The public surface of ``baat.bot`` is what docs/BUSINESS.md §5 describes, and a
dispatch picks the command handler, else the message handlers, and survives one that fails."""

from __future__ import annotations

import re
from pathlib import Path

import baat.bot
from baat.client.core import ClientError

DOC = Path(__file__).resolve().parents[2] / "docs" / "BUSINESS.md"


def test_the_exports_are_the_documented_ones() -> None:
    assert sorted(baat.bot.__all__) == ["Bot", "CommandHandler", "Message", "MessageHandler"]
    text = DOC.read_text(encoding="utf-8")
    for name in ("Bot.open", "bot.command", "bot.on_message", "bot.run()"):
        assert name in text, name
    documented = set(re.findall(r"`(reply|reply_file|typing|save_attachment)\(", text))
    assert documented == {"reply", "reply_file", "typing", "save_attachment"}
    for method in documented:
        assert callable(getattr(baat.bot.Message, method))


async def test_dispatch_order_and_failing_handlers() -> None:
    from baat.client.store import StoredMessage

    class NoClient:
        keep_for_sync = True

    bot = baat.bot.Bot(NoClient())  # type: ignore[arg-type]
    seen: list[str] = []

    @bot.command("status")
    async def status(message: baat.bot.Message, args: list[str]) -> None:
        seen.append(f"status {args}")

    @bot.on_message
    async def first(message: baat.bot.Message) -> None:
        if message.text == "boom":
            raise ClientError("the handler failed")
        seen.append(f"text {message.text}")

    def msg(text: str) -> baat.bot.Message:
        stored = StoredMessage(
            chat="in-x", sender_account="in-x", sender_device=1, message_id=text,
            direction="in", status="new", body={"text": text, "sender": "asha"},
            sent_at=0, received_at=0,
        )  # fmt: skip
        return baat.bot.Message(bot, stored)

    for text in ("/status 1042", "/STATUS 7 8", "/unknown", "hello", "boom", "after"):
        await bot._dispatch(msg(text))
    assert seen == [
        "status ['1042']",
        "status ['7', '8']",
        "text /unknown",
        "text hello",
        "text after",
    ]
    assert NoClient.keep_for_sync is True and bot.client.keep_for_sync is False
