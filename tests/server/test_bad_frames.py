"""The bad-frame corpus on a live server (issue 14, item 6): each malformed input gets a typed
``Error`` with a stable code and one line in the log, never a traceback; the issue's own
examples (nesting deep enough for ``RecursionError``, a device id of 2**63 that overflowed
the database driver) included."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
import websockets

from baat.proto import Authenticate, Challenge, Error, Ready, auth_message, decode_server, encode
from support.devices import DeviceUnderTest, register
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the whole corpus: each case must leave it serving the next."""
    proc = ServerProcess(tmp_path_factory.mktemp("server")).start()
    try:
        yield proc
    finally:
        proc.stop()


DEEP = b"\x91" * 100_000 + b"\x01"
M = msgspec.msgpack.encode

# (name, frame, expected code, authenticate first)
CORPUS: list[tuple[str, bytes, str, bool]] = [
    ("deep nesting before auth", DEEP, "malformed_frame", False),
    ("deep nesting in a field", b"\x93\x06\x01" + DEEP, "malformed_frame", True),
    ("device id 2**63", M([1, 1, "acct", 2**63, b"s" * 64]), "malformed_frame", False),
    ("fetch device 2**63", M([4, 9, "acct", 2**63]), "malformed_frame", True),
    ("send to device 2**64-1", M([2, "m", [["a", 2**64 - 1, b"x"]]]), "malformed_frame", True),
    ("key id 2**63", M([5, 3, [[1, 2**63, b"k" * 32, b""]], []]), "malformed_frame", True),
    ("negative request id", M([4, -1, "acct", 1]), "malformed_frame", True),
    ("huge array header", b"\x92\x02\xdd\xff\xff\xff\xff", "malformed_frame", True),
    ("bin claiming 4 GiB", b"\x92\x03\x91\xc6\xff\xff\xff\xff", "malformed_frame", True),
    ("truncated", encode(Authenticate(1, "acct", 1, b"s" * 64))[:9], "malformed_frame", False),
    ("not an array", M({"t": 1}), "malformed_frame", False),
    ("unknown tag", M([42, "future"]), "unknown_frame", True),
    ("send before auth", M([2, "m", [["a", 1, b"x"]]]), "unauthenticated", False),
    ("frame too large", M([6, 1]) + b"\x00" * (300 * 1024), "frame_too_large", True),
    ("too many guids", M([3, [b"g"] * 2000]), "malformed_frame", True),
]


async def connected(server: ServerProcess, device: DeviceUnderTest | None) -> object:
    ws = await websockets.connect(
        server.url.replace("http", "ws") + "/v1/ws", compression=None, max_size=None
    )
    challenge = decode_server(await ws.recv())  # type: ignore[arg-type]
    assert isinstance(challenge, Challenge)
    if device is not None:
        sig = device.sign(auth_message(challenge.nonce, device.account_id, device.device_id))
        await ws.send(encode(Authenticate(1, device.account_id, device.device_id, sig)))
        assert isinstance(decode_server(await ws.recv()), Ready)  # type: ignore[arg-type]
    return ws


@pytest.mark.parametrize(("name", "frame", "code", "auth"), CORPUS, ids=[c[0] for c in CORPUS])
async def test_bad_frame_gets_its_typed_error(
    shared: ServerProcess, name: str, frame: bytes, code: str, auth: bool
) -> None:
    server = shared
    device = await register(server.url, "bad" + str(abs(hash(name)) % 10**8)) if auth else None
    ws = await connected(server, device)
    try:
        await ws.send(frame)  # type: ignore[attr-defined]
        while True:
            reply = decode_server(await ws.recv())  # type: ignore[attr-defined]
            if isinstance(reply, Error):
                break
        assert reply.code == code, reply
    finally:
        await ws.close()  # type: ignore[attr-defined]
    log = server.log()
    assert "Traceback" not in log
    assert f"refused frame: {code}" in log


def test_server_still_healthy_after_the_corpus(shared: ServerProcess) -> None:
    import httpx

    assert httpx.get(shared.url + "/healthz", timeout=10).json()["status"] == "ok"
