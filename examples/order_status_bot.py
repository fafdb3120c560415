"""An order-status bot: answers ``/status ORDER`` from a local SQLite table.

The table lives with the business, next to the bot, never on Baat's server:

    CREATE TABLE orders (id TEXT PRIMARY KEY, status TEXT NOT NULL, updated TEXT NOT NULL)

Run it on a device of a business account (docs/BUSINESS.md, "Bots"):

    BAAT_PASSPHRASE=... python examples/order_status_bot.py PROFILE_DIR ORDERS.sqlite3
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import sys
from pathlib import Path

from baat.bot import Bot, Message

HELP = "Send /status ORDER-NUMBER, for example /status 1042."


def order_status(db: Path, order_id: str) -> str:
    """The answer for one order, read from the local table (read-only)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT status, updated FROM orders WHERE id = ?", (order_id,)
        ).fetchone()
    if row is None:
        return f"I find no order {order_id}. {HELP}"
    return f"Order {order_id}: {row[0]} (updated {row[1]})."


def build(profile: Path, passphrase: str, db: Path) -> Bot:
    bot = Bot.open(profile, passphrase)

    @bot.command("status")
    async def status(message: Message, args: list[str]) -> None:
        if len(args) != 1:
            await message.reply(HELP)
            return
        await message.typing()
        await message.reply(order_status(db, args[0]))

    @bot.on_message
    async def anything_else(message: Message) -> None:
        await message.reply(HELP)

    return bot


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    if len(sys.argv) != 3:
        sys.exit("usage: order_status_bot.py PROFILE_DIR ORDERS.sqlite3")
    bot = build(Path(sys.argv[1]), os.environ["BAAT_PASSPHRASE"], Path(sys.argv[2]))
    asyncio.run(bot.run())


if __name__ == "__main__":
    main()
