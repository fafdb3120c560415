"""Business chats in the privacy notice and the transparency report (docs/BUSINESS.md §6):
the classification of the change by the policy diff, the generated "Businesses you chat
with" section, one consent purpose per business, and the counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from baat.crypto import IdentityKeyPair
from baat.crypto.business import BusinessProfile, Processor, sign_business_profile
from baat.privacy.diff import diff, reconsent_problems
from baat.privacy.errors import UnknownPurpose
from baat.privacy.policy import Policy, load_document
from baat.privacy.render import render
from baat.server.business import store_profile, verify_business
from baat.server.privacy.service import PrivacyService
from baat.server.storage.schema import devices
from baat.server.storage.sql import SqlStore

from .conftest import make_user

POLICIES = Path(__file__).resolve().parents[2] / "policies"
CURRENT = Policy.current()
# The version that added business chats: their consent counts from it.
_SINCE = CURRENT.purpose("business-chat").consent_since


def without_businesses() -> Policy:
    """The current policy as it would be without business chats."""
    entries = []
    for e in CURRENT.entries:
        if e.id.startswith("business.") or e.id == "client.businesses":
            continue
        if e.id == "account.id":
            from dataclasses import replace

            cols = tuple(c for c in e.columns if not c.startswith("business_"))
            e = replace(e, columns=cols, account_columns=cols)
        entries.append(e)
    return CURRENT.evolve(
        version=_SINCE - 1,
        purposes=tuple(p for p in CURRENT.purposes if p.id != "business-chat"),
        recipients=tuple(r for r in CURRENT.recipients if r.id != "businesses"),
        entries=tuple(entries),
    )


def test_the_change_is_an_expansion_that_asks_consent_for_business_chats_only() -> None:
    # Compared as published: the version before business chats and the one that added them
    # (later versions change other things).
    old, new = without_businesses().document(), CURRENT.evolve(version=_SINCE).document()
    changes = diff(old, new)
    assert changes.expands
    assert changes.expanded_purposes() == {"business-chat"}
    paths = {c.path for c in changes.blocking}
    assert {
        "purposes[business-chat]",
        "recipients[businesses]",
        "data[business.profile]",
        "data[business.verification]",
        "data[client.businesses]",
    } <= paths
    assert reconsent_problems(changes, new) == []
    # No consent to anything else stops counting.
    assert all(c.purposes in ((), ("business-chat",)) for c in changes.blocking)


def test_the_notice_has_a_section_generated_from_the_inventory() -> None:
    doc = CURRENT.document()
    assert doc["businesses"]["data"] == [
        "business.profile",
        "business.verification",
        "client.businesses",
    ]
    md = render(doc, "md", "IN")
    section = md.split("## Businesses you chat with", 1)[1].split("\n## ", 1)[0]
    for title in ("Business profile", "Business verification", "Businesses you chat with"):
        assert f"**{title}**" in section
    assert "business-chat:<account>" in section and "read-only" in section
    # A notice published before the section existed renders as it was.
    assert "Businesses you chat with" not in render(load_document(POLICIES / "v7.json"), "md")


def test_one_purpose_per_business() -> None:
    p = CURRENT.purpose("business-chat:in-0123456789abcdef")
    assert p.id == "business-chat:in-0123456789abcdef" and p.optional
    assert p.recipients == ("businesses",)
    fields = {e.id for e in CURRENT.entries_for(p.id)}
    assert fields == {"business.profile", "business.verification", "client.businesses"}
    for bad in ("business-chat:", "business-chat:x", "improve:in-0123456789", "business-chat:A B"):
        with pytest.raises(UnknownPurpose):
            CURRENT.purpose(bad)
    # Granted per business, so never in the list of account-wide switches.
    assert "business-chat" not in {q.id for q in CURRENT.optional_purposes}


async def test_consent_receipts_and_transparency_counts(
    store: SqlStore, service: PrivacyService
) -> None:
    asha = await make_user(store, "asha")
    ravi = await make_user(store, "ravi")
    counts = (await service.transparency_report())["businesses"]
    assert counts["business_accounts"] == 0 and counts["declared_hosts_by_country"] == {}

    made = {}
    for name, hosts in (
        ("shop", (Processor("CloudDesk GmbH", "DE", "host", (2,)),)),
        ("bakery", ()),
        ("travel", (Processor("A", "DE", "host", (2,)), Processor("B", "US", "support", (3,)))),
    ):
        user = await make_user(store, name)
        key = IdentityKeyPair.generate()
        async with store.engine.begin() as conn:
            await conn.execute(
                update(devices)
                .where(devices.c.account_id == user.id)
                .values(identity_key=key.identity_key)
            )
        profile = BusinessProfile(
            1, user.id, 1, name, f"{name} Ltd", "IN", "c", ("orders",), "30 days", (1,), hosts
        )
        assert await store_profile(store.engine, user.id, 1, sign_business_profile(key, profile))
        made[name] = user
    assert service.key is not None
    signed = await verify_business(store.engine, service.key, "shop", 1_800_000_000)
    assert signed["entity"] == "shop Ltd" and signed["statement"].count(".") == 2

    shop = f"business-chat:{made['shop'].id}"
    receipt = await service.grant(asha.id, shop)
    assert (await service.verify_receipt(receipt.jws)).record["purpose"]["id"] == shop
    await service.grant(ravi.id, shop)
    await service.grant(ravi.id, f"business-chat:{made['bakery'].id}")
    await service.withdraw(ravi.id, shop)

    counts = (await service.transparency_report())["businesses"]
    assert counts["business_accounts"] == 3
    assert counts["verified"] == 1
    assert counts["declared_hosts_by_country"] == {"DE": 2, "US": 1}
    assert counts["accounts_chatting_with_businesses"] == 2  # ravi still chats with bakery

    # Erasing an account withdraws its business chats with the rest, each with its record.
    erased = await service.delete_account(ravi.id)
    assert erased["consents_withdrawn"] == [f"business-chat:{made['bakery'].id}"]
    counts = (await service.transparency_report())["businesses"]
    assert counts["accounts_chatting_with_businesses"] == 1
