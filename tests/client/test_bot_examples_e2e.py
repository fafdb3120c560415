"""The two example bots (examples/), each run as its own process on a device linked to a
business account, against a real server (docs/BUSINESS.md §5): they answer, reconnect after
the server restarts, and answer what arrived while they were stopped."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from baat.client.sdk import Client
from client.test_multidevice_support import PASS, account, link, until
from support.server import ServerProcess

pytestmark = pytest.mark.e2e
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@contextmanager
def running(script: str, *args: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "BAAT_PASSPHRASE": PASS, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / script), *args], env=env, stdout=out, stderr=out
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def business_with_bot(root: Path, url: str) -> tuple[Client, Path]:
    """A business account whose second device is the bot's; the profile names both."""
    shop = await account(root, url, "shop")
    bot = await link(root, shop, "shop-bot")
    await bot.close()
    await shop.business.publish(
        display_name="Shop", entity="Shop Retail Pvt Ltd", country="IN", devices=(1, 2)
    )
    return shop, root / "shop-bot"


def replies(client: Client, chat: str) -> list[str]:
    return [
        str(m.body.get("text"))
        for m in client.store.messages(chat=chat)
        if m.direction == "in" and m.sender_device == 2
    ]


async def test_echo_bot_answers_and_reconnects(tmp_path: Path, server: ServerProcess) -> None:
    shop, profile = await business_with_bot(tmp_path, server.url)
    asha = await account(tmp_path, server.url, "asha")
    try:
        await asha.business.accept("shop")
        chat = shop.info.account_id
        with running("echo_bot.py", str(profile), log=tmp_path / "echo.log") as proc:
            await asha.send_text("shop", "hello bot")
            await until([asha], lambda: "echo: hello bot" in replies(asha, chat), timeout=30)
            # A file goes back as a file, encrypted again by the bot's device.
            photo = tmp_path / "menu.txt"
            photo.write_bytes(b"masala chai 20\nsamosa 15\n" * 100)
            await asha.send_file("shop", photo, "our menu?")
            await until([asha], lambda: "echo: our menu?" in replies(asha, chat), timeout=30)
            back = next(
                m for m in asha.store.messages(chat=chat) if m.body.get("text") == "echo: our menu?"
            )
            await until(
                [asha],
                lambda: (
                    asha.attachments.find(back.message_id).body["attachment"]["state"] == "ready"
                ),
            )
            copy = asha.attachments.save(asha.attachments.find(back.message_id), tmp_path / "back")
            assert copy.read_bytes() == photo.read_bytes()
            # The server restarts under the bot: it reconnects by itself.
            await asha.disconnect()
            server.restart()
            await asha.connect()
            await asha.send_text("shop", "after the restart")
            await until(
                [asha], lambda: "echo: after the restart" in replies(asha, chat), timeout=60
            )
            await asha.send_text("shop", "/help")
            await until([asha], lambda: any("I repeat" in r for r in replies(asha, chat)), 30)
            assert proc.poll() is None, (tmp_path / "echo.log").read_text()
        # Stopped: what arrives now is stored on the server and answered at the next start.
        await asha.send_text("shop", "while you slept")
        with running("echo_bot.py", str(profile), log=tmp_path / "echo2.log"):
            await until([asha], lambda: "echo: while you slept" in replies(asha, chat), 30)
        assert replies(asha, chat).count("echo: hello bot") == 1
    finally:
        await asha.close()
        await shop.close()


async def test_order_status_bot_answers_from_its_table(
    tmp_path: Path, server: ServerProcess
) -> None:
    orders = tmp_path / "orders.sqlite3"
    with sqlite3.connect(orders) as conn:
        conn.execute("CREATE TABLE orders (id TEXT PRIMARY KEY, status TEXT, updated TEXT)")
        conn.execute("INSERT INTO orders VALUES ('1042', 'shipped', '2026-12-01')")
    shop, profile = await business_with_bot(tmp_path, server.url)
    asha = await account(tmp_path, server.url, "asha")
    try:
        await asha.business.accept("shop")
        chat = shop.info.account_id
        log = tmp_path / "orders.log"
        with running("order_status_bot.py", str(profile), str(orders), log=log):
            await asha.send_text("shop", "/status 1042")
            want = "Order 1042: shipped (updated 2026-12-01)."
            await until([asha], lambda: want in replies(asha, chat), timeout=30)
            await asha.send_text("shop", "/status 9")
            await until([asha], lambda: any("no order 9" in r for r in replies(asha, chat)), 30)
            await asha.send_text("shop", "where is my parcel?")
            await until(
                [asha], lambda: any(r.startswith("Send /status") for r in replies(asha, chat)), 30
            )
        # The answers quote the question they answer.
        answered = [m for m in asha.store.messages(chat=chat) if m.body.get("text") == want]
        assert answered and answered[0].body.get("reply_to")
    finally:
        await asha.close()
        await shop.close()
