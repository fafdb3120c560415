"""WhatsApp exports into the local store: ``baat import whatsapp`` and ``baat.client.importing``.

The parser's own tests cover every dialect example; these check what reaches the store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from baat.cli.leave import import_
from baat.client.importing import chat_id_for, import_chat, imported_chats, read_media
from baat.client.store import Contact, Store, StoredMessage
from baat.importers.whatsapp import CorruptZip, Platform, open_export
from baat.importers.whatsapp.testing import ChatLine, ExportStyle, render_chat, zip_export

PASS = "import test passphrase"
T0 = dt.datetime(2023, 3, 14, 9, 0)
# Random markers: found in a profile file only if something was stored in clear.
SECRET_TEXT = "cobalt-" + os.urandom(6).hex()
PHOTO = b"\xff\xd8\xff\xe0" + os.urandom(3000) + b"PIXELS-" + os.urandom(8).hex().encode()
VOICE = b"OggS" + os.urandom(70_000)

STYLES = {
    "android-dmy": ExportStyle(),
    "android-us-12h": ExportStyle(
        date_order="mdy", year_digits=2, pad=False, clock12=True, am_pm_space="\u202f"
    ),
    "ios-de": ExportStyle(
        platform=Platform.IOS, date_separator=".", year_digits=2, seconds=True, lrm=True
    ),
    "android-fa": ExportStyle(date_order="ymd", comma="\u060c", digits="persian", pad=False),
}


def chat_lines(ios: bool, n: int = 30, start: int = 0) -> list[ChatLine]:
    out = []
    for i in range(start, n):
        ts = T0 + dt.timedelta(hours=7 * i)  # crosses month ends: the date order is settled
        if i == 0:
            out.append(ChatLine(timestamp=ts, author=None, body='Anna created group "Trip"'))
        elif i == 3:
            body = (
                "\u200e<attached: 00000003-PHOTO-2023-03-15.jpg>"
                if ios
                else ("IMG-0003.jpg (file attached)\nthe view")
            )
            out.append(ChatLine(timestamp=ts, author="Anna", body=body))
        elif i == 5:
            body = (
                "\u200e<attached: 00000005-AUDIO.opus>" if ios else "PTT-0005.opus (file attached)"
            )
            out.append(ChatLine(timestamp=ts, author="Ravi Kumar", body=body))
        elif i == 7:
            body = "\u200e<attached: 00000007-PHOTO.jpg>" if ios else "IMG-0007.jpg (file attached)"
            out.append(ChatLine(timestamp=ts, author="Anna", body=body))  # not in the zip
        elif i == 9:
            out.append(ChatLine(timestamp=ts, author="Ravi Kumar", body=f"{SECRET_TEXT}\nline two"))
        else:
            author = ("Anna", "Ravi Kumar", "Me Myself")[i % 3]
            out.append(ChatLine(timestamp=ts, author=author, body=f"message {i}"))
    return out


def media_for(ios: bool) -> dict[str, bytes]:
    if ios:
        return {"00000003-PHOTO-2023-03-15.jpg": PHOTO, "00000005-AUDIO.opus": VOICE}
    return {"IMG-0003.jpg": PHOTO, "PTT-0005.opus": VOICE}


def write_export(
    tmp: Path,
    style: ExportStyle,
    *,
    media: bool,
    lines: list[ChatLine] | None = None,
    name: str = "Trip",
) -> Path:
    ios = style.platform is Platform.IOS
    text = render_chat(lines if lines is not None else chat_lines(ios), style)
    if media or ios:
        path = tmp / f"WhatsApp Chat - {name}.zip"
        path.write_bytes(zip_export(text, media=media_for(ios) if media else None))
    else:
        path = tmp / f"WhatsApp Chat with {name}.txt"
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    path = tmp_path / "profile"
    Store.create(path, PASS).close()
    return path


def run(profile: Path, *args: str) -> Result:
    env = {"BAAT_PASSPHRASE": PASS, "BAAT_PROFILE": str(profile)}
    return CliRunner().invoke(import_, ["whatsapp", *args, "--tz", "UTC"], env=env)


def stored(profile: Path) -> list[StoredMessage]:
    store = Store.open(profile, PASS)
    try:
        return store.messages()
    finally:
        store.close()


def snapshot(profile: Path) -> dict[str, str]:
    return {
        str(p.relative_to(profile)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(profile.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("label", list(STYLES))
def test_import_writes_every_record_and_is_idempotent(
    tmp_path: Path, profile: Path, label: str
) -> None:
    style = STYLES[label]
    path = write_export(tmp_path, style, media=label == "android-dmy")
    first = run(profile, str(path), "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.output)
    assert report["chat"] == "Trip" and report["added"] == 30 and report["already_present"] == 0
    assert report["messages"] == 29 and report["system_events"] == 1
    assert report["conversation"] == chat_id_for("Trip")
    messages = stored(profile)
    assert len(messages) == 30
    assert {m.status for m in messages} == {"imported"}
    assert {m.chat for m in messages} == {chat_id_for("Trip")}
    texts = [m.body["text"] for m in messages]
    assert f"{SECRET_TEXT}\nline two" in texts and "message 29" in texts
    assert (
        messages[0].body["kind"] == "system"
        and messages[0].body["system"]["kind"] == "group-created"
    )
    assert messages[0].sent_at == int(dt.datetime(2023, 3, 14, 9, tzinfo=dt.UTC).timestamp() * 1000)
    again = json.loads(run(profile, str(path), "--json").output)
    assert again["added"] == 0 and again["already_present"] == 30
    assert len(stored(profile)) == 30


def test_overlapping_export_adds_only_what_is_new(tmp_path: Path, profile: Path) -> None:
    style = STYLES["android-dmy"]
    older = write_export(tmp_path, style, media=False, lines=chat_lines(False, n=20))
    assert json.loads(run(profile, str(older), "--json").output)["added"] == 20
    newer_dir = tmp_path / "later"
    newer_dir.mkdir()
    lines = chat_lines(False, n=30, start=10)
    newer = write_export(newer_dir, style, media=False, lines=lines)
    report = json.loads(run(profile, str(newer), "--json").output)
    assert (report["added"], report["already_present"]) == (10, 10)
    keys = [m.message_id for m in stored(profile)]
    assert len(keys) == len(set(keys)) == 30
    # Media-less first, then the zip with media: the files join the stored messages.
    zipped = write_export(tmp_path / "later", style, media=True)
    report = json.loads(run(profile, str(zipped), "--json").output)
    assert report["added"] == 0 and report["attachments"]["completed"] == 2
    assert len(stored(profile)) == 30


def test_dry_run_writes_nothing(tmp_path: Path, profile: Path) -> None:
    path = write_export(tmp_path, STYLES["ios-de"], media=True)
    before = snapshot(profile)
    result = run(profile, str(path), "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["dry_run"] is True and report["messages"] == 29 and "added" not in report
    assert report["attachments"] == {"linked": 2, "not_in_export": 1, "omitted": 0}
    assert snapshot(profile) == before
    table = run(profile, str(path), "--dry-run")
    assert "dry run: nothing written" in table.output and "Ravi Kumar (" in table.output
    assert snapshot(profile) == before


def test_me_sets_direction_and_can_change_later(tmp_path: Path, profile: Path) -> None:
    path = write_export(tmp_path, STYLES["android-dmy"], media=False)
    assert run(profile, str(path), "--me", "Me Myself").exit_code == 0
    messages = stored(profile)
    out = {m.body["author"] for m in messages if m.direction == "out"}
    assert out == {"Me Myself"}
    assert all(m.direction == "in" for m in messages if m.body.get("author") != "Me Myself")
    report = json.loads(run(profile, str(path), "--me", "Anna", "--json").output)
    assert report["added"] == 0 and report["reattributed"] > 0
    assert {m.body["author"] for m in stored(profile) if m.direction == "out"} == {"Anna"}
    unknown = run(profile, str(path), "--me", "Nobody")
    assert unknown.exit_code == 1 and "'Nobody' wrote nothing in this export" in unknown.output


def test_map_joins_a_one_to_one_chat_with_the_contact(tmp_path: Path, profile: Path) -> None:
    lines = [
        ChatLine(
            timestamp=T0 + dt.timedelta(days=i * 5), author=("Ravi K", "Me")[i % 2], body=f"hi {i}"
        )
        for i in range(6)
    ]
    path = write_export(tmp_path, STYLES["android-dmy"], media=False, lines=lines, name="Ravi K")
    store = Store.open(profile, PASS)
    with store.transaction() as tx:
        store.put_contact(tx, Contact("acct-ravi", "ravi", b"k" * 32))
    store.close()
    missing = run(profile, str(path), "--me", "Me", "--map", "Ravi K=nobody")
    assert missing.exit_code == 1 and "not one of your contacts" in missing.output
    result = run(profile, str(path), "--me", "Me", "--map", "Ravi K=ravi", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["conversation"] == "acct-ravi"
    messages = stored(profile)
    assert {m.chat for m in messages} == {"acct-ravi"}
    assert {m.body["sender"] for m in messages if m.direction == "in"} == {"ravi"}
    assert {m.body["peer"] for m in messages} == {"ravi"}
    bad = run(profile, str(path), "--map", "Ravi K")
    assert bad.exit_code == 2 and "AUTHOR=USERNAME" in bad.output


def test_media_round_trips_and_nothing_is_stored_in_clear(tmp_path: Path, profile: Path) -> None:
    path = write_export(tmp_path, STYLES["ios-de"], media=True)
    report = json.loads(run(profile, str(path), "--json").output)
    assert report["attachments"]["stored_files"] == 2
    assert report["attachments"]["stored_bytes"] == len(PHOTO) + len(VOICE)
    store = Store.open(profile, PASS)
    try:
        files = {}
        for m in store.messages():
            att = m.body.get("attachment")
            if att and att["media"]:
                files[att["name"]] = b"".join(read_media(store, att["media"], att["chunks"]))
            elif att:
                assert att["status"] == "not-in-export"
        chats = imported_chats(store)
    finally:
        store.close()
    assert sorted(files.values()) == sorted([PHOTO, VOICE])
    assert chats[0].name == "Trip" and chats[0].details["imports"][0]["tz"] == "UTC"
    for file in profile.rglob("*"):
        data = file.read_bytes()
        for needle in (SECRET_TEXT.encode(), PHOTO[-30:], VOICE[100:140], b"Ravi Kumar", b"Trip"):
            assert needle not in data, (file, needle)


def test_large_file_chunks_are_bound_to_their_place(tmp_path: Path, profile: Path) -> None:
    big = os.urandom(2 * (1 << 20) + 5)
    text = render_chat(
        [ChatLine(timestamp=T0, author="Anna", body="VID-1.mp4 (file attached)")], ExportStyle()
    )
    path = tmp_path / "WhatsApp Chat - Big.zip"
    path.write_bytes(zip_export(text, media={"VID-1.mp4": big}))
    store = Store.open(profile, PASS)
    try:
        with open_export(path) as export:
            result = import_chat(store, export, export.parse(date_order="dmy", tz="UTC"))
        assert result.media_stored == 1 and result.media_bytes == len(big)
        att = store.messages()[0].body["attachment"]
        assert att["chunks"] == 3
        assert b"".join(read_media(store, att["media"], att["chunks"])) == big
        from sqlalchemy import update

        from baat.client import schema as s
        from baat.client.store import CorruptValue

        with store.transaction() as tx:  # swap two chunks: both fail to authenticate
            rows = tx.execute(s.imported_media.select().order_by(s.imported_media.c.chunk)).all()
            for a, b in ((0, 1), (1, 0)):
                tx.execute(
                    update(s.imported_media)
                    .where(s.imported_media.c.chunk == a)
                    .values(blob=rows[b].blob)
                )
        with pytest.raises(CorruptValue):
            b"".join(read_media(store, att["media"], att["chunks"]))
    finally:
        store.close()


def _truncated(tmp: Path) -> Path:
    data = zip_export("29/07/2021, 11:26 - Wasi: hi\n", media={"IMG-1.jpg": b"x" * 5000})
    path = tmp / "truncated.zip"
    path.write_bytes(data[: len(data) // 2])
    return path


BAD_INPUTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "binary": (lambda t: _write(t / "photo.txt", bytes(range(256)) * 8), "binary data"),
    "empty": (lambda t: _write(t / "WhatsApp Chat with X.txt", b""), "empty"),
    "no chat in zip": (
        lambda t: _write(t / "media.zip", _zip({"IMG-1.jpg": b"\xff\xd8"})),
        "no chat transcript",
    ),
    "truncated zip": (_truncated, "truncated or damaged"),
    "unknown dialect": (
        lambda t: _write(t / "WhatsApp Chat with X.txt", b"Dear diary,\nnothing happened.\n"),
        "header",
    ),
    "missing file": (lambda t: t / "nope.txt", "cannot read"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_exit_1_with_a_clear_message_and_write_nothing(
    tmp_path: Path, profile: Path, case: str
) -> None:
    make, wording = BAD_INPUTS[case]
    path = make(tmp_path)
    before = snapshot(profile)
    result = run(profile, str(path))
    assert result.exit_code == 1, result.output
    assert wording in result.output.lower(), result.output
    assert "Traceback" not in result.output
    assert snapshot(profile) == before


def test_damaged_media_fails_the_whole_import(tmp_path: Path, profile: Path) -> None:
    text = render_chat(
        [
            ChatLine(timestamp=T0, author="Anna", body="before"),
            ChatLine(timestamp=T0, author="Anna", body="IMG-1.jpg (file attached)"),
        ],
        ExportStyle(),
    )
    data = bytearray(zip_export(text, media={"IMG-1.jpg": os.urandom(20_000)}))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo("IMG-1.jpg")
    start = info.header_offset + 30 + len(info.filename) + 500
    data[start : start + 64] = bytes(64)  # the CRC check fails while the file is read
    path = tmp_path / "WhatsApp Chat - Anna.zip"
    path.write_bytes(bytes(data))
    store = Store.open(profile, PASS)
    try:
        with open_export(path) as export, pytest.raises(CorruptZip):
            import_chat(store, export, export.parse(date_order="dmy", tz="UTC"))
        assert store.messages() == [] and imported_chats(store) == []
    finally:
        store.close()
    result = run(profile, str(path))
    assert result.exit_code == 1 and "damaged" in result.output


def test_ambiguous_dates_stop_with_the_samples(tmp_path: Path, profile: Path) -> None:
    lines = [
        ChatLine(timestamp=dt.datetime(2023, 1, d, 10, 0), author="Anna", body=f"day {d}")
        for d in (2, 3, 4)
    ]
    path = write_export(tmp_path, ExportStyle(), media=False, lines=lines)
    before = snapshot(profile)
    result = run(profile, str(path))
    assert result.exit_code == 1
    assert "--date-order dmy" in result.output and "--date-order mdy" in result.output
    assert (
        "line 1: '02/01/2023, 10:00' = 2023-01-02 day-first, 2023-02-01 month-first"
        in result.output
    )
    assert snapshot(profile) == before
    ok = run(profile, str(path), "--date-order", "dmy", "--json")
    assert ok.exit_code == 0 and json.loads(ok.output)["first"].startswith("2023-01-02")


def test_progress_reports_parse_media_and_store(tmp_path: Path, profile: Path) -> None:
    path = write_export(tmp_path, STYLES["android-dmy"], media=True)
    seen: dict[str, tuple[int, int]] = {}
    store = Store.open(profile, PASS)
    try:
        with open_export(path) as export:
            chat = export.parse(tz="UTC", progress=lambda d, t: seen.__setitem__("parse", (d, t)))
            import_chat(store, export, chat, progress=lambda p, d, t: seen.__setitem__(p, (d, t)))
    finally:
        store.close()
    assert seen["parse"][0] == seen["parse"][1] > 0
    assert seen["messages"] == (30, 30)
    assert seen["media"] == (len(PHOTO) + len(VOICE),) * 2


def test_a_chat_without_a_name_needs_one(tmp_path: Path, profile: Path) -> None:
    path = tmp_path / "export.txt"
    path.write_text(render_chat(chat_lines(False), ExportStyle()), encoding="utf-8")
    result = run(profile, str(path))
    assert result.exit_code == 1 and "--chat NAME" in result.output
    named = run(profile, str(path), "--chat", "Trip", "--json")
    assert json.loads(named.output)["chat_id"] == chat_id_for("Trip")


def test_no_profile_is_a_clear_error(tmp_path: Path) -> None:
    path = write_export(tmp_path, ExportStyle(), media=False)
    result = run(tmp_path / "none", str(path))
    assert result.exit_code == 1 and "no Baat profile" in result.output
