"""Retention mechanisms of the privacy layer's own tables, and the legal-process log.

Which mechanism applies each retention period the inventory declares is listed in
``MECHANISMS``; ``tests/privacy/test_retention.py`` checks that every declared period has
one, and runs each with an injected clock to show the data gone at the declared time.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from baat.server.privacy.schema import legal_process_runs, server_keys

DAY = 86_400
# Below this, the transparency report says "fewer than 10" rather than the number, so that
# a small count cannot single out the person a request was about.
REPORT_THRESHOLD = 10

# Inventory entry → how its retention period is applied. Entries whose data lives until an
# event (account erasure, database retirement) name that event.
MECHANISMS: dict[str, str] = {
    "system.schema_version": "kept while the database exists",
    "account.id": "account erasure (privacy/erasure.py)",
    "account.username": "account erasure",
    "account.region": "account erasure",
    "account.jurisdiction": "account erasure",
    "account.created_day": "account erasure",
    "account.last_seen_day": "account erasure",
    "device.id": "account erasure; device removal",
    "device.identity_key": "account erasure; device removal",
    "device.created_day": "account erasure; device removal",
    "device.auth_token": "account erasure; device removal",
    "device.link_code": "SqlStore.consume_link_code deletes expired codes; account erasure",
    "account.device_list": "account erasure",
    "business.profile": "account erasure; replaced by each newer version",
    "business.verification": "account erasure; replaced by each newer statement",
    "account.delivery_access": "account erasure; replaced when the profile key rotates",
    "account.encrypted_profile": "account erasure; replaced by each new profile",
    "device.prekeys": "SqlStore.claim_bundle deletes each one-time key it hands out",
    "envelope.seq": "PrivacyService.run_retention (SqlStore.expire_envelopes); acknowledgement",
    "envelope.recipient": "PrivacyService.run_retention; acknowledgement",
    "envelope.sender": "PrivacyService.run_retention; acknowledgement",
    "envelope.message_id": "PrivacyService.run_retention; acknowledgement",
    "envelope.content": "PrivacyService.run_retention; acknowledgement",
    "envelope.stored_at": "PrivacyService.run_retention; acknowledgement",
    "envelope.recent_send": "Router.expire_recent, each send; SqlStore.expire_envelopes",
    "blob.id": "BlobStore.expire; fetch by every recipient",
    "blob.uploader": "BlobStore.expire; fetch by every recipient",
    "blob.size": "BlobStore.expire; fetch by every recipient",
    "blob.fetches": "BlobStore.expire; fetch by every recipient",
    "blob.expires_at": "BlobStore.expire; fetch by every recipient",
    "blob.content": "BlobStore.expire; fetch by every recipient",
    "connection.ip_address": "never stored: the session object holding it ends with the connection",
    "connection.presence": "Redis key expiry (PRESENCE_TTL_S); release on disconnect; erasure",
    "connection.session": "Router.detach when the connection closes; erasure",
    "memory.device_cache": "Router.forget_devices on every device change; erasure",
    "memory.send_rate": "erasure; process restart",
    "memory.last_seen_cache": "erasure; process restart",
    "consent.subject_ref": "account erasure",
    "consent.record": "ledger.prune from the start of the chain (PrivacyService.run_retention)",
    "consent.ledger_anchor": "kept while the database exists",
    "server.invite": "consume_invite deletes expired codes; PrivacyService.run_retention",
    "consent.ledger_head": "kept while the database exists (replaced on every append)",
    "transfer.record": "PrivacyService.run_retention",
    "transfer.region_count": "PrivacyService.run_retention",
    "server.signing_key": "prune_retired_keys (PrivacyService.run_retention)",
    "operator.legal_process_run": "prune_legal_process_runs (PrivacyService.run_retention)",
}


async def log_legal_process_run(conn: AsyncConnection, now: float) -> None:
    """Record that legal process was answered today: the day only, no content."""
    await conn.execute(legal_process_runs.insert().values(day=int(now // DAY)))


async def legal_process_runs_since(conn: AsyncConnection, since: float) -> int:
    count = await conn.scalar(
        select(func.count()).where(legal_process_runs.c.day >= int(since // DAY))
    )
    return int(count or 0)


def reported_count(n: int) -> int | str:
    """A count as the transparency report publishes it."""
    return n if n >= REPORT_THRESHOLD else f"fewer than {REPORT_THRESHOLD}"


async def prune_legal_process_runs(conn: AsyncConnection, cutoff: float) -> int:
    """Delete runs recorded on a day before ``cutoff``'s day."""
    result = await conn.execute(
        delete(legal_process_runs).where(legal_process_runs.c.day < int(cutoff // DAY))
    )
    return int(result.rowcount or 0)


async def prune_retired_keys(conn: AsyncConnection, cutoff: float) -> int:
    """Delete receipt signing keys retired before ``cutoff``: every receipt they signed
    is past the consent record's own retention by then."""
    result = await conn.execute(
        delete(server_keys).where(
            server_keys.c.retired_at.is_not(None), server_keys.c.retired_at < int(cutoff)
        )
    )
    return int(result.rowcount or 0)
