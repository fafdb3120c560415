"""The transparency report: a regulator's questions answered from the inventory and live
counts, and what legal process could obtain.

The questions are the ones India's IT ministry reportedly put to WhatsApp in January 2021:
which data categories are collected; which consents are sought and for what; whether users
are profiled; how the policy differs between countries; security and encryption; data
flows to group companies; information about other apps on the device; where data is
hosted; third-party access.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from baat.privacy.policy import SECURITY_MEASURES, Policy
from baat.privacy.residency import Residency
from baat.server.privacy import business_counts, ledger, retention
from baat.server.privacy.schema import region_transfers, transfer_log
from baat.server.storage.schema import accounts

_YEAR = 365 * 86_400


async def report(
    conn: AsyncConnection, policy: Policy, now: float, *, residency: Residency | None = None
) -> dict[str, Any]:
    """The report for ``policy`` at ``now``; ``residency`` adds what this deployment does
    with each jurisdiction's registrations (stored here, sent to a linked region, refused)."""
    per_region: dict[str, int] = dict(
        (
            await conn.execute(select(accounts.c.region, func.count()).group_by(accounts.c.region))
        ).all()
    )
    consenting: dict[str, int] = {}
    for p in policy.optional_purposes:
        q = ledger.consenting_accounts_query(p).subquery()
        consenting[p.id] = int(await conn.scalar(select(func.count()).select_from(q)) or 0)
    since = int(now) - _YEAR
    t = transfer_log
    moved = (
        await conn.execute(
            select(t.c.recipient, func.count(func.distinct(t.c.subject_ref)))
            .where(t.c.at >= since)
            .group_by(t.c.recipient)
        )
    ).all()
    transferred = {r: int(n) for r, n in moved}
    rt = region_transfers.c
    crossings = (
        await conn.execute(
            select(rt.kind, rt.from_region, rt.to_region, func.sum(rt.count))
            .where(rt.day >= since // 86_400)
            .group_by(rt.kind, rt.from_region, rt.to_region)
            .order_by(rt.from_region, rt.to_region, rt.kind)
        )
    ).all()

    legal_runs = await retention.legal_process_runs_since(conn, since)
    placements = (
        {j.code: residency.placement(j.code).describe() for j in policy.jurisdictions}
        if residency is not None
        else {}
    )
    server = [e for e in policy.entries if e.side == "server"]
    categories: dict[str, dict[str, Any]] = {}
    for e in policy.entries:
        c = categories.setdefault(
            e.category.fides,
            {
                "fides": e.category.fides,
                "dpv": e.category.dpv,
                "fields": [],
                "server_visible": False,
            },
        )
        c["fields"].append(e.id)
        c["server_visible"] = c["server_visible"] or e.server_visible
    flows: list[dict[str, Any]] = []
    for r in policy.recipients:
        if r.id == "baat":
            continue
        purposes = [p for p in policy.purposes if r.id in p.recipients]
        flows.append(
            {
                "recipient": r.name,
                "role": r.role,
                "country": r.country,
                "purposes": [p.id for p in purposes],
                "needs_consent": all(p.optional for p in purposes),
                "consenting_accounts": sum(consenting.get(p.id, 0) for p in purposes if p.optional),
                "accounts_transferred_last_year": transferred.get(r.id, 0),
                "fields": sorted(e.id for e in server if r.id in e.recipients),
                # Other companies: neither Baat, nor the users, nor public authorities.
                "other_company": "third party" in r.role,
            }
        )
    profiling = [p.id for p in policy.purposes if p.profiling or p.automated_decisions]
    other_apps = [e.id for e in policy.entries if "DeviceApplications" in e.category.dpv]
    return {
        "format": "baat-transparency-report/1",
        "generated_at": ledger.iso_time(int(now)),
        "policy": {"version": policy.version, "sha256": policy.sha256},
        "accounts": sum(int(n) for n in per_region.values()),
        "data_categories": sorted(categories.values(), key=lambda c: c["fides"]),
        "consents_sought": [
            {
                "purpose": p.id,
                "title": p.title,
                "for": p.description,
                "default": "off",
                "legal_basis": {"gdpr": p.gdpr.cite, "dpdp": p.dpdp.cite},
                "consenting_accounts": consenting[p.id],
            }
            for p in policy.optional_purposes
        ],
        "essential_processing_without_consent": [
            {"purpose": p.id, "title": p.title, "gdpr": p.gdpr.cite, "dpdp": p.dpdp.cite}
            for p in policy.purposes
            if not p.optional
        ],
        "profiling": {"purposes": profiling, "answer": "none" if not profiling else "declared"},
        "businesses": await business_counts.counts(conn),
        "country_differences": {
            "answer": "none except where data is stored and which law the notice cites",
            "jurisdictions": [
                {
                    "code": j.code,
                    "storage_region": j.region,
                    "notice_cites": j.cites,
                    **({"registration": placements[j.code]} if j.code in placements else {}),
                }
                for j in policy.jurisdictions
            ],
        },
        "security": list(SECURITY_MEASURES),
        "flows_to_other_companies": [f for f in flows if f["other_company"]],
        "other_apps": {"fields": other_apps, "answer": "none" if not other_apps else "declared"},
        "hosting": [
            {
                "region": r.id,
                "location": r.location,
                "country": r.country,
                "accounts": int(per_region.get(r.id, 0)),
            }
            for r in policy.regions
        ],
        # Essential routing to accounts stored in another region, counted, never logged per
        # person (baat.server.privacy.regions). Counted in the region the data left.
        "transfers_between_regions_last_year": [
            {"kind": k, "from_region": f, "to_region": t, "count": int(n)}
            for k, f, t, n in crossings
        ],
        "third_party_access": flows,
        "legal_process": {
            "fields": [e.id for e in server if e.legal_process],
            "answer": "the day an account was created and the day it last connected, nothing else",
            # Every `transparency legal-process` run is logged by day, without content.
            "requests_last_year": retention.reported_count(legal_runs),
        },
    }


def markdown(rep: dict[str, Any]) -> str:
    lines = [
        "# Baat transparency report",
        "",
        f"Generated {rep['generated_at']} under policy v{rep['policy']['version']} "
        f"(`{rep['policy']['sha256']}`). Accounts: {rep['accounts']}.",
        "",
        "## Which data categories are collected",
        "",
    ]
    for c in rep["data_categories"]:
        where = "server can read" if c["server_visible"] else "encrypted or on devices only"
        lines.append(f"- {c['fides']} ({where}): {', '.join(c['fields'])}")
    lines += ["", "## Which consents are sought, and for what", ""]
    for c in rep["consents_sought"]:
        lines.append(
            f"- {c['purpose']} (default {c['default']}, "
            f"{c['consenting_accounts']} consenting): {c['for']}"
        )
    lines += ["", "Essential processing, no consent asked:", ""]
    lines += [
        f"- {p['purpose']}: {p['title']} (GDPR {p['gdpr']}, DPDP {p['dpdp']})"
        for p in rep["essential_processing_without_consent"]
    ]
    lines += ["", "## Are users profiled", "", rep["profiling"]["answer"]]
    lines += [
        "",
        "## How the policy differs between countries",
        "",
        rep["country_differences"]["answer"],
        "",
    ]
    lines += [
        f"- {j['code']}: stored in {j['storage_region']}, notice cites {j['notice_cites']}"
        + (f"; registrations here: {j['registration']}" if "registration" in j else "")
        for j in rep["country_differences"]["jurisdictions"]
    ]
    lines += ["", "## Security and encryption", ""] + [f"- {s}" for s in rep["security"]]
    lines += ["", "## Data flows to other companies", ""]
    for f in rep["flows_to_other_companies"]:
        lines.append(
            f"- {f['recipient']} ({f['country']}): {', '.join(f['fields'])}; only with consent; "
            f"{f['consenting_accounts']} consenting, "
            f"{f['accounts_transferred_last_year']} sent in the last year"
        )
    lines += ["", "## Information about other apps on the device", "", rep["other_apps"]["answer"]]
    lines += ["", "## Where data is hosted", ""]
    lines += [
        f"- {h['region']}: {h['location']} ({h['accounts']} accounts)" for h in rep["hosting"]
    ]
    lines += ["", "Transfers to accounts stored in other regions (last year, counted):", ""]
    lines += [
        f"- {x['kind']} {x['from_region']} → {x['to_region']}: {x['count']}"
        for x in rep["transfers_between_regions_last_year"]
    ] or ["- none"]
    lines += ["", "## Third-party access", ""]
    lines += [
        f"- {f['recipient']} ({f['role']}, {f['country']}): "
        f"{', '.join(f['fields']) or 'no stored fields'}"
        for f in rep["third_party_access"]
    ]
    lines += ["", "## Legal process", "", rep["legal_process"]["answer"]]
    if "requests_last_year" in rep["legal_process"]:
        lines += [
            "",
            f"Requests answered in the last year: {rep['legal_process']['requests_last_year']}.",
        ]
    return "\n".join(lines) + "\n"


# What a copy of the database links, and what it cannot, since sealed sender (issue 16,
# docs/CRYPTO.md §18, THREAT_MODEL.md "A seized database"). Stated with the live counts for
# the account asked about, so an operator answering legal process says exactly this.
SEIZED_LINKS = (
    "the recipient account and device of each undelivered envelope, and when it arrived "
    "(to the millisecond; deleted on delivery or after 30 days)",
    "the sender of an undelivered envelope sent authenticated (the fallback when the sender "
    "had no valid access key for the recipient), and copies between one account's devices",
    "the account that uploaded an attachment (until fetched or 30 days); fetches only as "
    "keyed hashes",
    'the account\'s delivery access settings (a hash of its access key, "from anyone") and '
    "its profile as ciphertext",
)
SEIZED_CANNOT_LINK = (
    "the sender of a sealed envelope: its row has no sender, its sender certificate is "
    "inside the ciphertext",
    "who an account writes to with sealed sends: nothing stored, logged or kept in memory "
    "records it, and the duplicate-send memory holds only a random message id",
    "display names or avatars: profiles are encrypted with a key the server never sees",
)


async def seized_database(conn: AsyncConnection, account_id: str) -> dict[str, Any]:
    """What a copy of the database shows about envelopes waiting for ``account_id``."""
    from sqlalchemy import func, select

    from baat.server.storage.schema import envelopes as e

    row = (
        await conn.execute(
            select(
                func.count(),
                func.count().filter(e.c.sender_account.is_(None)),
                func.min(e.c.stored_at),
            ).where(e.c.recipient_account == account_id)
        )
    ).one()
    return {
        "undelivered_envelopes": int(row[0]),
        "of_which_sealed": int(row[1]),
        "oldest_arrival_day": None if row[2] is None else int(row[2]) // 86_400_000,
        "links": list(SEIZED_LINKS),
        "cannot_link": list(SEIZED_CANNOT_LINK),
    }
