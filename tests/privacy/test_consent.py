"""Point 3: the consent ledger, its receipts, and typed errors for bad input."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import select, update

from baat.privacy import receipts
from baat.privacy.errors import (
    AccountNotFound,
    ConsentNotGiven,
    PurposeNotOptional,
    ReceiptForged,
    ReceiptMalformed,
    ReceiptNotInLedger,
    ReceiptUnknownKey,
    UnknownPurpose,
)
from baat.privacy.policy import NOTICE_ID, Policy
from baat.server.privacy.ledger import GENESIS, STATE_IRI
from baat.server.privacy.schema import consent_events, consent_subjects, server_keys
from baat.server.privacy.service import PrivacyService
from baat.server.storage.sql import SqlStore

from .conftest import OpenService, make_user


async def test_everything_is_off_by_default(store: SqlStore, service: PrivacyService) -> None:
    user = await make_user(store, "asha")
    states = await service.consents(user.id)
    assert {c["purpose"] for c in states} == {p.id for p in Policy.current().optional_purposes}
    assert all(c["state"] == "not-given" and not c["effective"] for c in states)


async def test_grant_and_withdraw_return_verifiable_receipts(
    store: SqlStore, service: PrivacyService
) -> None:
    user = await make_user(store, "asha", jurisdiction="EU")
    given = await service.grant(user.id, "understand")
    withdrawn = await service.withdraw(user.id, "understand")
    jwks = await service.jwks()
    for receipt, state in ((given, "given"), (withdrawn, "withdrawn")):
        checked = receipts.verify(receipt.jws, jwks)  # offline: only the published keys
        record = checked.record
        assert record["state"] == STATE_IRI[state]
        assert record["purpose"]["id"] == "understand"
        assert record["notice"] == {
            "id": NOTICE_ID,
            "version": service.policy.version,
            "sha256": service.policy.sha256,
            "language": "en",
            "url": "https://baat.example/v1/policy",
        }
        assert record["jurisdiction"] == "EU"
        assert record["subject"] and user.id not in json.dumps(record)
        assert set(RECORD_FIELDS) <= set(record)
        header = json.loads(base64.urlsafe_b64decode(receipt.jws.split(".")[0] + "=="))
        assert header["alg"] == "Ed25519" and header["kid"] == receipt.kid
    assert given.record["prev_hash"] == GENESIS
    assert withdrawn.record["prev_hash"] == given.record_hash
    assert (await service.verify_receipt(given.jws)).record_id == given.record_id


async def test_bad_input_gets_typed_errors(store: SqlStore, service: PrivacyService) -> None:
    user = await make_user(store, "asha")
    with pytest.raises(UnknownPurpose) as unknown:
        await service.grant(user.id, "sell_everything")
    assert unknown.value.code == "unknown_purpose"
    with pytest.raises(PurposeNotOptional) as essential:
        await service.grant(user.id, "service")
    assert essential.value.code == "purpose_not_optional"
    with pytest.raises(ConsentNotGiven) as never:
        await service.withdraw(user.id, "market")
    assert never.value.code == "consent_not_given"
    await service.grant(user.id, "market")
    await service.withdraw(user.id, "market")
    with pytest.raises(ConsentNotGiven):
        await service.withdraw(user.id, "market")
    with pytest.raises(AccountNotFound):
        await service.grant("no-such-account", "market")


RECORD_FIELDS = (
    "controller", "data", "recipients", "retention", "event_time", "method",
    "actor", "valid_until", "withdraw", "consent_manager", "prev_hash",
)  # fmt: skip


def _tamper_payload(token: str, change: dict[str, object]) -> str:
    head, payload, sig = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["record"].update(change)
    raw = json.dumps(body).encode()
    return ".".join([head, base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), sig])


async def test_forged_or_altered_receipts_are_refused(
    store: SqlStore, service: PrivacyService, open_service: OpenService, tmp_path: object
) -> None:
    user = await make_user(store, "asha")
    receipt = await service.grant(user.id, "customize")
    jwks = await service.jwks()
    altered = _tamper_payload(receipt.jws, {"purpose": {"id": "share_affiliate"}})
    with pytest.raises(ReceiptForged) as forged:
        receipts.verify(altered, jwks)
    assert forged.value.code == "receipt_signature_invalid"
    with pytest.raises(ReceiptMalformed):
        receipts.verify("not.a.jws!", jwks)
    with pytest.raises(ReceiptMalformed):
        receipts.verify("garbage", jwks)
    with pytest.raises(ReceiptUnknownKey):
        receipts.verify(receipt.jws, {"keys": []})
    # A different server's key (another KEK, another signing key) is not ours.
    other = await open_service(data_dir=tmp_path / "elsewhere")  # type: ignore[operator]
    assert other.key is not None and other.key.kid != service.key.kid  # type: ignore[union-attr]
    foreign = await other.grant(user.id, "customize")
    with pytest.raises(ReceiptUnknownKey):
        receipts.verify(foreign.jws, {"keys": [k for k in jwks["keys"]]})
    # Validly signed by us, but not what the ledger holds.
    from joserfc import jws as jose

    from baat.privacy.policy import canonical_json

    fake_record = dict(receipt.record, record_id="00000000-0000-4000-8000-000000000000")
    payload = {
        "receipt_id": "x",
        "record_id": fake_record["record_id"],
        "issued_at": 1,
        "record": fake_record,
        "record_hash": receipts.record_hash(fake_record),
    }
    assert service.key is not None
    token = jose.serialize_compact(
        {"alg": "Ed25519", "kid": service.key.kid, "typ": receipts.TYP},
        canonical_json(payload),
        service.key.key,
        algorithms=["Ed25519"],
    )
    with pytest.raises(ReceiptNotInLedger):
        await service.verify_receipt(token)


async def test_the_signing_key_is_kept_and_published(
    store: SqlStore, service: PrivacyService, open_service: OpenService
) -> None:
    again = await open_service()
    assert again.key is not None and service.key is not None
    assert again.key.kid == service.key.kid
    jwks = await service.jwks()
    assert [k["kid"] for k in jwks["keys"]] == [service.key.kid]
    assert set(jwks["keys"][0]) == {"kty", "crv", "x", "kid", "alg", "use"}
    async with store.engine.connect() as conn:
        sealed = await conn.scalar(select(server_keys.c.private_key))
    raw = service.key.key.as_dict(private=True)["d"]
    assert base64.urlsafe_b64decode(raw + "==") not in sealed  # encrypted at rest


async def test_tampering_is_detected(store: SqlStore, service: PrivacyService) -> None:
    a = await make_user(store, "asha")
    b = await make_user(store, "bilal")
    await service.grant(a.id, "understand")
    await service.grant(b.id, "market")
    await service.withdraw(a.id, "understand")
    await service.grant(b.id, "support")
    assert (await service.verify_ledger()).ok

    e = consent_events
    # 1. Flip a withdrawal back to a grant in the column the gate reads.
    async with store.engine.begin() as conn:
        await conn.execute(update(e).where(e.c.seq == 3).values(state="given"))
    report = await service.verify_ledger()
    assert not report.ok and any("state" in p for p in report.problems)
    async with store.engine.begin() as conn:
        await conn.execute(update(e).where(e.c.seq == 3).values(state="withdrawn"))
    assert (await service.verify_ledger()).ok

    # 2. Rewrite a record's content.
    async with store.engine.begin() as conn:
        row = (await conn.execute(select(e.c.record).where(e.c.seq == 2))).scalar_one()
        record = json.loads(row)
        record["purpose"]["id"] = "share_affiliate"
        await conn.execute(update(e).where(e.c.seq == 2).values(record=json.dumps(record)))
    report = await service.verify_ledger()
    assert not report.ok and any("hash" in p for p in report.problems)


async def test_deleting_a_record_breaks_the_chain(store: SqlStore, service: PrivacyService) -> None:
    a = await make_user(store, "asha")
    for purpose in ("improve", "understand", "customize"):
        await service.grant(a.id, purpose)
    async with store.engine.begin() as conn:
        await conn.execute(consent_events.delete().where(consent_events.c.seq == 2))
    report = await service.verify_ledger()
    assert not report.ok and any("chain broken" in p for p in report.problems)


async def test_the_ledger_names_no_account(store: SqlStore, service: PrivacyService) -> None:
    a = await make_user(store, "asha")
    await service.grant(a.id, "understand")
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(consent_events))).all()
        link = (await conn.execute(select(consent_subjects))).one()
    assert link.account_id == a.id
    for row in rows:
        assert a.id not in json.dumps([str(v) for v in row]) and "asha" not in row.record


async def test_concurrent_grants_keep_one_chain(store: SqlStore, service: PrivacyService) -> None:
    import asyncio

    users = [await make_user(store, f"user{i}") for i in range(6)]
    await asyncio.gather(
        *(service.grant(u.id, p) for u in users for p in ("improve", "understand", "market"))
    )
    report = await service.verify_ledger()
    assert report.ok and report.events == 18
    assert (await service.run_understand())["accounts"] == 6


async def test_racing_withdrawals_record_one(store: SqlStore, service: PrivacyService) -> None:
    import asyncio

    user = await make_user(store, "asha")
    await service.grant(user.id, "market")
    results = await asyncio.gather(
        *(service.withdraw(user.id, "market") for _ in range(5)), return_exceptions=True
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, ConsentNotGiven) for r in results if isinstance(r, Exception))
    assert (await service.verify_ledger()).events == 2
