"""Point 7: access, erasure, correction, and retention on an injected clock."""

from __future__ import annotations

import os
from typing import Any

import pytest
from sqlalchemy import inspect, select, text

from baat.crypto import PREKEY_KIND_CURVE_ONE_TIME, PREKEY_KIND_CURVE_SIGNED
from baat.privacy import receipts
from baat.privacy.erasure import Phase, Store
from baat.privacy.errors import (
    AccountNotFound,
    InvalidCorrection,
    UnknownJurisdiction,
    UsernameInUse,
)
from baat.privacy.render import render
from baat.privacy.residency import Residency
from baat.server.privacy.schema import consent_events, transfer_log
from baat.server.privacy.service import PrivacyService
from baat.server.storage.base import Prekey, QueuedEnvelope
from baat.server.storage.schema import metadata
from baat.server.storage.sql import SqlStore

from .conftest import DAY, Clock, OpenService, Receiver, User, make_user


async def _populate(store: SqlStore, service: PrivacyService, user: User, peer: User) -> None:
    """Give ``user`` a row in every kind of table: prekeys, envelopes both ways, recent
    sends, consents given and withdrawn, transfers."""
    now_ms = int(service.clock() * 1000)
    await store.store_prekeys(
        user.id,
        1,
        [Prekey(PREKEY_KIND_CURVE_SIGNED, 1, os.urandom(32), os.urandom(64))],
        [Prekey(PREKEY_KIND_CURVE_ONE_TIME, i, os.urandom(32), b"") for i in range(3)],
    )
    await store.enqueue(
        [
            QueuedEnvelope(os.urandom(16), peer.id, 1, user.id, 1, "m1", b"cipher-1", now_ms),
            QueuedEnvelope(os.urandom(16), user.id, 1, peer.id, 1, "m2", b"cipher-2", now_ms),
            QueuedEnvelope(os.urandom(16), peer.id, 1, peer.id, 1, "m3", b"cipher-3", now_ms),
        ]
    )
    await store.save_recent_sends([(user.id, 1, "m1", now_ms + 1000)])
    blobs, chunks = metadata.tables.get("blobs"), metadata.tables.get("blob_chunks")
    if blobs is not None and chunks is not None:
        blob = {
            "blob_id": "b-" + user.id,
            "uploader_account": user.id,
            "uploader_device": 1,
            "length": 3,
            "received": 3,
            "fetches_allowed": 1,
            "fetched_by": b"",
            "expires_at": now_ms // 1000 + 30 * DAY,
        }
        async with store.engine.begin() as conn:
            await conn.execute(blobs.insert().values(**blob))
            await conn.execute(
                chunks.insert().values(
                    blob_id=blob["blob_id"], position=0, data=b"attachment-ciphertext"
                )
            )
    for purpose in ("understand", "support", "market"):
        await service.grant(user.id, purpose)
    await service.withdraw(user.id, "market")
    await service.run_understand()


async def test_the_export_holds_everything_the_server_has(
    store: SqlStore, service: PrivacyService
) -> None:
    user = await make_user(store, "asha", jurisdiction="EU")
    peer = await make_user(store, "bilal")
    await _populate(store, service, user, peer)
    export = await service.export_account(user.id)

    assert export["account_id"] == user.id
    [account] = export["data"]["accounts"]
    assert account == {
        "account_id": user.id,
        "username": "asha",
        "region": "eu",
        "jurisdiction": "EU",
        "created_day": user.account.created_day,
        "last_seen_day": user.account.last_seen_day,
    }
    [device] = export["data"]["devices"]
    assert "auth_token_hash" not in device and "identity_key" in device
    assert len(export["data"]["one_time_prekeys"]) == 3
    envelopes = export["data"]["envelopes"]
    assert len(envelopes) == 2 and all("content" not in e for e in envelopes)
    assert {e["field"] for e in export["not_included"]} >= {"envelope.content", "device.auth_token"}

    history = export["consents"]["history"]
    assert [h["record"]["purpose"]["id"] for h in history] == [
        "understand", "support", "market", "market",
    ]  # fmt: skip
    jwks = await service.jwks()
    assert all(receipts.verify(h["receipt"], jwks).record == h["record"] for h in history)
    current = {c["purpose"]: c["effective"] for c in export["consents"]["current"]}
    assert current == {
        "improve": False, "understand": True, "customize": False,
        "support": True, "market": False, "share_affiliate": False,
    }  # fmt: skip
    [transfer] = export["transfers"]
    assert transfer["purpose"] == "understand" and transfer["fields"] == ["account.last_seen_day"]
    assert export["shared_with"] == ["Baat Communications Private Limited"]


