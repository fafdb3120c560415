"""A blob fetch counts towards ``fetches_allowed`` only when the whole blob has been served
to that device (baat.server.blob_progress), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.devices import DeviceUnderTest, register
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


def auth(device: DeviceUnderTest, **extra: str) -> dict[str, str]:
    return {"Authorization": device.creds.header(), **extra}


@pytest.fixture
def blob_server(tmp_path: Path, db_url: str) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "server", db_url).start()
    try:
        yield server
    finally:
        server.stop()
        assert "Traceback" not in server.log()


async def upload(http: httpx.AsyncClient, who: DeviceUnderTest, data: bytes, fetches: int) -> str:
    r = await http.post(
        "/v1/blobs", json={"length": len(data), "fetches_allowed": fetches}, headers=auth(who)
    )
    assert r.status_code == 201, r.text
    url = str(r.json()["url"])
    r = await http.patch(url, content=data, headers=auth(who, **{"Upload-Offset": "0"}))
    assert r.status_code == 204
    return url


async def test_only_a_whole_blob_served_counts(blob_server: ServerProcess) -> None:
    alice, bob, carol, dan = [
        await register(blob_server.url, n) for n in ("balice", "bbob", "bcarol", "bdan")
    ]
    data = bytes(range(256)) * 2000  # 512 000 bytes: several chunks of the store
    async with httpx.AsyncClient(base_url=blob_server.url, timeout=30) as http:
        url = await upload(http, alice, data, fetches=1)
        # The end of the blob alone, or any range not starting where the device's download
        # stands, is not a fetch: the one fetch allowed stays for the device it was for.
        for wanted in ("bytes=-1", f"bytes={len(data) - 10}-", "bytes=1000-"):
            r = await http.get(url, headers=auth(bob, Range=wanted))
            assert r.status_code == 206
        r = await http.get(url, headers=auth(carol))
        assert r.status_code == 200 and r.content == data
        # Carol's whole download was the one allowed: the blob is gone.
        r = await http.get(url, headers=auth(dan))
        assert r.status_code == 404

        # A download dropped early is not a fetch either. The blob is far larger than what
        # the kernel's socket buffers hold, so the server cannot have sent it all.
        big = bytes(range(256)) * (96 << 12)  # 24 MiB
        url = await upload(http, alice, big, fetches=1)
        async with http.stream("GET", url, headers=auth(bob)) as r:
            assert r.status_code == 200
            async for _ in r.aiter_raw(65536):
                break
        r = await http.get(url, headers=auth(carol))
        assert r.status_code == 200 and r.content == big

        # A download resumed in pieces counts once its pieces cover the blob from byte 0.
        url = await upload(http, alice, data, fetches=2)
        half = len(data) // 2
        r = await http.get(url, headers=auth(bob, Range=f"bytes=0-{half - 1}"))
        assert r.status_code == 206 and r.content == data[:half]
        r = await http.get(url, headers=auth(bob, Range=f"bytes={half}-"))
        assert r.status_code == 206 and r.content == data[half:]
        r = await http.get(url, headers=auth(carol))
        assert r.status_code == 200  # Bob's counted, Carol's is the second and last
        r = await http.get(url, headers=auth(dan))
        assert r.status_code == 404
