"""Every retention period the inventory declares has a mechanism, and each mechanism,
run with an injected clock, leaves the data there just before the declared time and gone
at it. Legal-process runs are logged by day and counted, small counts as "fewer than 10".
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import Table, func, select

from baat.privacy.inventory import ENTRIES, SERVER_ENTRIES, duration_seconds
from baat.proto import OutgoingEnvelope, SendResult
from baat.server.delivery import RECENT_SEND_TTL_MS, Router
from baat.server.privacy import retention
from baat.server.privacy.schema import legal_process_runs, region_transfers, server_keys
from baat.server.privacy.service import PrivacyService
from baat.server.privacy.transparency import markdown
from baat.server.storage.base import QueuedEnvelope
from baat.server.storage.blob_store import FileBlobStore, SqlBlobStore
from baat.server.storage.schema import link_codes, recent_sends
from baat.server.storage.sql import SqlStore

from .conftest import DAY, Clock, make_user

Check = Callable[[SqlStore, PrivacyService, Clock, Path], Awaitable[None]]


async def _count(store: SqlStore, table: Table) -> int:
    async with store.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


def _seconds(entry_id: str) -> int:
    entry = next(e for e in ENTRIES if e.id == entry_id)
    return duration_seconds(entry.retention.duration)


async def _envelopes(store: SqlStore, service: PrivacyService, clock: Clock, _: Path) -> None:
    a, b = await make_user(store, "asha"), await make_user(store, "bilal")
    env = QueuedEnvelope(os.urandom(16), a.id, 1, b.id, 1, "m", b"c", int(clock() * 1000))
    await store.enqueue([env])
    period = _seconds("envelope.content")
    assert (await service.run_retention(clock() + period - 1))["envelopes"] == 0
    assert (await service.run_retention(clock() + period + 1))["envelopes"] == 1
    assert await store.pending(a.id, 1) == []


async def _recent_sends(store: SqlStore, service: PrivacyService, clock: Clock, _: Path) -> None:
    # In memory: the router forgets a send after 24 hours.
    a, b = await make_user(store, "asha"), await make_user(store, "bilal")
    router = Router(store)
    await router.start()
    results: list[SendResult] = []
    await router.accept_send((a.id, 1), "m1", [OutgoingEnvelope(b.id, 1, b"x")], results.append)
    sent_ms = next(iter(router._recent.values())) - RECENT_SEND_TTL_MS
    assert _seconds("envelope.recent_send") * 1000 == RECENT_SEND_TTL_MS
    assert router.expire_recent(sent_ms + RECENT_SEND_TTL_MS - 1000) == 0
    await router.stop()
    # Written out at shutdown; the retention job deletes rows past their 24 hours.
    assert await _count(store, recent_sends) == 1
    expires = (sent_ms + RECENT_SEND_TTL_MS) / 1000
    assert (await service.run_retention(expires - 1))["recent_sends"] == 0
    assert (await service.run_retention(expires + 1))["recent_sends"] == 1
    router = Router(store)
    await router.accept_send((a.id, 1), "m2", [OutgoingEnvelope(b.id, 1, b"x")], results.append)
    assert router.expire_recent(sent_ms + RECENT_SEND_TTL_MS + 60_000) == 1
    assert router._recent == {}


async def _link_codes(store: SqlStore, service: PrivacyService, clock: Clock, _: Path) -> None:
    a = await make_user(store, "asha")
    period = _seconds("device.link_code")
    await store.create_link_code(a.id, os.urandom(32), int(clock()) + period)
    assert (await service.run_retention(clock() + period - 1))["link_codes"] == 0
    assert (await service.run_retention(clock() + period + 1))["link_codes"] == 1
    assert await _count(store, link_codes) == 0


async def _blobs(store: SqlStore, service: PrivacyService, clock: Clock, tmp: Path) -> None:
    blobs = (
        SqlBlobStore(store)
        if store.dialect == "postgresql"
        else FileBlobStore(store, tmp / "blobs")
    )
    period = _seconds("blob.content")
    assert blobs.ttl_s == period
    info = await blobs.create("asha", 1, 10, 1, clock())
    assert await blobs.expire(clock() + period - 1) == 0
    assert await blobs.expire(clock() + period) == 1
    if isinstance(blobs, FileBlobStore):
        assert not blobs.path(info.blob_id).exists()


async def _transfer_log(store: SqlStore, service: PrivacyService, clock: Clock, _: Path) -> None:
    a = await make_user(store, "asha")
    await service.grant(a.id, "understand")
    await service.run_understand()
    period = _seconds("transfer.record")
    assert (await service.run_retention(clock() + period - 1))["transfer_log"] == 0
    assert (await service.run_retention(clock() + period + 1))["transfer_log"] == 1


async def _region_counts(store: SqlStore, service: PrivacyService, clock: Clock, _: Path) -> None:
    day = int(clock() // DAY)
    async with store.engine.begin() as conn:
        await conn.execute(
            region_transfers.insert().values(
                day=day, kind="envelope", from_region="in", to_region="eu", count=3
            )
        )
    period = _seconds("transfer.region_count")
    assert (await service.run_retention((day + 1) * DAY + period - 1))["region_transfers"] == 0
    assert (await service.run_retention((day + 1) * DAY + period))["region_transfers"] == 1


async def _consent(store: SqlStore, service: PrivacyService, clock: Clock, _: Path) -> None:
    a = await make_user(store, "asha")
    await service.grant(a.id, "market")
    clock.advance(1)
    await service.withdraw(a.id, "market")  # both records' consent ends now
    period = _seconds("consent.record")
    assert (await service.run_retention(clock() + period - 1))["consent_events"] == 0
    assert (await service.run_retention(clock() + period + 1))["consent_events"] == 2
    assert (await service.verify_ledger()).ok


async def _signing_keys(store: SqlStore, service: PrivacyService, clock: Clock, _: Path) -> None:
    retired = int(clock())
    async with store.engine.begin() as conn:
        await conn.execute(
            server_keys.insert().values(
                kid="old-key", alg="EdDSA", public_key=b"p", private_key=b"s",
                created_at=retired - 100, retired_at=retired,
            )
        )  # fmt: skip
    period = _seconds("server.signing_key")
    assert (await service.run_retention(retired + period - 1))["server_keys"] == 0
    assert (await service.run_retention(retired + period + 1))["server_keys"] == 1
    # The key in use (never retired) stays.
    assert await _count(store, server_keys) == 1


async def _legal_runs(store: SqlStore, service: PrivacyService, clock: Clock, _: Path) -> None:
    await make_user(store, "asha")
    await service.legal_process("asha")
    period = _seconds("operator.legal_process_run")
    day_end = (int(clock() // DAY) + 1) * DAY
    assert (await service.run_retention(day_end + period - 1))["legal_process_runs"] == 0
    assert (await service.run_retention(day_end + period))["legal_process_runs"] == 1


async def _invites(store: SqlStore, service: PrivacyService, clock: Clock, _: Path) -> None:
    from baat.server.invites import create_invites

    period = _seconds("server.invite")
    await create_invites(store.engine, 1, period, now=clock())
    assert (await service.run_retention(clock() + period - 1))["registration_invites"] == 0
    assert (await service.run_retention(clock() + period + 1))["registration_invites"] == 1


async def _presence(store: SqlStore, service: PrivacyService, clock: Clock, _: Path) -> None:
    # Redis expires the key itself; the bus sets the declared expiry on every write.
    from baat.server.bus import PRESENCE_TTL_S

    assert _seconds("connection.presence") == PRESENCE_TTL_S


async def _operator_actions(
    store: SqlStore, service: PrivacyService, clock: Clock, _: Path
) -> None:
    from baat.server import operator_admin

    await operator_admin.set_registration(store.engine, "invite", clock())
    period = _seconds("operator.action")
    day_end = (int(clock() // DAY) + 1) * DAY
    async with store.engine.begin() as conn:
        assert await operator_admin.expire(conn, day_end + period - 1) == 0
        assert await operator_admin.expire(conn, day_end + period) == 1


CHECKS: dict[str, Check] = {
    "envelope.content": _envelopes,
    "envelope.recent_send": _recent_sends,
    "device.link_code": _link_codes,
    "blob.content": _blobs,
    "transfer.record": _transfer_log,
    "transfer.region_count": _region_counts,
    "consent.record": _consent,
    "server.signing_key": _signing_keys,
    "operator.legal_process_run": _legal_runs,
    "connection.presence": _presence,
    "server.invite": _invites,
    "operator.action": _operator_actions,
}
# Entries sharing a period and a mechanism with one checked above.
SAME_AS = {
    **{e: "envelope.content" for e in ("envelope.seq", "envelope.recipient", "envelope.sender",
                                        "envelope.message_id", "envelope.stored_at")},
    **{e: "blob.content" for e in ("blob.id", "blob.uploader", "blob.size", "blob.fetches",
                                    "blob.expires_at")},
}  # fmt: skip


def test_every_declared_retention_has_a_mechanism_and_a_check() -> None:
    assert set(retention.MECHANISMS) == {e.id for e in SERVER_ENTRIES}
    for e in SERVER_ENTRIES:
        if duration_seconds(e.retention.duration) > 0:
            assert e.id in CHECKS or e.id in SAME_AS, f"{e.id}: no retention check"
    for entry, same in SAME_AS.items():
        assert _seconds(entry) == _seconds(same), entry


@pytest.mark.parametrize("entry", sorted(CHECKS))
async def test_data_is_gone_at_the_declared_time(
    entry: str, store: SqlStore, service: PrivacyService, clock: Clock, tmp_path: Path
) -> None:
    await CHECKS[entry](store, service, clock, tmp_path)


async def test_legal_process_runs_are_logged_without_content_and_counted(
    store: SqlStore, service: PrivacyService, clock: Clock
) -> None:
    await make_user(store, "asha")
    assert (await service.transparency_report())["legal_process"]["requests_last_year"] == (
        "fewer than 10"
    )
    for _ in range(9):
        await service.legal_process("asha")
    with pytest.raises(Exception, match="no account named"):
        await service.legal_process("nobody")  # an answer of "no such account" counts too
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(legal_process_runs))).all()
    assert len(rows) == 10
    assert {tuple(r._mapping) for r in rows} == {("seq", "day")}
    assert {r.day for r in rows} == {int(clock() // DAY)}
    report = await service.transparency_report()
    assert report["legal_process"]["requests_last_year"] == 10
    assert "Requests answered in the last year: 10." in markdown(report)
    clock.advance(366)
    report = await service.transparency_report()
    assert report["legal_process"]["requests_last_year"] == "fewer than 10"
    assert "Requests answered in the last year: fewer than 10." in markdown(report)