def _tables(sync_conn: Any) -> list[str]:
    return list(inspect(sync_conn).get_table_names())


async def _rows_mentioning(store: SqlStore, needles: list[str]) -> list[str]:
    """Every (table, column) of the real schema holding any of ``needles``."""
    async with store.engine.connect() as conn:
        tables = await conn.run_sync(_tables)
        found = []
        for table in tables:
            for row in (await conn.execute(text(f'SELECT * FROM "{table}"'))).mappings():
                for column, value in row.items():
                    blob = (
                        bytes(value).decode("latin-1")
                        if isinstance(value, bytes | memoryview)
                        else str(value)
                    )
                    if any(n in blob for n in needles):
                        found.append(f"{table}.{column}")
    return found


async def test_erasure_leaves_no_row_referencing_the_account(
    store: SqlStore, service: PrivacyService
) -> None:
    user = await make_user(store, "zed-erasable", devices=2)
    peer = await make_user(store, "bilal")
    await _populate(store, service, user, peer)
    assert await _rows_mentioning(store, [user.id])  # the scan does find live data

    erased: list[str] = []

    async def elsewhere(account_id: str) -> int:
        erased.append(account_id)
        return 1

    service.erasure.register(Store("elsewhere", Phase.BEFORE, elsewhere))
    result = await service.delete_account(user.id)
    assert erased == [user.id] and result["erased_elsewhere"] == {"elsewhere": 1}
    assert result["incomplete"] == []
    assert result["consents_withdrawn"] == ["understand", "support"]
    assert result["deleted"]["accounts"] == 1 and result["deleted"]["devices"] == 2

    assert await _rows_mentioning(store, [user.id, "zed-erasable", "attachment-ciphertext"]) == []
    # The bystander keeps their account and the envelope only they are party to.
    assert await store.account(peer.id) is not None
    assert len(await store.pending(peer.id, 1)) == 1
    # The ledger still verifies: records stay, unlinked from anyone the server knows.
    report = await service.verify_ledger()
    assert report.ok and report.events == 6
    with pytest.raises(AccountNotFound):
        await service.export_account(user.id)
    with pytest.raises(AccountNotFound):
        await service.delete_account(user.id)


async def test_erasure_tells_the_affiliate(
    store: SqlStore, open_service: OpenService, affiliate: Receiver
) -> None:
    service = await open_service(affiliate_url=affiliate.url)
    user = await make_user(store, "asha")
    await service.grant(user.id, "share_affiliate")
    await service.run_affiliate_export()
    result = await service.delete_account(user.id)
    assert result["recipients_notified"] == {"affiliate": "sent"}
    assert affiliate.received[-1] == {"type": "erasure", "subjects": ["asha"]}


async def test_correction(store: SqlStore, service: PrivacyService) -> None:
    user = await make_user(store, "asha", jurisdiction="IN")
    await make_user(store, "bilal")
    moved = await service.correct(user.id, jurisdiction="eu")
    assert moved == {"username": "asha", "jurisdiction": "EU", "region": "eu"}
    renamed = await service.correct(user.id, username=" Asha_K ")
    assert renamed["username"] == "asha_k"
    assert (await service.correct(user.id, region="us"))["region"] == "us"
    with pytest.raises(UsernameInUse) as taken:
        await service.correct(user.id, username="BILAL")
    assert taken.value.code == "username_taken"
    with pytest.raises(UnknownJurisdiction):
        await service.correct(user.id, jurisdiction="XX")
    with pytest.raises(InvalidCorrection):
        await service.correct(user.id, username="9 lives")
    with pytest.raises(InvalidCorrection):
        await service.correct(user.id, region="mars")
    with pytest.raises(InvalidCorrection):
        await service.correct(user.id, created_day=1)
    with pytest.raises(InvalidCorrection):
        await service.correct(user.id)
    account = await store.account(user.id)
    assert account is not None and (account.username, account.region) == ("asha_k", "us")


