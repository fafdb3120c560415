"""The business commands through the real ``baat`` CLI and server: register --business,
business info, the prompt on send, admin verify-business, the receipt, the hold after a new
processor, withdrawal (docs/BUSINESS.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.cli import PASS, baat, lines
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


def answer(profile: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``baat ARGS`` with ``text`` typed on its standard input."""
    env = {**os.environ, "BAAT_PASSPHRASE": PASS, "BAAT_PROFILE": str(profile)}
    return subprocess.run(
        [sys.executable, "-m", "baat", *args],
        input=text,
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
    )


def info(profile: Path, name: str) -> dict[str, object]:
    return lines(baat(profile, "business", "info", name, "--json"))[-1]


@pytest.mark.timeout(400)  # twenty command-line runs, each a new process
def test_business_commands(tmp_path: Path, server: ServerProcess) -> None:
    shop, asha = tmp_path / "shop", tmp_path / "asha"
    made = lines(
        baat(shop, "register", "shop", "--server", server.url, "--business", "Shop", "--json")
    )[-1]
    assert made["business_profile_version"] == 1
    baat(asha, "register", "asha", "--server", server.url)
    card = info(asha, "shop")
    assert card["display_name"] == "Shop" and card["state"] == "new"
    assert card["verified"] is False

    # Without acceptance nothing is sent; --json says why, with the card.
    refused = baat(asha, "send", "shop", "hi", "--json", check=False)
    assert refused.returncode == 1
    error = json.loads(refused.stdout.splitlines()[0])["error"]
    assert error["code"] == "disclosure_required"
    assert error["disclosure"]["readers"][0]["role"] == "the business"
    declined = answer(asha, "n\n", "send", "shop", "hi")
    assert declined.returncode == 1 and "unverified" in declined.stderr

    # The operator's statement: the badge shows only now.
    db = f"sqlite:///{server.data_dir / 'baat.sqlite3'}"
    verified = baat(
        shop,
        "admin",
        "verify-business",
        "shop",
        "--data",
        str(server.data_dir),
        "--db",
        db,
        "--json",
    )
    assert json.loads(verified.stdout)["entity"] == "Shop"
    assert info(asha, "shop")["verified"] is True

    # Accepted at the prompt; the receipt verifies against the server's published keys.
    sent = answer(asha, "y\n", "send", "shop", "hello shop")
    assert sent.returncode == 0, sent.stderr
    assert "verified by the operator" in sent.stderr and sent.stdout.startswith("sent")
    card = info(asha, "shop")
    assert card["state"] == "accepted"
    receipt = card["receipt"]
    assert isinstance(receipt, dict)
    checked = json.loads(
        baat(
            asha, "consent", "verify", str(receipt["receipt"]), "--server", server.url, "--json"
        ).stdout
    )
    assert checked["record"]["purpose"]["id"] == card["purpose"]
    got = lines(baat(shop, "sync", "--json"))
    assert [m["text"] for m in got] == ["hello shop"]

    # A new processor: the next message is held until accepted again.
    baat(shop, "business", "profile", "--processor", "CloudDesk GmbH:DE:host:2", "--json")
    changed = info(asha, "shop")
    assert changed["state"] == "changed"
    assert changed["verified"] is True  # same entity and country
    waiting = lines(baat(asha, "send", "shop", "still there?", "--json"))[-1]
    assert waiting["status"] == "held"
    assert lines(baat(shop, "sync", "--json")) == []
    baat(asha, "business", "accept", "shop", "--json")
    assert [m["text"] for m in lines(baat(shop, "sync", "--json"))] == ["still there?"]

    # Withdrawn: read-only.
    baat(asha, "business", "withdraw", "shop", "--json")
    closed = baat(asha, "send", "shop", "bye", "--json", check=False)
    assert json.loads(closed.stdout.splitlines()[0])["error"]["code"] == "business_chat_read_only"
    # A person is not a business.
    nobody = baat(asha, "business", "info", "asha", "--json", check=False)
    assert nobody.returncode == 1
