"""An echo bot: answers every message with its own text, and sends files back.

Run it on a device of a business account (docs/BUSINESS.md, "Bots"):

    BAAT_PASSPHRASE=... python examples/echo_bot.py PROFILE_DIR
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path

from baat.bot import Bot, Message


def build(profile: Path, passphrase: str) -> Bot:
    bot = Bot.open(profile, passphrase)

    @bot.command("help")
    async def help_(message: Message, args: list[str]) -> None:
        await message.reply("I repeat what you write, and send back the files you send.")

    @bot.on_message
    async def echo(message: Message) -> None:
        await message.typing()
        if message.attachment is not None and message.attachment.get("state") == "ready":
            with tempfile.TemporaryDirectory() as tmp:
                name = Path(str(message.attachment["file_name"])).name or "file"
                copy = message.save_attachment(Path(tmp) / name)
                await message.reply_file(copy, f"echo: {message.text}" if message.text else None)
            return
        await message.reply(f"echo: {message.text}")

    return bot


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    if len(sys.argv) != 2:
        sys.exit("usage: echo_bot.py PROFILE_DIR   (passphrase in BAAT_PASSPHRASE)")
    asyncio.run(build(Path(sys.argv[1]), os.environ["BAAT_PASSPHRASE"]).run())


if __name__ == "__main__":
    main()
