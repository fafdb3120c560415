"""The blob HTTP API of a real ``baat serve``: auth, limits, offsets, fetch counting, expiry."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from baat.server import blobs
from support.devices import DeviceUnderTest, register
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


def auth(device: DeviceUnderTest) -> dict[str, str]:
    return {"Authorization": device.creds.header()}


def code(r: httpx.Response) -> str:
    return str(r.json()["error"]["code"])


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
async def people(server: ServerProcess) -> list[DeviceUnderTest]:
    return [await register(server.url, name) for name in ("alice", "bob", "carol")]


async def create(
    http: httpx.AsyncClient, who: DeviceUnderTest, length: int, fetches: int = 1
) -> str:
    r = await http.post(
        "/v1/blobs", json={"length": length, "fetches_allowed": fetches}, headers=auth(who)
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"] == body["url"] == f"/v1/blobs/{body['id']}"
    assert body["offset"] == 0 and body["length"] == length
    return str(body["url"])


async def patch(
    http: httpx.AsyncClient, who: DeviceUnderTest, url: str, offset: int, data: bytes
) -> httpx.Response:
    return await http.patch(url, content=data, headers={**auth(who), "Upload-Offset": str(offset)})


async def uploaded(
    http: httpx.AsyncClient, who: DeviceUnderTest, data: bytes, fetches: int = 1
) -> str:
    url = await create(http, who, len(data), fetches)
    r = await patch(http, who, url, 0, data)
    assert r.status_code == 204 and r.headers["upload-offset"] == str(len(data))
    return url


async def test_every_call_needs_valid_credentials(
    http: httpx.AsyncClient, people: list[DeviceUnderTest]
) -> None:
    alice = people[0]
    url = await uploaded(http, alice, b"x" * 10)
    wrong = {"Authorization": f"Bearer {alice.account_id}.{alice.device_id}.not-the-token"}
    for headers in ({}, wrong, {"Authorization": "Basic abc"}):
        calls = [
            http.post("/v1/blobs", json={"length": 1, "fetches_allowed": 1}, headers=headers),
            http.patch(url, content=b"x", headers={**headers, "Upload-Offset": "0"}),
            http.get(url, headers=headers),
        ]
        for call in calls:
            r = await call
            assert r.status_code == 401 and code(r) == "unauthorized"
        assert (await http.head(url, headers=headers)).status_code == 401


async def test_creation_checks_its_request(
    http: httpx.AsyncClient, people: list[DeviceUnderTest]
) -> None:
    alice = people[0]
    bad = [b"not json", b"[]", b'{"length": 10}', b'{"length": 0, "fetches_allowed": 1}']
    bad += [b'{"length": "10", "fetches_allowed": 1}', b'{"length": 10, "fetches_allowed": 0}']
    bad += [b'{"length": 10, "fetches_allowed": 1001}', b'{"length": true, "fetches_allowed": 1}']
    for body in bad:
        r = await http.post("/v1/blobs", content=body, headers=auth(alice))
        assert r.status_code == 400 and code(r) == "invalid_request", body
    r = await http.post(
        "/v1/blobs",
        json={"length": blobs.MAX_BLOB_BYTES + 1, "fetches_allowed": 1},
        headers=auth(alice),
    )
    assert r.status_code == 413 and code(r) == "blob_too_large"


async def test_bytes_past_the_declared_length_are_refused(
    http: httpx.AsyncClient, people: list[DeviceUnderTest]
) -> None:
    alice = people[0]
    url = await create(http, alice, 10)
    r = await patch(http, alice, url, 0, b"x" * 11)
    assert r.status_code == 413 and code(r) == "blob_too_large"

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: caught while reading
        yield b"y" * 6
        yield b"y" * 6

    r = await http.patch(url, content=chunked(), headers={**auth(alice), "Upload-Offset": "0"})
    assert r.status_code == 413 and code(r) == "blob_too_large"


async def test_offsets_uploaders_and_unfinished_blobs(
    http: httpx.AsyncClient, people: list[DeviceUnderTest]
) -> None:
    alice, bob, _ = people
    url = await create(http, alice, 10)
    assert (await patch(http, alice, url, 0, b"01234")).headers["upload-offset"] == "5"
    head = await http.head(url, headers=auth(alice))
    assert head.status_code == 200
    assert (head.headers["upload-offset"], head.headers["upload-length"]) == ("5", "10")
    r = await patch(http, alice, url, 3, b"34567")
    assert r.status_code == 409 and code(r) == "offset_mismatch"
    assert r.headers["upload-offset"] == "5"
    r = await http.patch(url, content=b"5", headers=auth(alice))
    assert r.status_code == 400 and code(r) == "invalid_request"
    # Someone else's upload does not exist for them, whatever they try.
    r = await patch(http, bob, url, 5, b"56789")
    assert r.status_code == 404 and code(r) == "unknown_blob"
    assert (await http.head(url, headers=auth(bob))).status_code == 404
    # Nothing half-stored is served.
    r = await http.get(url, headers=auth(bob))
    assert r.status_code == 409 and code(r) == "incomplete_blob"
    assert (await patch(http, alice, url, 5, b"56789")).status_code == 204
    r = await http.get(url, headers=auth(bob))
    assert r.status_code == 200 and r.content == b"0123456789"
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["cache-control"] == "no-store"


async def test_unknown_ids_are_404(http: httpx.AsyncClient, people: list[DeviceUnderTest]) -> None:
    for method in ("GET", "HEAD", "PATCH"):
        r = await http.request(
            method, "/v1/blobs/" + "A" * 32, headers={**auth(people[0]), "Upload-Offset": "0"}
        )
        assert r.status_code == 404
        if method != "HEAD":
            assert code(r) == "unknown_blob"


async def test_each_recipient_device_counts_once_then_the_blob_is_gone(
    server: ServerProcess, http: httpx.AsyncClient, people: list[DeviceUnderTest]
) -> None:
    alice, bob, carol = people
    data = bytes(range(256)) * 40
    url = await uploaded(http, alice, data, fetches=2)
    stored = list((server.data_dir / "blobs").glob("*/*"))
    assert [p.name for p in stored] == [url.rsplit("/", 1)[1]]
    # The uploader checking its upload, a partial download and a repeat do not count.
    assert (await http.get(url, headers=auth(alice))).content == data
    r = await http.get(url, headers={**auth(carol), "Range": "bytes=0-99"})
    assert r.status_code == 206 and r.content == data[:100]
    for _ in range(2):
        assert (await http.get(url, headers=auth(bob))).content == data
    # Carol resumes her download to the end: her fetch is complete, the last one allowed.
    r = await http.get(url, headers={**auth(carol), "Range": "bytes=100-"})
    assert r.status_code == 206 and r.content == data[100:]
    assert r.headers["content-range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    for who in (alice, bob, carol):
        r = await http.get(url, headers=auth(who))
        assert r.status_code == 404 and code(r) == "unknown_blob"
    assert not stored[0].exists()


async def test_ranges(http: httpx.AsyncClient, people: list[DeviceUnderTest]) -> None:
    alice = people[0]
    data = b"0123456789"
    url = await uploaded(http, alice, data)
    for header, want in [("bytes=2-4", b"234"), ("bytes=7-", b"789"), ("bytes=-3", b"789")]:
        r = await http.get(url, headers={**auth(alice), "Range": header})
        assert (r.status_code, r.content) == (206, want)
    for header in ("bytes=10-", "bytes=5-2", "items=0-1", "bytes=0-1,4-5", "bytes=-"):
        r = await http.get(url, headers={**auth(alice), "Range": header})
        assert r.status_code == 416 and code(r) == "invalid_range", header
        assert r.headers["content-range"] == "bytes */10"


async def test_expired_blobs_are_refused_before_the_sweep(
    server: ServerProcess, http: httpx.AsyncClient, people: list[DeviceUnderTest]
) -> None:
    alice, bob, _ = people
    url = await uploaded(http, alice, b"ciphertext")
    half = await create(http, alice, 10)
    db = sqlite3.connect(server.data_dir / "baat.sqlite3", timeout=30)
    try:
        with db:
            db.execute("UPDATE blobs SET expires_at = ?", (int(time.time()) - 1,))
    finally:
        db.close()
    r = await http.get(url, headers=auth(bob))
    assert r.status_code == 404 and code(r) == "unknown_blob"
    assert (await http.head(half, headers=auth(alice))).status_code == 404
    r = await patch(http, alice, half, 0, b"x")
    assert r.status_code == 404 and code(r) == "unknown_blob"


def test_the_size_limit_follows_the_server_configuration(tmp_path: Path) -> None:
    state = SimpleNamespace(config=SimpleNamespace(data_dir=tmp_path))
    assert blobs.max_blob_bytes(state) == 100 * 1024 * 1024  # type: ignore[arg-type]
    state.config.max_blob_bytes = 1234
    assert blobs.max_blob_bytes(state) == 1234  # type: ignore[arg-type]
