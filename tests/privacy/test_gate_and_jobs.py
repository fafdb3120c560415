"""Point 2: optional purposes run for real, only over consenting accounts, through the gate."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from baat.privacy.errors import (
    ConsentRequired,
    PurposeNotOptional,
    UndeclaredRegion,
    UndeclaredTransfer,
    UnknownPurpose,
)
from baat.server.privacy.jobs import day_iso
from baat.server.privacy.schema import transfer_log
from baat.server.privacy.service import PrivacyService
from baat.server.storage.sql import SqlStore

from .conftest import TODAY, Clock, Receiver, make_user


async def test_jobs_see_only_consenting_accounts(
    store: SqlStore, service: PrivacyService, clock: Clock
) -> None:
    yes = await make_user(store, "yes", last_seen_day=TODAY - 3, created_day=TODAY - 2, devices=2)
    await make_user(store, "no", last_seen_day=TODAY)
    refused = await make_user(store, "refused", last_seen_day=TODAY)
    for purpose in ("improve", "understand", "customize", "market"):
        await service.grant(yes.id, purpose)
        await service.grant(refused.id, purpose)
        await service.withdraw(refused.id, purpose)

    assert await service.run_understand() == {
        "purpose": "understand",
        "accounts": 1,
        "active_1d": 0,
        "active_7d": 1,
        "active_30d": 1,
    }
    assert await service.run_improve() == {
        "purpose": "improve",
        "accounts": 1,
        "devices_per_account": {"2": 1},
    }
    assert await service.run_customize() == {yes.id: "verify-your-contacts"}
    assert (await service.run_market())["audience"] == ["yes"]


async def test_withdrawal_applies_to_the_very_next_run(
    store: SqlStore, service: PrivacyService
) -> None:
    a = await make_user(store, "asha")
    b = await make_user(store, "bilal")
    await service.grant(a.id, "understand")
    await service.grant(b.id, "understand")
    assert (await service.run_understand())["accounts"] == 2
    await service.withdraw(a.id, "understand")
    assert (await service.run_understand())["accounts"] == 1
    await service.grant(a.id, "understand")
    assert (await service.run_understand())["accounts"] == 2


async def test_support_lookup_needs_consent(store: SqlStore, service: PrivacyService) -> None:
    a = await make_user(store, "asha", created_day=TODAY - 10, last_seen_day=TODAY - 1)
    with pytest.raises(ConsentRequired) as refused:
        await service.support_lookup("asha")
    assert refused.value.code == "consent_required"
    await service.grant(a.id, "support")
    seen = await service.support_lookup("Asha")
    assert seen["username"] == "asha" and seen["created"] == day_iso(TODAY - 10)
    assert seen["devices"] == [{"device_id": 1, "created": day_iso(TODAY - 10)}]
    await service.withdraw(a.id, "support")
    with pytest.raises(ConsentRequired):
        await service.support_lookup("asha")


async def test_the_affiliate_export_posts_only_consenting_accounts(
    store: SqlStore, open_service: object, affiliate: Receiver
) -> None:
    service: PrivacyService = await open_service(affiliate_url=affiliate.url)  # type: ignore[operator]
    a = await make_user(store, "asha", jurisdiction="EU")
    await make_user(store, "bilal")
    await service.grant(a.id, "share_affiliate")
    result = await service.run_affiliate_export()
    assert result["sent"] == 1
    [body] = affiliate.received
    assert body["type"] == "export"
    assert [r["username"] for r in body["records"]] == ["asha"]
    assert set(body["records"][0]) == {"username", "region", "created", "last_seen"}

    async with store.engine.connect() as conn:
        logged = (await conn.execute(select(transfer_log))).all()
    assert [(r.purpose, r.recipient, r.country, r.region) for r in logged] == [
        ("share_affiliate", "affiliate", "IN", "eu")
    ]

    # Withdrawing stops the next export and tells the affiliate.
    await service.withdraw(a.id, "share_affiliate")
    assert affiliate.received[-1] == {"type": "withdrawal", "subjects": ["asha"]}
    assert (await service.run_affiliate_export())["sent"] == 0
    assert len(affiliate.received) == 2


async def test_undeclared_uses_are_refused(store: SqlStore, service: PrivacyService) -> None:
    gate = service.gate
    cases = [
        (dict(purpose="understand", recipient="affiliate", fields=["account.last_seen_day"]),
         UndeclaredTransfer),
        (dict(purpose="understand", recipient="baat", fields=["account.username"]),
         UndeclaredTransfer),
        (dict(purpose="share_affiliate", recipient="affiliate",
              fields=["account.username"], country="US"), UndeclaredTransfer),
        (dict(purpose="share_affiliate", recipient="affiliate", fields=["envelope.content"]),
         UndeclaredTransfer),
        (dict(purpose="service", recipient="baat", fields=["account.username"]),
         PurposeNotOptional),
        (dict(purpose="spy", recipient="baat", fields=[]), UnknownPurpose),
    ]  # fmt: skip
    for kwargs, error in cases:
        with pytest.raises(error):
            async with gate.use(**kwargs):  # type: ignore[arg-type]
                pytest.fail("the gate let an undeclared use through")


async def test_an_undeclared_storage_region_is_refused(
    store: SqlStore, service: PrivacyService
) -> None:
    odd = await make_user(store, "odd", region="mars")
    await service.grant(odd.id, "understand")
    with pytest.raises(UndeclaredRegion):
        await service.run_understand()


async def test_a_server_in_an_undeclared_region_does_not_start(open_service: object) -> None:
    with pytest.raises(UndeclaredRegion):
        await open_service(region="local")  # type: ignore[operator]


async def test_consent_under_an_older_policy_stops_counting_when_the_purpose_expands(
    store: SqlStore, service: PrivacyService, open_service: object
) -> None:
    a = await make_user(store, "asha")
    b = await make_user(store, "bilal")
    await service.grant(a.id, "understand")
    await service.grant(b.id, "market")
    v1 = service.policy
    understand = v1.purpose("understand")
    n = v1.version + 1
    expanded = [replace(p, consent_since=n) if p.id == "understand" else p for p in v1.purposes]
    v2 = v1.evolve(version=n, purposes=tuple(expanded))
    assert understand.consent_since < n
    later: PrivacyService = await open_service(policy=v2)  # type: ignore[operator]

    assert (await later.run_understand())["accounts"] == 0  # needs fresh consent
    assert (await later.run_market())["audience"] == ["bilal"]  # not expanded: still counts
    states = {c["purpose"]: c for c in await later.consents(a.id)}
    assert states["understand"]["needs_reconsent"] and not states["understand"]["effective"]
    await later.grant(a.id, "understand")
    assert (await later.run_understand())["accounts"] == 1
