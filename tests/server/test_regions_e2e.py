"""Two storage regions, each its own ``baat serve`` with its own database, linked as peers.

An account's data must live only in its home region; writing across goes through both
servers and their transfer gates, and nothing of one region's accounts stays in the other's
database once delivered.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from baat.server.regions import wire
from baat.server.regions.signing import (
    SIGNATURE_HEADER,
    RegionSigner,
    load_private_key,
    new_private_key_text,
)
from support.cli import PASS, baat, lines, listen
from support.regions import make_region_key, region_args, signer
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


def dump(db: Path) -> str:
    """Every value of every table, as text: what a region's database holds."""
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(
            repr(row) for t in tables for row in con.execute(f'SELECT * FROM "{t}"').fetchall()
        )
    finally:
        con.close()


@pytest.fixture
def regions(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    india = ServerProcess(tmp_path / "in")
    europe = ServerProcess(tmp_path / "eu")
    keys = {r: tmp_path / f"{r}.key" for r in ("in", "eu")}
    public = {r: make_region_key(k) for r, k in keys.items()}
    india.extra = region_args("in", keys["in"], {"eu": (europe.url, public["eu"])})
    europe.extra = region_args("eu", keys["eu"], {"in": (india.url, public["in"])})
    india.start()
    europe.start()
    try:
        yield india, europe
    finally:
        for s in (india, europe):
            if s.proc is not None:
                s.stop()


def test_accounts_live_in_their_home_region_and_talk_across(
    tmp_path: Path, regions: tuple[ServerProcess, ServerProcess]
) -> None:
    india, europe = regions
    asha, bruno = tmp_path / "asha", tmp_path / "bruno"
    reg = ("register", "--json", "--server", india.url, "--jurisdiction")
    asha_id = json.loads(baat(asha, *reg, "IN", "asha").stdout)["account_id"]
    # Bruno signs up at the Indian deployment but is an EU user: registration is sent on to
    # the EU region, whose server becomes his profile's server.
    bruno_me = json.loads(baat(bruno, *reg, "EU", "bruno").stdout)
    bruno_id = bruno_me["account_id"]
    assert asha_id.startswith("in-") and bruno_id.startswith("eu-")
    assert bruno_me["server"] == europe.url

    # Names are unique across regions.
    taken = baat(tmp_path / "x", *reg, "IN", "bruno", check=False)
    assert taken.returncode != 0 and "username is taken" in taken.stderr

    # Across regions: lookup and prekeys come from the EU, the envelope goes there.
    assert lines(baat(asha, "send", "bruno", "नमस्ते from Mumbai", "--json"))[0]["status"] == "sent"
    got = lines(baat(bruno, "sync", "--json"))
    assert [(m["sender"], m["text"]) for m in got] == [("asha", "नमस्ते from Mumbai")]
    baat(bruno, "send", "asha", "Hallo aus Frankfurt")
    assert [m["text"] for m in lines(baat(asha, "sync", "--json"))] == ["Hallo aus Frankfurt"]
    assert lines(baat(bruno, "sync", "--json")) == []
    # An attachment stays in its uploader's region; Bruno's server relays it to him.
    photo = tmp_path / "gateway.bin"
    photo.write_bytes(os.urandom(300_000))
    baat(asha, "send", "bruno", "--file", str(photo), "--caption", "Gateway of India")
    got = lines(baat(bruno, "sync", "--json"))
    assert [m["text"] for m in got] == ["Gateway of India"]
    assert Path(str(got[0]["file"])).read_bytes() == photo.read_bytes()
    assert not list((europe.data_dir / "blobs").rglob("*.bin"))
    # The transparency report publishes the counted crossings (written every few seconds).
    deadline = time.monotonic() + 15
    crossings: list[dict[str, object]] = []
    while time.monotonic() < deadline and not crossings:
        time.sleep(0.5)
        report = httpx.get(india.url + "/v1/transparency").json()
        crossings = report["transfers_between_regions_last_year"]
    assert {"kind": "envelope", "from_region": "in", "to_region": "eu"} in [
        {k: x[k] for k in ("kind", "from_region", "to_region")} for x in crossings
    ]

    # Envelopes in transit are the only thing of one region's accounts the other holds
    # (queued for its own accounts): once everything is fetched, nothing is left.
    baat(bruno, "sync")
    baat(asha, "sync")
    india.stop()
    europe.stop()
    in_db, eu_db = dump(india.data_dir / "baat.sqlite3"), dump(europe.data_dir / "baat.sqlite3")
    # Each account's data is only in its home region's database.
    assert asha_id in in_db and bruno_id not in in_db and "bruno" not in in_db
    assert bruno_id in eu_db and asha_id not in eu_db and "asha" not in eu_db
    # Every transfer passed the gate and was counted, in the region it left.
    con = sqlite3.connect(india.data_dir / "baat.sqlite3")
    counted = {
        (k, f, t): n
        for k, f, t, n in con.execute(
            "SELECT kind, from_region, to_region, count FROM region_transfers"
        )
    }
    con.close()
    assert counted.get(("envelope", "in", "eu"), 0) >= 1
    con = sqlite3.connect(europe.data_dir / "baat.sqlite3")
    kinds = {k for (k,) in con.execute("SELECT kind FROM region_transfers WHERE to_region='in'")}
    con.close()
    assert {"bundle", "lookup", "envelope"} <= kinds


def test_unreachable_region_refuses_with_a_retryable_error_and_loses_nothing(
    tmp_path: Path, regions: tuple[ServerProcess, ServerProcess]
) -> None:
    india, europe = regions
    asha, bruno = tmp_path / "asha", tmp_path / "bruno"
    baat(asha, "register", "asha", "--server", india.url, "--jurisdiction", "IN")
    baat(bruno, "register", "bruno", "--server", europe.url, "--jurisdiction", "EU")
    baat(asha, "send", "bruno", "first")
    assert [m["text"] for m in lines(baat(bruno, "sync", "--json"))] == ["first"]

    europe.stop()
    out = lines(baat(asha, "send", "bruno", "while Frankfurt is down", "--json"))
    assert out[0]["status"] != "sent"  # kept in the outbox, not lost
    # The Indian region still serves its own accounts meanwhile.
    assert httpx.get(india.url + "/healthz").json()["status"] == "ok"
    europe.start()
    baat(asha, "sync")  # the outbox is sent on the next connection
    assert [m["text"] for m in lines(baat(bruno, "sync", "--json"))] == ["while Frankfurt is down"]


def _code(r: httpx.Response) -> str:
    return msgspec.msgpack.decode(r.content, type=wire.Refusal).code


def test_region_api_refuses_strangers_and_bad_input(
    tmp_path: Path, regions: tuple[ServerProcess, ServerProcess]
) -> None:
    india, _ = regions
    eu = signer(tmp_path / "eu.key")
    path = "/v1/regions/accounts/anyone"

    def signed(key: RegionSigner, method: str, target: str, body: bytes = b"") -> dict[str, str]:
        return {SIGNATURE_HEADER: key.header("in", method, target, body)}

    stranger = RegionSigner(load_private_key(new_private_key_text()))
    cases = [
        ({}, 401, "unauthorized"),
        # The header naming a region is not a credential.
        ({"baat-region": "eu"}, 401, "unauthorized"),
        ({SIGNATURE_HEADER: "key=x, time=1, nonce=y"}, 401, "unauthorized"),
        (signed(stranger, "GET", path), 403, "unknown_region"),
        # Signed by the EU for another path, or for another receiving region.
        (signed(eu, "GET", "/v1/regions/accounts/other"), 401, "unauthorized"),
        ({SIGNATURE_HEADER: eu.header("us", "GET", path)}, 401, "unauthorized"),
        ({SIGNATURE_HEADER: eu.header("in", "GET", path, now=time.time() - 600)}, 401,
         "stale_request"),
    ]  # fmt: skip
    for headers, status, code in cases:
        r = httpx.get(india.url + path, headers=headers)
        assert (r.status_code, _code(r)) == (status, code), headers
    r = httpx.post(
        india.url + "/v1/regions/send",
        headers=signed(eu, "POST", "/v1/regions/send", b"\xc1garbage"),
        content=b"\xc1garbage",
    )
    assert r.status_code == 400
    assert _code(r) == "malformed_frame"
    # A region sends only on behalf of its own accounts: the EU's key cannot send as an
    # Indian account, whatever the request says.
    forged = wire.encode(wire.RegionSend("in-" + "0" * 29, 1, "m1", []))
    headers = signed(eu, "POST", "/v1/regions/send", forged)
    r = httpx.post(india.url + "/v1/regions/send", headers=headers, content=forged)
    assert (r.status_code, _code(r)) == (403, "unknown_region")
    # A body other than the one signed is refused.
    other = wire.encode(wire.RegionSend("eu-" + "0" * 29, 1, "m1", []))
    r = httpx.post(india.url + "/v1/regions/send", headers=headers, content=other)
    assert (r.status_code, _code(r)) == (401, "unauthorized")
    # Unknown names and accounts are plain refusals, and the server keeps serving.
    nobody = "/v1/regions/accounts/nobody"
    headers = signed(eu, "GET", nobody)
    assert httpx.get(india.url + nobody, headers=headers).status_code == 404
    # The very same request again is a replay.
    r = httpx.get(india.url + nobody, headers=headers)
    assert (r.status_code, _code(r)) == (401, "replayed_request")
    body = wire.encode(wire.BundleRequest("in-" + "1" * 29, 0))
    r = httpx.post(
        india.url + "/v1/regions/bundles",
        headers=signed(eu, "POST", "/v1/regions/bundles", body),
        content=body,
    )
    assert r.status_code == 404
    assert msgspec.msgpack.decode(r.content, type=wire.Refusal).code == "unknown_account"
    assert httpx.get(india.url + "/healthz").status_code == 200


@pytest.mark.postgres
def test_regions_on_postgresql_with_two_nodes_in_one_region(tmp_path: Path) -> None:
    """Each region on its own PostgreSQL database; the EU region runs two nodes on a Redis
    bus (keys and channels prefixed by region), the peer URL naming only one of them."""
    from conftest import PG_BASE, _pg_admin

    if not PG_BASE:
        pytest.skip("BAAT_TEST_POSTGRES is not set")
    base = PG_BASE.rsplit("/", 1)[0]
    names = {r: f"baat_region_{r}_{os.urandom(4).hex()}" for r in ("in", "eu")}
    for name in names.values():
        _pg_admin(f"CREATE DATABASE {name}")
    bus = ["--bus", "redis://127.0.0.1:6379/0"]
    india = ServerProcess(tmp_path / "in", f"{base}/{names['in']}")
    eu1 = ServerProcess(tmp_path / "eu1", f"{base}/{names['eu']}")
    eu2 = ServerProcess(tmp_path / "eu2", f"{base}/{names['eu']}")
    keys = {r: tmp_path / f"{r}.key" for r in ("in", "eu")}
    public = {r: make_region_key(k) for r, k in keys.items()}
    india.extra = region_args("in", keys["in"], {"eu": (eu1.url, public["eu"])})
    for i, node in enumerate((eu1, eu2), 1):
        # Both nodes of the EU region hold the region's one key.
        node.extra = ["--node-id", f"eu-{i}", *bus]
        node.extra += region_args("eu", keys["eu"], {"in": (india.url, public["in"])})
    servers = [india, eu1, eu2]
    try:
        for s in servers:
            s.start()
        asha, bruno = tmp_path / "asha", tmp_path / "bruno"
        reg = ("register", "--json", "--jurisdiction")
        asha_id = json.loads(baat(asha, *reg, "IN", "asha", "--server", india.url).stdout)[
            "account_id"
        ]
        bruno_id = json.loads(baat(bruno, *reg, "EU", "bruno", "--server", eu2.url).stdout)[
            "account_id"
        ]
        listener = listen(bruno, 8)
        try:
            time.sleep(3)
            baat(asha, "send", "bruno", "live, through eu-1 to eu-2")
            out, _ = listener.communicate(timeout=40)
        finally:
            if listener.poll() is None:
                listener.kill()
        assert [json.loads(x)["text"] for x in out.splitlines()] == ["live, through eu-1 to eu-2"]
        baat(bruno, "send", "asha", "danke")
        assert [m["text"] for m in lines(baat(asha, "sync", "--json"))] == ["danke"]
        baat(bruno, "sync")
        # A request India signed for the EU, recorded on its way to one EU node, cannot be
        # replayed to the other: the nodes share the nonces they saw on their Redis.
        path = "/v1/regions/accounts/nobody"
        headers = {SIGNATURE_HEADER: signer(keys["in"]).header("eu", "GET", path)}
        assert httpx.get(eu1.url + path, headers=headers).status_code == 404
        r = httpx.get(eu2.url + path, headers=headers)
        assert (r.status_code, _code(r)) == (401, "replayed_request")
        for s in servers:
            s.stop()
        in_db, eu_db = _pg_dump(f"{base}/{names['in']}"), _pg_dump(f"{base}/{names['eu']}")
        assert asha_id in in_db and bruno_id not in in_db and "bruno" not in in_db
        assert bruno_id in eu_db and asha_id not in eu_db and "asha" not in eu_db
    finally:
        for s in servers:
            if s.proc is not None:
                s.stop()
        for name in names.values():
            _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _pg_dump(url: str) -> str:
    """Every value of every table of a PostgreSQL database, as text."""
    import asyncio

    import asyncpg

    async def run() -> str:
        conn = await asyncpg.connect(url)
        try:
            tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            rows = []
            for t in tables:
                rows += [repr(tuple(r)) for r in await conn.fetch(f'SELECT * FROM "{t[0]}"')]
            return "\n".join(rows)
        finally:
            await conn.close()

    return asyncio.run(run())


async def test_a_group_across_regions(
    tmp_path: Path, regions: tuple[ServerProcess, ServerProcess]
) -> None:
    """One group with members in two regions: each group message is one send whose
    envelopes are split between the regions; a second device of an EU member is in the EU."""
    from baat.client.sdk import Client
    from client.test_multidevice_support import link, texts, until

    india, europe = regions
    asha = await Client.register(tmp_path / "asha", PASS, india.url, "asha", "IN")
    chitra = await Client.register(tmp_path / "chitra", PASS, india.url, "chitra", "IN")
    bruno = await Client.register(tmp_path / "bruno", PASS, india.url, "bruno", "EU")
    everyone = [asha, chitra, bruno]
    try:
        assert bruno.info.server_url == europe.url
        for c in everyone:
            await c.connect()
        tablet = await link(tmp_path, bruno, "bruno-tablet")
        everyone.append(tablet)
        chat = await asha.groups.create("Chai club", ["chitra", "bruno"])
        await until(everyone, lambda: all(len(c.groups.all()) == 1 for c in everyone))
        await asha.groups.send_text("Chai club", "from Mumbai")
        await bruno.groups.send_text("Chai club", "aus Frankfurt")
        wanted = {"from Mumbai", "aus Frankfurt"}
        await until(everyone, lambda: all(wanted <= set(texts(c, chat)) for c in everyone))
    finally:
        for c in everyone:
            await c.close()
