"""Counts of business accounts for the transparency report (docs/BUSINESS.md §6): how many
business accounts, how many the operator verified, how many accounts chat with businesses,
and the hosts and processors they declare, by country."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from baat.crypto.business import InvalidBusinessProfile, read_unverified
from baat.privacy.purposes import BUSINESS_CHAT
from baat.server.privacy import ledger
from baat.server.privacy.schema import consent_events
from baat.server.storage.schema import business_profiles, business_verifications


async def counts(conn: AsyncConnection) -> dict[str, Any]:
    """Raises: SQLAlchemyError."""
    profiles = (await conn.execute(select(business_profiles.c.signed_profile))).scalars().all()
    verified = await conn.scalar(
        select(func.count())
        .select_from(business_verifications)
        .join(
            business_profiles,
            business_profiles.c.account_id == business_verifications.c.account_id,
        )
    )
    hosts: Counter[str] = Counter()
    for blob in profiles:
        # Each was checked against its account key when it was published (server/business.py).
        try:
            profile = read_unverified(bytes(blob))
        except InvalidBusinessProfile:
            continue
        hosts.update(q.country for q in profile.processors)
    return {
        "business_accounts": len(profiles),
        "verified": int(verified or 0),
        "declared_hosts_by_country": dict(sorted(hosts.items())),
        "accounts_chatting_with_businesses": await _consenting(conn),
        "answer": (
            "Businesses host their side of a chat themselves or name every host and processor "
            "that can read it, in a disclosure each user accepts before the first message."
        ),
    }


async def _consenting(conn: AsyncConnection) -> int:
    """Accounts whose newest event for some business chat is a grant."""
    e = consent_events.c
    newest = (
        select(e.subject_ref, e.purpose, func.max(e.seq).label("seq"))
        .where(e.purpose.like(BUSINESS_CHAT + ":%"))
        .group_by(e.subject_ref, e.purpose)
        .subquery()
    )
    q = (
        select(func.count(func.distinct(e.subject_ref)))
        .select_from(consent_events.join(newest, e.seq == newest.c.seq))
        .where(e.state == ledger.GIVEN)
    )
    return int(await conn.scalar(q) or 0)
