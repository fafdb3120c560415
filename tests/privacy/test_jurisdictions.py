"""Point 4: one suite of consent and rights checks per jurisdiction; the outcomes must be
identical except for where the data is stored (DPDP s. 6(1), GDPR Art. 7(4): no choice may
depend on where someone lives)."""

from __future__ import annotations

from typing import Any

import pytest

from baat.privacy import receipts
from baat.privacy.errors import PrivacyError
from baat.privacy.purposes import JURISDICTIONS, OPTIONAL_PURPOSES, region_for
from baat.server.privacy.service import PrivacyService
from baat.server.storage.sql import SqlStore

from .conftest import OpenService, Receiver, make_user


async def _code(call: Any) -> str:
    try:
        await call
    except PrivacyError as exc:
        return exc.code
    return "ok"


async def _suite(store: SqlStore, service: PrivacyService, code: str) -> dict[str, Any]:
    name = f"user-{code.lower()}"
    user = await make_user(store, name, jurisdiction=code)
    out: dict[str, Any] = {"region": user.account.region}
    out["defaults"] = [
        (c["purpose"], c["state"], c["effective"]) for c in await service.consents(user.id)
    ]
    jwks = await service.jwks()
    granted = [await service.grant(user.id, p) for p in OPTIONAL_PURPOSES]
    out["receipts_valid"] = all(receipts.verify(r.jws, jwks) for r in granted)
    out["receipt_jurisdiction"] = {r.record["jurisdiction"] for r in granted} == {code}
    out["receipt_fields"] = sorted(granted[0].record)

    audience = (await service.run_market())["audience"]
    support = await service.support_lookup(name)
    sent = await service.run_affiliate_export()
    out["jobs_include_user"] = (
        name in audience,
        user.id in await service.run_customize(),
        sent["sent"] == 1,
        sorted(k for k in support if k not in ("username", "region", "jurisdiction")),
    )
    for p in OPTIONAL_PURPOSES:
        await service.withdraw(user.id, p)
    out["after_withdrawal"] = (
        (await service.run_understand())["accounts"],
        (await service.run_improve())["accounts"],
        name in (await service.run_market())["audience"],
        await _code(service.support_lookup(name)),
    )
    out["errors"] = [
        await _code(service.grant(user.id, "nope")),
        await _code(service.grant(user.id, "service")),
        await _code(service.withdraw(user.id, "market")),
        await _code(service.correct(user.id, jurisdiction="XX")),
    ]
    export = await service.export_account(user.id)
    out["export"] = {
        "tables": {t: len(rows) for t, rows in export["data"].items()},
        "not_included": [x["field"] for x in export["not_included"]],
        "history": [
            (h["record"]["purpose"]["id"], h["record"]["state"])
            for h in export["consents"]["history"]
        ],
        "transfers": [(t["purpose"], t["recipient"], t["fields"]) for t in export["transfers"]],
    }
    out["transfer_countries"] = {(t["recipient"], t["country"]) for t in export["transfers"]}
    new_name = name.replace("-", "_") + "_x"
    corrected = await service.correct(user.id, username=new_name)
    out["correct"] = corrected["username"] == new_name
    deleted = await service.delete_account(user.id)
    out["deleted"] = (sorted(deleted["deleted"]), deleted["recipients_notified"])
    out["gone"] = await _code(service.export_account(user.id))
    return out


async def test_every_jurisdiction_gets_the_same_rules(
    store: SqlStore, open_service: OpenService, affiliate: Receiver
) -> None:
    service = await open_service(affiliate_url=affiliate.url)
    service.support_url = affiliate.url  # the support desk is told of erasures too
    outcomes = {j.code: await _suite(store, service, j.code) for j in JURISDICTIONS}
    assert (await service.verify_ledger()).ok

    # The only differences: the storage region, and so the country of in-region processing.
    for j in JURISDICTIONS:
        o = outcomes[j.code]
        assert o.pop("region") == region_for(j.code) == j.region
        country = next(r.country for r in service.policy.regions if r.id == j.region)
        assert o.pop("transfer_countries") == {
            ("baat-support", "IN"),
            ("affiliate", "IN"),
            ("baat", country),
        }
    reference = outcomes["IN"]
    for code, outcome in outcomes.items():
        assert outcome == reference, f"{code} is treated differently from IN"
    # And what they all get is right.
    assert all(state == "not-given" and not on for _, state, on in reference["defaults"])
    assert reference["jobs_include_user"][:3] == (True, True, True)
    assert reference["after_withdrawal"] == (0, 0, False, "consent_required")
    assert reference["errors"] == [
        "unknown_purpose",
        "purpose_not_optional",
        "consent_not_given",
        "unknown_jurisdiction",
    ]
    assert reference["deleted"][1] == {"affiliate": "sent", "baat-support": "sent"}
    assert reference["gone"] == "account_not_found"


@pytest.mark.parametrize("code", [j.code for j in JURISDICTIONS])
def test_jurisdiction_only_picks_region_and_wording(code: str) -> None:
    j = next(x for x in JURISDICTIONS if x.code == code)
    assert j.cites in ("gdpr", "dpdp") and j.region in {"in", "eu", "us"}
