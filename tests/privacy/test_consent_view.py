"""Consent decided from verified, signed ledger records (``consent_view``), on SQLite and
PostgreSQL: what each kind of tampering does to the jobs, the consent listing and
``verify_ledger``."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest
from sqlalchemy import delete, insert, select, update

from baat.privacy import receipts
from baat.privacy.errors import LedgerUnverifiable
from baat.server.privacy.schema import consent_events, ledger_head
from baat.server.privacy.service import PrivacyService
from baat.server.storage.sql import SqlStore

from .conftest import Clock, OpenService, make_user


async def _two_users(store: SqlStore, service: PrivacyService) -> tuple[str, str]:
    asha = await make_user(store, "asha")
    bilal = await make_user(store, "bilal")
    await service.grant(asha.id, "market")
    await service.grant(bilal.id, "market")
    await service.withdraw(asha.id, "market")
    return asha.id, bilal.id


async def test_an_edited_column_changes_nothing_and_is_reported(
    store: SqlStore, service: PrivacyService, caplog: pytest.LogCaptureFixture
) -> None:
    asha, _ = await _two_users(store, service)
    assert (await service.run_market())["audience"] == ["bilal"]
    async with store.engine.begin() as conn:
        await conn.execute(
            update(consent_events).where(consent_events.c.seq == 3).values(state="given")
        )
    with caplog.at_level(logging.WARNING, logger="baat.privacy.consent"):
        assert (await service.run_market())["audience"] == ["bilal"]
    assert "event 3: columns disagree with the signed record" in caplog.text
    states = {c["purpose"]: c for c in await service.consents(asha)}
    assert states["market"]["state"] == "withdrawn" and not states["market"]["effective"]
    report = await service.verify_ledger()
    assert not report.ok and any("column state" in p for p in report.problems)
    # A process that never saw the record before decides the same from the signed record.
    fresh = await PrivacyService.open(store, data_dir=service.data_dir, region="in")
    assert (await fresh.run_market())["audience"] == ["bilal"]


async def test_an_edited_record_stops_every_optional_purpose(
    store: SqlStore, service: PrivacyService, open_service: OpenService
) -> None:
    asha, _ = await _two_users(store, service)
    assert (await service.run_market())["audience"] == ["bilal"]  # verifies event 3
    async with store.engine.begin() as conn:
        row = (await conn.execute(select(consent_events).where(consent_events.c.seq == 3))).one()
        record = json.loads(row.record)
        record["state"] = "https://w3id.org/dpv#ConsentGiven"
        await conn.execute(
            update(consent_events)
            .where(consent_events.c.seq == 3)
            .values(record=json.dumps(record), state="given")
        )
    fresh = await open_service()
    with pytest.raises(LedgerUnverifiable) as stopped:
        await fresh.run_market()
    assert stopped.value.code == "ledger_unverifiable" and "event 3" in stopped.value.message
    with pytest.raises(LedgerUnverifiable):
        await fresh.consents(asha)
    # The process that had verified the record keeps deciding from what was signed.
    assert (await service.run_market())["audience"] == ["bilal"]
    assert not (await service.verify_ledger()).ok


async def test_a_forged_record_appended_is_refused(
    store: SqlStore, service: PrivacyService, open_service: OpenService
) -> None:
    await _two_users(store, service)
    async with store.engine.begin() as conn:
        last = (await conn.execute(select(consent_events).where(consent_events.c.seq == 3))).one()
        record = {**json.loads(last.record), "record_id": "forged", "prev_hash": last.record_hash}
        record["state"] = "https://w3id.org/dpv#ConsentGiven"
        await conn.execute(
            insert(consent_events).values(
                record_id="forged",
                subject_ref=last.subject_ref,
                purpose="market",
                state="given",
                policy_version=last.policy_version,
                at=last.at + 1,
                prev_hash=last.record_hash,
                record_hash=receipts.record_hash(record),
                record=json.dumps(record),
                receipt=last.receipt,  # a real signature, over another record
            )
        )
    with pytest.raises(LedgerUnverifiable, match="different record"):
        await (await open_service()).run_market()
    assert not (await service.verify_ledger()).ok


async def test_a_missing_head_needs_the_operator(
    store: SqlStore, service: PrivacyService, open_service: OpenService
) -> None:
    await _two_users(store, service)
    async with store.engine.begin() as conn:
        await conn.execute(delete(ledger_head))
    fresh = await open_service()  # a restart does not re-sign whatever chain it finds
    with pytest.raises(LedgerUnverifiable, match="no signed head"):
        await fresh.run_market()
    with pytest.raises(LedgerUnverifiable):
        await fresh.ledger_head()
    report = await fresh.verify_ledger()
    assert not report.ok and any("no signed head" in p for p in report.problems)
    sealed = await fresh.seal_ledger()
    assert sealed is not None and sealed["seq"] == 3
    assert await fresh.seal_ledger() is None
    assert (await fresh.run_market())["audience"] == ["bilal"]
    assert (await fresh.verify_ledger()).ok


async def test_records_are_verified_once(
    store: SqlStore, service: PrivacyService, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _two_users(store, service)
    calls = []
    real = receipts.verify

    def counting(token: str, jwks: dict[str, object]) -> receipts.Receipt:
        calls.append(token)
        return real(token, jwks)

    monkeypatch.setattr(receipts, "verify", counting)
    fresh = await PrivacyService.open(store, data_dir=service.data_dir, region="in")
    await fresh.run_market()
    assert len(calls) == 3
    await fresh.run_market()
    await fresh.run_improve()
    assert len(calls) == 3  # nothing new: nothing verified again
    user = await make_user(store, "chen")
    await fresh.grant(user.id, "market")
    assert (await fresh.run_market())["audience"] == ["bilal", "chen"]
    assert len(calls) == 4


async def test_a_reworded_optional_purpose_needs_consent_again(
    store: SqlStore, service: PrivacyService, open_service: OpenService
) -> None:
    """Item 3 end to end: the diff demands consent_since for a purpose whose wording changed,
    and the gate then stops counting consents given before."""
    from baat.privacy.diff import diff, reconsent_problems

    _, bilal = await _two_users(store, service)
    v1 = service.policy
    n = v1.version + 1
    reworded = tuple(
        replace(p, description="We build advertising profiles.") if p.id == "market" else p
        for p in v1.purposes
    )
    draft = v1.evolve(version=n, purposes=reworded)
    problems = reconsent_problems(diff(v1.document(), draft.document()), draft.document())
    assert problems == [f"purpose 'market' changes in v{n}: set consent_since={n}"]
    fixed = tuple(replace(p, consent_since=n) if p.id == "market" else p for p in reworded)
    later = await open_service(policy=draft.evolve(purposes=fixed))
    assert (await later.run_market())["audience"] == []
    await later.grant(bilal, "market")
    assert (await later.run_market())["audience"] == ["bilal"]


async def test_pruning_moves_the_view_to_the_anchor(
    store: SqlStore, service: PrivacyService, clock: Clock
) -> None:
    _, bilal = await _two_users(store, service)
    assert (await service.run_market())["audience"] == ["bilal"]
    await service.withdraw(bilal, "market")
    clock.advance(7 * 365 + 1)
    assert (await service.run_retention(clock()))["consent_events"] == 4
    assert (await service.run_market())["audience"] == []  # rebuilt from the anchor
    await service.grant(bilal, "market")
    assert (await service.run_market())["audience"] == ["bilal"]
    fresh = await PrivacyService.open(store, data_dir=service.data_dir, region="in", clock=clock)
    assert (await fresh.run_market())["audience"] == ["bilal"]
    assert (await fresh.verify_ledger()).ok
