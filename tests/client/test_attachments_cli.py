"""Files cross between two profiles through a real ``baat serve`` and the real ``baat`` CLI:
encrypted on the sender, uploaded as ciphertext only, fetched once, kept encrypted in both
profiles, saved decrypted into the recipient's ``files/``."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import ExifTags, Image

from baat.cli.client import attachments
from support.server import ServerProcess

pytestmark = pytest.mark.e2e
PASS = "correct horse battery staple"
BIG = 20 << 20


def baat(profile: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BAAT_PASSPHRASE": PASS, "BAAT_PROFILE": str(profile)}
    proc = subprocess.run(
        [sys.executable, "-m", "baat", *args], capture_output=True, text=True, env=env, timeout=90
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"baat {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def attachments_cli(profile: Path, *args: str) -> tuple[int, str]:
    """The ``attachments`` group, run in this process (it is not registered on root yet)."""
    env = {"BAAT_PASSPHRASE": PASS, "BAAT_PROFILE": str(profile)}
    result = CliRunner().invoke(attachments, list(args), env=env)
    return result.exit_code, result.output


@pytest.fixture
def pair(tmp_path: Path, server: ServerProcess) -> tuple[Path, Path]:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    baat(alice, "register", "alice", "--server", server.url)
    baat(bob, "register", "bob", "--server", server.url)
    return alice, bob


def photo(path: Path, fmt: str) -> Path:
    """An image whose EXIF holds a location."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Baat test camera"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (12.0, 58.0, 17.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (77.0, 35.0, 40.0)
    pixels = bytes((x * 7 + y * 3) % 256 for y in range(300) for x in range(400) for _ in "rgb")
    image = Image.frombytes("RGB", (400, 300), pixels)
    image.save(path, format=fmt, exif=exif.tobytes())
    with Image.open(path) as check:
        assert check.getexif().get_ifd(ExifTags.IFD.GPSInfo), "the test photo has no location"
    return path


def assert_no_plaintext(root: Path, plain: bytes, skip: Path | None = None) -> None:
    step = max(len(plain) // 16, 1)
    needles = {plain[i : i + 64] for i in range(0, max(len(plain) - 64, 1), step)}
    for path in root.rglob("*"):
        if path.is_file() and (skip is None or skip not in path.parents):
            content = path.read_bytes()
            for needle in needles:
                assert needle not in content, f"plaintext found in {path}"


def blob_files(server: ServerProcess) -> list[Path]:
    return [p for p in (server.data_dir / "blobs").rglob("*") if p.is_file()]


def wait_until_no_blobs(server: ServerProcess) -> None:
    # The server deletes a blob just after the last byte left it: allow it a moment.
    deadline = time.monotonic() + 10
    while blob_files(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert blob_files(server) == []


def check_crossed(got: dict[str, Any], original: Path, bob: Path) -> Path:
    assert got["sender"] == "alice" and isinstance(got["file"], str)
    saved = Path(got["file"])
    assert saved.parent == bob / "files"
    if original.suffix in (".png", ".jpg"):
        with Image.open(original) as before, Image.open(saved) as after:
            assert after.size == before.size
            assert not after.getexif().get_ifd(ExifTags.IFD.GPSInfo), "the location was sent"
            assert b"Baat test camera" not in saved.read_bytes()
            if original.suffix == ".png":  # lossless: every pixel as it was
                assert after.convert("RGB").tobytes() == before.convert("RGB").tobytes()
    else:
        assert saved.name == original.name and saved.read_bytes() == original.read_bytes()
    return saved


def test_files_cross_while_the_recipient_is_offline(
    pair: tuple[Path, Path], server: ServerProcess, tmp_path: Path
) -> None:
    alice, bob = pair
    big = tmp_path / "holiday.mov"
    big.write_bytes(os.urandom(BIG))
    jpeg = photo(tmp_path / "IMG_0001.jpg", "JPEG")
    sent = lines(
        baat(alice, "send", "bob", "--file", str(big), "--caption", "Goa!", "--json").stdout
    )
    assert sent[0]["status"] == "sent" and sent[0]["file"] == str(big)
    baat(alice, "send", "bob", "--file", str(jpeg), "--json")
    # Bob is offline: the server holds two blobs, ciphertext only.
    assert len(blob_files(server)) == 2
    assert_no_plaintext(server.data_dir, big.read_bytes())
    # Alice's copies are encrypted in her profile.
    assert_no_plaintext(alice, big.read_bytes())
    server.restart()

    got = lines(baat(bob, "sync", "--json").stdout)
    assert [m["text"] for m in got] == ["Goa!", ""]
    check_crossed(got[0], big, bob)
    saved_photo = check_crossed(got[1], jpeg, bob)
    assert saved_photo.name == "IMG_0001.jpg"
    assert got[1]["attachment"] == {
        "file_name": "IMG_0001.jpg",
        "content_type": "image/jpeg",
        "size": saved_photo.stat().st_size,
        "width": 400,
        "height": 300,
        "state": "ready",
    }
    # Bob's device was the one allowed to fetch them: the server forgot both.
    wait_until_no_blobs(server)
    assert_no_plaintext(server.data_dir, big.read_bytes())
    assert_no_plaintext(bob, big.read_bytes(), skip=bob / "files")
    # Nothing comes twice.
    assert lines(baat(bob, "sync", "--json").stdout) == []
    assert sorted(p.name for p in (bob / "files").iterdir()) == ["IMG_0001.jpg", "holiday.mov"]

    # Both sides can write the file out of their encrypted store again.
    mid = str(got[0]["id"])
    for who in (alice, bob):
        out = tmp_path / f"{who.name}-copy.mov"
        code, output = attachments_cli(who, "get", mid, "--out", str(out), "--json")
        assert code == 0, output
        assert json.loads(output)["file"] == str(out) and out.read_bytes() == big.read_bytes()
    code, output = attachments_cli(bob, "get", mid, "--out", str(bob / "files"), "--json")
    assert code == 0 and json.loads(output)["file"] == str(bob / "files" / "holiday-1.mov")
    code, output = attachments_cli(bob, "get", mid, "--out", str(tmp_path / "bob-copy.mov"))
    assert code == 1 and "exists" in output
    code, output = attachments_cli(bob, "list", "alice", "--json")
    assert [r["attachment"]["file_name"] for r in lines(output)] == ["holiday.mov", "IMG_0001.jpg"]
    history = lines(baat(alice, "history", "bob", "--json").stdout)
    assert [m["attachment"]["state"] for m in history] == ["ready", "ready"]


def test_files_cross_while_the_recipient_listens(
    pair: tuple[Path, Path], server: ServerProcess, tmp_path: Path
) -> None:
    alice, bob = pair
    big = tmp_path / "dataset.bin"
    big.write_bytes(os.urandom(BIG))
    png = photo(tmp_path / "map.png", "PNG")
    listener = subprocess.Popen(
        [sys.executable, "-m", "baat", "sync", "--wait", "12", "--json"],
        env={**os.environ, "BAAT_PASSPHRASE": PASS, "BAAT_PROFILE": str(bob)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2.5)
        baat(alice, "send", "bob", "the map", "--file", str(png))
        baat(alice, "send", "bob", "--file", str(big))
        out, err = listener.communicate(timeout=60)
    finally:
        if listener.poll() is None:
            listener.kill()
    got = lines(out)
    assert [m["text"] for m in got] == ["the map", ""], err
    check_crossed(got[0], png, bob)
    check_crossed(got[1], big, bob)
    wait_until_no_blobs(server)
    assert_no_plaintext(server.data_dir, big.read_bytes())
    assert_no_plaintext(bob, big.read_bytes(), skip=bob / "files")


def test_a_blob_altered_on_the_server_is_refused_and_nothing_is_kept(
    pair: tuple[Path, Path], server: ServerProcess, tmp_path: Path
) -> None:
    alice, bob = pair
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.7\n" + os.urandom(300_000))
    mid = lines(baat(alice, "send", "bob", "read this", "--file", str(report), "--json").stdout)[0]
    (stored,) = blob_files(server)
    content = bytearray(stored.read_bytes())
    content[len(content) // 2] ^= 0x40
    stored.write_bytes(bytes(content))

    proc = baat(bob, "sync", "--json")
    (got,) = lines(proc.stdout)
    # The message stays, with what went wrong; the file does not.
    assert got["id"] == mid["id"] and got["text"] == "read this" and "file" not in got
    att = got["attachment"]
    assert isinstance(att, dict) and att["state"] == "failed" and "digest" in att["error"]
    warning = [w for w in lines(proc.stderr) if w["warning"] == "attachment_failed"]
    assert len(warning) == 1 and "report.pdf from alice could not be received" in str(
        warning[0]["message"]
    )
    assert "altered" in str(warning[0]["message"])
    assert not (bob / "files").exists() or list((bob / "files").iterdir()) == []
    assert [p for p in (bob / "media").iterdir()] == []  # nothing half-stored
    code, output = attachments_cli(bob, "get", str(mid["id"]), "--out", str(tmp_path / "x.pdf"))
    assert code == 1 and "report.pdf is not here" in output and "digest" in output
    assert not (tmp_path / "x.pdf").exists()
    # Later syncs do not try again, and the conversation goes on.
    baat(alice, "send", "bob", "did it arrive?")
    assert [m["text"] for m in lines(baat(bob, "sync", "--json").stdout)] == ["did it arrive?"]


def test_a_blob_fetched_by_someone_else_first_is_reported_gone(
    pair: tuple[Path, Path], server: ServerProcess, tmp_path: Path
) -> None:
    import httpx

    from baat.client.profile import load_credentials

    alice, bob = pair
    notes = tmp_path / "notes.txt"
    notes.write_text("meeting at noon\n" * 100)
    baat(alice, "send", "bob", "--file", str(notes))
    # Whoever holds Bob's token fetches the blob first: the server forgets it.
    url, creds = load_credentials(bob, PASS)
    (stored,) = blob_files(server)
    with httpx.Client(base_url=url, headers={"authorization": creds.header()}) as http:
        assert http.get(f"/v1/blobs/{stored.name}").status_code == 200
        # Kept open until the server has counted the fetch (see BlobClient.download).
        http.head(f"/v1/blobs/{stored.name}")
    wait_until_no_blobs(server)
    proc = baat(bob, "sync", "--json")
    (got,) = lines(proc.stdout)
    assert got["attachment"]["state"] == "failed"
    assert "no longer on the server" in proc.stderr


def test_bad_input_sends_nothing(pair: tuple[Path, Path], tmp_path: Path) -> None:
    alice, bob = pair
    proc = baat(alice, "send", "bob", "--file", str(tmp_path / "missing.bin"), check=False)
    assert proc.returncode == 1 and f"no such file: {tmp_path / 'missing.bin'}" in proc.stderr
    proc = baat(alice, "send", "bob", "--file", str(tmp_path), check=False)
    assert proc.returncode == 1 and "is a directory" in proc.stderr
    proc = baat(alice, "send", "bob", check=False)
    assert proc.returncode == 2 and "--file" in proc.stderr
    proc = baat(alice, "send", "bob", "hi", "--caption", "also", check=False)
    assert proc.returncode == 2
    assert baat(alice, "history", "bob", check=False).returncode == 1  # no conversation yet
    assert lines(baat(bob, "sync", "--json").stdout) == []


def test_an_oversize_file_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server", None, "--max-blob-bytes", str(1 << 20)).start()
    try:
        alice, bob = tmp_path / "alice", tmp_path / "bob"
        baat(alice, "register", "alice", "--server", server.url)
        baat(bob, "register", "bob", "--server", server.url)
        baat(alice, "send", "bob", "hello")
        big = tmp_path / "big.iso"
        big.write_bytes(os.urandom(2 << 20))
        proc = baat(alice, "send", "bob", "--file", str(big), check=False)
        assert proc.returncode == 1
        assert "big.iso is too large to send (2.0 MiB)" in proc.stderr
        assert "limited to 1048576 bytes" in proc.stderr
        history = lines(baat(alice, "history", "bob", "--json").stdout)
        assert [m["text"] for m in history] == ["hello"]
        assert not (alice / "media").exists() or list((alice / "media").iterdir()) == []
        assert [m["text"] for m in lines(baat(bob, "sync", "--json").stdout)] == ["hello"]
        # Just under the limit goes through.
        fits = tmp_path / "fits.bin"
        fits.write_bytes(os.urandom(900_000))
        baat(alice, "send", "bob", "--file", str(fits))
        (got,) = lines(baat(bob, "sync", "--json").stdout)
        assert Path(str(got["file"])).read_bytes() == fits.read_bytes()
    finally:
        server.stop()


def test_content_without_an_attachment_reads_as_before() -> None:
    import msgspec

    from baat.client.core import Content

    class ContentV1(msgspec.Struct, frozen=True, omit_defaults=True):
        v: int
        type: str
        sender_name: str
        sent_at: int
        text: str = ""

    text = Content(v=1, type="text", sender_name="a", sent_at=1, text="hi")
    # The same map for an older reader (with 16 fields and more msgspec writes its header
    # as map16 even when fewer are present, so the bytes differ but not what they say).
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(text)) == msgspec.msgpack.decode(
        msgspec.msgpack.encode(ContentV1(v=1, type="text", sender_name="a", sent_at=1, text="hi"))
    )
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(text), type=ContentV1) == ContentV1(
        v=1, type="text", sender_name="a", sent_at=1, text="hi"
    )
    with_file = Content(v=1, type="file", sender_name="a", sent_at=1, text="c", attachment=b"p")
    old = msgspec.msgpack.decode(msgspec.msgpack.encode(with_file), type=ContentV1)
    assert old.text == "c"  # an older reader shows the caption
    new = msgspec.msgpack.decode(msgspec.msgpack.encode(text), type=Content)
    assert new.attachment is None


def test_images_are_recognised_by_their_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from baat.client import media_files
    from baat.client.media_files import inspect_file

    named_wrong = photo(tmp_path / "scan.dat", "PNG")
    out = inspect_file(named_wrong)
    assert out.content_type == "image/png" and out.image is not None and out.image.thumbnail
    not_an_image = tmp_path / "fake.jpg"
    not_an_image.write_bytes(b"hello")
    out = inspect_file(not_an_image)
    assert out.content_type == "application/octet-stream" and out.image is None
    assert out.notes and "could not be checked" in out.notes[0]
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="GIF")
    (tmp_path / "a.gif").write_bytes(buf.getvalue())
    assert inspect_file(tmp_path / "a.gif").content_type == "image/gif"
    assert inspect_file(tmp_path / "fake.jpg", strip_metadata=False).notes == ()
    # Too large to decode and re-encode: sent as it is, and the sender is told.
    monkeypatch.setattr(media_files, "MAX_IMAGE_BYTES", 100)
    out = inspect_file(named_wrong)
    assert out.image is None and out.content_type == "image/png"
    assert "too large" in out.notes[0]
