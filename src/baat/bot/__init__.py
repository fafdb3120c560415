"""``baat.bot``: handlers for messages and commands on a business device
(docs/BUSINESS.md §5)."""

from __future__ import annotations

from baat.bot._bot import Bot, CommandHandler, Message, MessageHandler

__all__ = ["Bot", "CommandHandler", "Message", "MessageHandler"]