async def test_correction_keeps_an_account_in_the_region_its_id_names(
    store: SqlStore, service: PrivacyService
) -> None:
    from baat.server.regions.ids import new_account_id

    user = await make_user(store, "ravi", jurisdiction="IN", account_id=new_account_id("in"))
    # The published notice says EU accounts are stored in the EU: an account held in India
    # cannot take that jurisdiction, or the notice would be false for it.
    with pytest.raises(InvalidCorrection, match="jurisdiction EU are stored in region 'eu'"):
        await service.correct(user.id, jurisdiction="EU")
    with pytest.raises(InvalidCorrection, match="stored in region 'in'"):
        await service.correct(user.id, region="eu")
    assert (await service.correct(user.id, region="in"))["region"] == "in"
    # A deployment that declares it stores EU accounts in India accepts it.
    declared = Residency(service.policy, "in").deployment_policy()
    service.policy = declared
    assert await service.correct(user.id, jurisdiction="EU") == {
        "username": "ravi",
        "jurisdiction": "EU",
        "region": "in",
    }
    assert "Your data is stored in Mumbai" in render(declared.document(), "md", "EU")
    account = await store.account(user.id)
    assert account is not None and (account.jurisdiction, account.region) == ("EU", "in")


async def test_retention_runs_on_the_injected_clock(
    store: SqlStore, service: PrivacyService, clock: Clock
) -> None:
    a = await make_user(store, "asha")
    b = await make_user(store, "bilal")
    start_ms = int(clock() * 1000)
    await store.enqueue(
        [
            QueuedEnvelope(os.urandom(16), a.id, 1, b.id, 1, "old", b"c", start_ms),
            QueuedEnvelope(
                os.urandom(16), a.id, 1, b.id, 1, "new", b"c", start_ms + 20 * DAY * 1000
            ),
        ]
    )
    await service.grant(a.id, "understand")  # stays in force
    await service.grant(b.id, "market")
    await service.withdraw(b.id, "market")  # ends now
    await service.run_understand()

    clock.advance(31)
    assert await service.run_retention(clock()) == {
        "envelopes": 1,
        "transfer_log": 0,
        "region_transfers": 0,
        "consent_events": 0,
        "recent_sends": 0,
        "link_codes": 0,
        "registration_invites": 0,
        "legal_process_runs": 0,
        "server_keys": 0,
    }
    assert [e.message_id for e in await store.pending(a.id, 1)] == ["new"]

    clock.advance(365)
    assert (await service.run_retention(clock()))["transfer_log"] == 1

    clock.advance(7 * 365)
    result = await service.run_retention(clock())
    # Only the history before the oldest grant still in force could go; that grant stays.
    assert result["consent_events"] == 0
    report = await service.verify_ledger()
    assert report.ok and report.events == 3
    assert (await service.run_understand())["accounts"] == 1

    await service.withdraw(a.id, "understand")
    clock.advance(7 * 365 + 1)
    assert (await service.run_retention(clock()))["consent_events"] == 4
    report = await service.verify_ledger()
    assert report.ok and report.events == 0 and report.anchored_through == 4
    await service.grant(a.id, "understand")  # the chain continues from the anchor
    assert (await service.verify_ledger()).ok
    async with store.engine.connect() as conn:
        assert await conn.scalar(select(consent_events.c.seq)) == 5
        assert (await conn.execute(select(transfer_log))).all() == []
