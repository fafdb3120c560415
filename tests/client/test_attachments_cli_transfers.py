"""The network side of attachments and the SDK around it, through a real ``baat serve``:
uploads and downloads that resume after dropped connections, fetches that never hold up
the frame pump, fetches cut short that are taken up again."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from baat.client.attachments import Encryptor, decrypt_bytes, make_pointer
from baat.client.blobs import BlobClient, BlobGone
from baat.client.sdk import Client
from baat.client.store import StoredMessage
from support.devices import register
from support.server import ServerProcess

pytestmark = pytest.mark.e2e
PASS = "correct horse battery staple"


class Cut(httpx.AsyncByteStream):
    """A response body that breaks off after ``limit`` bytes, as a dropped connection."""

    def __init__(self, inner: httpx.AsyncByteStream, limit: int) -> None:
        self.inner, self.limit = inner, limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        async for data in self.inner:
            if sent + len(data) >= self.limit:
                yield data[: self.limit - sent]
                raise httpx.ReadError("connection reset by peer")
            sent += len(data)
            yield data

    async def aclose(self) -> None:
        await self.inner.aclose()


class Flaky(httpx.AsyncBaseTransport):
    """The real network, except that the 2nd PATCH arrives but its answer is lost, the 3rd
    arrives only half, and the 1st GET breaks off early."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.patches = self.gets = 0

    async def _forward(self, request: httpx.Request, body: bytes) -> None:
        headers = {**request.headers, "content-length": str(len(body))}
        out = httpx.Request(request.method, request.url, headers=headers, content=body)
        response = await self.inner.handle_async_request(out)
        await response.aread()
        await response.aclose()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            self.patches += 1
            if self.patches in (2, 3):
                body = b"".join([part async for part in request.stream])  # type: ignore[union-attr]
                await self._forward(request, body if self.patches == 2 else body[: len(body) // 2])
                raise httpx.ReadError("connection reset by peer")
        response = await self.inner.handle_async_request(request)
        if request.method == "GET" and response.status_code in (200, 206):
            self.gets += 1
            if self.gets == 1:
                length = int(response.headers["content-length"])
                assert isinstance(response.stream, httpx.AsyncByteStream)
                stream = Cut(response.stream, min(length // 2, 256 << 10))
                return httpx.Response(response.status_code, headers=response.headers, stream=stream)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_uploads_and_downloads_resume_after_dropped_connections(
    server: ServerProcess,
) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    # Larger than what the loopback's socket buffers hold, so that a download cut off
    # early really is cut off on the server too (it counts what it handed over).
    plain = os.urandom(24 << 20)
    enc = Encryptor(len(plain))
    blob = b"".join(enc.stream(io.BytesIO(plain)))
    sent: list[tuple[int, int]] = []
    flaky = Flaky()
    async with BlobClient(
        server.url, alice.creds, transport=flaky, piece_bytes=4 << 20, backoff=0.01
    ) as up:
        blob_id = await up.create(len(blob), 1)
        await up.upload(blob_id, io.BytesIO(blob), len(blob), lambda d, t: sent.append((d, t)))
    assert flaky.patches >= 6 and sent[-1] == (len(blob), len(blob))
    got: list[tuple[int, int]] = []
    flaky = Flaky()
    async with BlobClient(server.url, bob.creds, transport=flaky, backoff=0.01) as down:
        out = io.BytesIO()
        assert await down.download(blob_id, out, lambda d, t: got.append((d, t))) == len(blob)
        assert flaky.gets == 2 and got[-1] == (len(blob), len(blob))
        assert decrypt_bytes(out.getvalue(), make_pointer(blob_id, enc.result())) == plain
        # The cut-off first attempt did not count; the resumed one did, and was the last.
        with pytest.raises(BlobGone, match="no longer on the server"):
            await down.download(blob_id, io.BytesIO())


@pytest.fixture
async def people(server: ServerProcess, tmp_path: Path) -> AsyncIterator[tuple[Client, Client]]:
    alice = await Client.register(tmp_path / "alice", PASS, server.url, "alice")
    bob = await Client.register(tmp_path / "bob", PASS, server.url, "bob")
    await alice.connect()
    await bob.connect()
    try:
        yield alice, bob
    finally:
        await alice.close()
        await bob.close()


class Inbox:
    """The messages a client stores, as they arrive."""

    def __init__(self, client: Client) -> None:
        self.messages: list[StoredMessage] = []
        self._changed = asyncio.Event()
        client.message_listeners.append(self._add)

    def _add(self, m: StoredMessage) -> None:
        self.messages.append(m)
        self._changed.set()

    async def holds(self, count: int) -> list[StoredMessage]:
        async with asyncio.timeout(15):
            while len(self.messages) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.messages


def held_downloads(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Downloads wait for the returned event before they start."""
    gate = asyncio.Event()
    real = BlobClient.download

    async def slow(self: BlobClient, *args: object, **kwargs: object) -> int:
        await gate.wait()
        return await real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(BlobClient, "download", slow)
    return gate


async def test_a_slow_download_never_holds_up_the_messages_after_it(
    people: tuple[Client, Client], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = people
    gate = held_downloads(monkeypatch)
    inbox = Inbox(bob)
    fetched: list[StoredMessage] = []
    bob.attachment_listeners.append(fetched.append)
    path = tmp_path / "talk.mp3"
    path.write_bytes(os.urandom(3 << 20))
    progress: list[tuple[int, int]] = []
    await alice.send_file("bob", path, "first", lambda d, t: progress.append((d, t)))
    await alice.send_text("bob", "second")
    stored = await inbox.holds(2)
    assert [m.body["text"] for m in stored] == ["first", "second"]
    assert stored[0].body["attachment"]["state"] == "pending" and fetched == []
    assert progress[-1][0] == progress[-1][1] > 3 << 20
    gate.set()
    await bob.attachments.wait()
    (done,) = fetched
    assert done.body["attachment"]["state"] == "ready" and "pointer" not in done.body["attachment"]
    out = bob.attachments.save(done, tmp_path / "out.mp3")
    assert out.read_bytes() == path.read_bytes()
    # The sender keeps an encrypted copy it can write out too.
    mine = alice.attachments.find(done.message_id)
    assert alice.attachments.save(mine, tmp_path / "mine.mp3").read_bytes() == path.read_bytes()


async def test_a_download_cut_short_stays_pending_and_is_taken_up_again(
    people: tuple[Client, Client], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = people
    held_downloads(monkeypatch)
    inbox = Inbox(bob)
    path = tmp_path / "scan.pdf"
    path.write_bytes(os.urandom(200_000))
    await alice.send_file("bob", path)
    await inbox.holds(1)
    await bob.disconnect()  # the download is cancelled: nothing of it is kept
    assert [p for p in bob.attachments.directory.iterdir()] == []
    (pending,) = bob.attachments.pending()
    monkeypatch.undo()
    await bob.attachments.wait()  # over HTTP: no WebSocket needed
    assert bob.attachments.pending() == []
    ready = bob.attachments.find(pending.message_id)
    assert bob.attachments.save(ready, tmp_path / "x.pdf").read_bytes() == path.read_bytes()
    assert len(list(bob.attachments.directory.iterdir())) == 1


async def test_what_prepare_image_could_not_do_is_an_incident(
    people: tuple[Client, Client], tmp_path: Path
) -> None:
    alice, bob = people
    inbox = Inbox(bob)
    gif = tmp_path / "wave.gif"
    Image.new("P", (32, 32)).save(gif, format="GIF", comment=b"shot at 12.97N 77.59E")
    await alice.send_file("bob", gif, "hi")
    notes = [i for i in alice.incidents if i.kind == "attachment_note"]
    assert len(notes) == 1 and "wave.gif: metadata kept" in notes[0].detail
    got = await inbox.holds(1)
    assert got[0].body["attachment"]["content_type"] == "image/gif"
