"""``baat chats``, ``baat history`` of imported chats, ``baat chats map`` and imported files,
through the real ``baat`` command and a real ``baat serve``."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from baat.importers.whatsapp import Platform
from baat.importers.whatsapp.testing import ChatLine, ExportStyle, render_chat, zip_export
from support.cli import baat, lines
from support.server import ServerProcess

pytestmark = pytest.mark.e2e
T0 = dt.datetime(2024, 3, 14, 9, 0)
PHOTO = b"\xff\xd8\xff\xe0" + os.urandom(2000)
PHOTO_NAME = "00000002-PHOTO-2024-03-14-10-00-00.jpg"


def group_export(folder: Path) -> Path:
    rows = [
        (None, 'Anna created group "Trip"'),
        ("Anna", "Tickets are booked"),
        ("Ravi", "Great, see you at the station"),
    ]
    text = render_chat(
        [
            ChatLine(timestamp=T0 + dt.timedelta(days=i * 20), author=a, body=b)
            for i, (a, b) in enumerate(rows)
        ],
        ExportStyle(),
    )
    path = folder / "WhatsApp Chat with Trip.txt"
    path.write_text(text, encoding="utf-8")
    return path


def one_to_one_export(folder: Path) -> Path:
    style = ExportStyle(platform=Platform.IOS, date_separator=".", year_digits=2, seconds=True)
    rows = [
        ("Bobby B", "hello from the old app"),
        ("Bobby B", f"\u200e<attached: {PHOTO_NAME}>"),
        ("Me", "nice photo"),
    ]
    text = render_chat(
        [
            ChatLine(timestamp=T0 + dt.timedelta(hours=i), author=a, body=b)
            for i, (a, b) in enumerate(rows)
        ],
        style,
    )
    path = folder / "WhatsApp Chat - Bobby B.zip"
    path.write_bytes(zip_export(text, media={PHOTO_NAME: PHOTO}))
    return path


def chats(profile: Path) -> list[dict[str, object]]:
    listed = json.loads(baat(profile, "chats", "--json").stdout)
    assert isinstance(listed, list)
    return listed


@pytest.mark.timeout(300)  # a dozen CLI processes: slow on a loaded machine
def test_chats_and_history_of_imported_chats(tmp_path: Path, server: ServerProcess) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    baat(alice, "register", "alice", "--server", server.url)
    baat(bob, "register", "bob", "--server", server.url)
    baat(alice, "send", "bob", "hi bob", "--json")
    baat(bob, "sync", "--wait", "2", "--json")

    trip = json.loads(
        baat(
            alice, "import", "whatsapp", str(group_export(tmp_path)), "--tz", "UTC", "--json"
        ).stdout
    )
    baat(alice, "import", "whatsapp", str(one_to_one_export(tmp_path)), "--tz", "UTC")
    assert trip["date_order_evidence"].startswith("valid dates")

    listed = {c["name"]: c for c in chats(alice)}
    assert set(listed) == {"bob", "Trip", "Bobby B"}
    assert listed["bob"]["kind"] == "contact" and listed["bob"]["preview"] == "hi bob"
    assert listed["Trip"]["kind"] == "imported" and listed["Trip"]["read_only"] is True
    assert listed["Trip"]["chat"] == trip["chat_id"]
    assert listed["Trip"]["preview"] == "Great, see you at the station"
    assert listed["Trip"]["last"] == "2024-04-23T09:00:00+00:00"
    # Bob wrote nothing to Alice yet: no unread anywhere on her side. Bob's 'sync' showed
    # him Alice's message, so it is read there too (the web app's test covers unread).
    assert {c["unread"] for c in listed.values()} == {0}
    (from_alice,) = chats(bob)
    assert (from_alice["name"], from_alice["preview"], from_alice["unread"]) == (
        "alice",
        "hi bob",
        0,
    )

    # history takes the name the import used, its chat id, or the contact's name.
    for ref in ("Trip", "trip", trip["chat_id"]):
        shown = lines(baat(alice, "history", ref, "--json"))
        assert [m["text"] for m in shown][-2:] == [
            "Tickets are booked",
            "Great, see you at the station",
        ]
    table = baat(alice, "history", "Trip").stdout
    assert "Tickets are booked" in table


@pytest.mark.timeout(300)  # a dozen CLI processes: slow on a loaded machine
def test_map_later_and_imported_files(tmp_path: Path, server: ServerProcess) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    baat(alice, "register", "alice", "--server", server.url)
    baat(bob, "register", "bob", "--server", server.url)
    baat(alice, "send", "bob", "hi bob", "--json")
    old = json.loads(
        baat(
            alice, "import", "whatsapp", str(one_to_one_export(tmp_path)), "--tz", "UTC", "--json"
        ).stdout
    )
    listed = {c["name"]: c for c in chats(alice)}
    assert listed["Bobby B"]["read_only"] is True

    # Unknown: a JSON error on stdout with a stable code, exit 1.
    missing = baat(alice, "history", "Nobody here", "--json", check=False)
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["error"]["code"] == "unknown_chat"

    # --map later, without the export: the chat joins Bob's conversation.
    mapped = json.loads(
        baat(
            alice, "chats", "map", "Bobby B", "--me", "Me", "--map", "Bobby B=bob", "--json"
        ).stdout
    )
    assert mapped["conversation"] == listed["bob"]["chat"] and mapped["reattributed"] == 3
    listed = {c["name"]: c for c in chats(alice)}
    assert set(listed) == {"bob"}
    assert listed["bob"]["imported"] == [old["chat_id"]]
    assert listed["bob"]["imported_names"] == ["Bobby B"]
    assert listed["bob"]["read_only"] is False
    history = lines(baat(alice, "history", "Bobby B", "--json"))
    assert [m["text"] for m in history] == ["hello from the old app", "", "nice photo", "hi bob"]
    assert [m["direction"] for m in history] == ["in", "in", "out", "out"]

    # The imported photo is an attachment of Bob's conversation: listed and written out.
    (listed_file,) = lines(baat(alice, "attachments", "list", "bob", "--json"))
    assert listed_file["attachment"]["file_name"] == PHOTO_NAME
    assert listed_file["attachment"]["state"] == "ready"
    assert listed_file["attachment"]["content_type"] == "image/jpeg"
    out = tmp_path / "out"
    out.mkdir()
    got = json.loads(
        baat(
            alice, "attachments", "get", str(listed_file["id"]), "--out", str(out), "--json"
        ).stdout
    )
    assert Path(got["file"]).read_bytes() == PHOTO


def test_import_errors_under_json_are_objects_with_a_code(tmp_path: Path) -> None:
    profile = tmp_path / "p"
    thai = tmp_path / "WhatsApp Chat with Somchai.txt"
    thai.write_text("15/1/2566, 10:00 - Somchai: hi\n16/1/2566, 11:00 - Malee: hello\n")
    refused = baat(profile, "import", "whatsapp", str(thai), "--dry-run", "--json", check=False)
    assert refused.returncode == 1 and "2566" in refused.stderr  # for a person watching
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "implausible_year" and error["suggest_calendar"] == "buddhist"
    assert "--calendar buddhist" in error["message"]
    fine = baat(
        profile, "import", "whatsapp", str(thai), "--dry-run", "--calendar", "buddhist", "--json"
    )
    assert json.loads(fine.stdout)["first"].startswith("2023-01-15")

    ambiguous = tmp_path / "WhatsApp Chat with Amb.txt"
    ambiguous.write_text("01/02/24, 10:00 - A: x\n03/02/24, 10:00 - B: y\n")
    refused = baat(
        profile, "import", "whatsapp", str(ambiguous), "--dry-run", "--json", check=False
    )
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "ambiguous_date_order" and len(error["samples"]) == 2

    binary = tmp_path / "photo.txt"
    binary.write_bytes(bytes(range(256)) * 4)
    refused = baat(profile, "import", "whatsapp", str(binary), "--json", check=False)
    assert json.loads(refused.stdout)["error"]["code"] == "not_a_chat_export"
    # Without --json the message stays plain text on stderr.
    plain = baat(profile, "import", "whatsapp", str(binary), check=False)
    assert plain.stdout == "" and "binary data" in plain.stderr
