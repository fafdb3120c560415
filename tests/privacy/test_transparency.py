"""Point 8: the regulator's questions, answered from the inventory and live counts."""

from __future__ import annotations

import pytest

from baat.privacy.errors import AccountNotFound
from baat.server.privacy.jobs import day_iso
from baat.server.privacy.transparency import SEIZED_CANNOT_LINK, SEIZED_LINKS, markdown
from baat.server.storage.sql import SqlStore

from .conftest import TODAY, OpenService, Receiver, make_user


async def test_the_report_answers_every_question(
    store: SqlStore, open_service: OpenService, affiliate: Receiver
) -> None:
    service = await open_service(affiliate_url=affiliate.url)
    a = await make_user(store, "asha", jurisdiction="IN")
    b = await make_user(store, "bilal", jurisdiction="EU")
    await make_user(store, "chen", jurisdiction="US")
    await service.grant(a.id, "share_affiliate")
    await service.grant(b.id, "share_affiliate")
    await service.grant(b.id, "understand")
    await service.withdraw(b.id, "share_affiliate")
    await service.run_affiliate_export()

    report = await service.transparency_report()
    assert report["accounts"] == 3
    assert {c["fides"] for c in report["data_categories"]} >= {
        "user.account.username",
        "user.content.private",
        "user.device.ip_address",
    }
    content = next(c for c in report["data_categories"] if c["fides"] == "user.content.private")
    assert not content["server_visible"]
    sought = {c["purpose"]: c for c in report["consents_sought"]}
    assert set(sought) == {
        "improve",
        "understand",
        "customize",
        "support",
        "market",
        "share_affiliate",
    }
    assert all(c["default"] == "off" for c in sought.values())
    assert sought["share_affiliate"]["consenting_accounts"] == 1
    assert sought["understand"]["consenting_accounts"] == 1
    assert report["profiling"]["answer"] == "none"
    assert report["other_apps"]["answer"] == "none"
    assert report["country_differences"]["answer"].startswith("none except")
    assert report["security"]
    [flow] = report["flows_to_other_companies"]
    assert flow["country"] == "IN" and flow["needs_consent"]
    assert flow["consenting_accounts"] == 1 and flow["accounts_transferred_last_year"] == 1
    assert flow["fields"] == [
        "account.created_day",
        "account.last_seen_day",
        "account.region",
        "account.username",
    ]
    hosting = {h["region"]: h["accounts"] for h in report["hosting"]}
    assert hosting == {"in": 1, "eu": 1, "us": 1}
    assert {f["recipient"] for f in report["third_party_access"]} >= {
        "Courts and law-enforcement authorities serving valid legal process"
    }
    assert report["legal_process"]["fields"] == ["account.created_day", "account.last_seen_day"]

    text = markdown(report)
    for heading in (
        "Which data categories are collected",
        "Which consents are sought, and for what",
        "Are users profiled",
        "How the policy differs between countries",
        "Security and encryption",
        "Data flows to other companies",
        "Information about other apps on the device",
        "Where data is hosted",
        "Third-party access",
    ):
        assert f"## {heading}" in text


async def test_legal_process_yields_creation_and_last_connection_only(
    store: SqlStore, open_service: OpenService
) -> None:
    service = await open_service()
    user = await make_user(store, "asha", created_day=TODAY - 400, last_seen_day=TODAY - 2)
    for purpose in ("understand", "support", "share_affiliate"):
        await service.grant(user.id, purpose)  # consents do not widen what can be produced
    answer = await service.legal_process("ASHA")
    assert answer == {
        "username": "asha",
        "produced": {
            "account.created_day": day_iso(TODAY - 400),
            "account.last_seen_day": day_iso(TODAY - 2),
        },
        "seized_database": {
            "undelivered_envelopes": 0,
            "of_which_sealed": 0,
            "oldest_arrival_day": None,
            "links": list(SEIZED_LINKS),
            "cannot_link": list(SEIZED_CANNOT_LINK),
        },
    }
    assert set(answer["produced"]) <= {"account.created_day", "account.last_seen_day"}
    with pytest.raises(AccountNotFound):
        await service.legal_process("nobody")
