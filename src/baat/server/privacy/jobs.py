"""The optional purposes, as real code paths. Each reads personal data only through the
gate, so each sees only the accounts whose consent counts at the moment it runs.

Refusing every optional purpose changes nothing for messaging: no code on the delivery path
imports this module.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import httpx

from baat.privacy.errors import ConsentRequired, UndeclaredTransfer
from baat.server.privacy.gate import Gate

AFFILIATE = "affiliate"
_DAY = 86_400


def day_iso(day: int) -> str:
    """An ISO date from days since the Unix epoch."""
    return (dt.date(1970, 1, 1) + dt.timedelta(days=int(day))).isoformat()


async def improve(gate: Gate) -> dict[str, Any]:
    """How many devices consenting accounts use (purpose ``improve``)."""
    async with gate.use("improve", "baat", fields=["device.id"]) as subjects:
        histogram = Counter(len(s.fields.get("device.id", [])) for s in subjects)
    return {
        "purpose": "improve",
        "accounts": sum(histogram.values()),
        "devices_per_account": {str(k): v for k, v in sorted(histogram.items())},
    }


async def understand(gate: Gate, now: float) -> dict[str, Any]:
    """Active-day counts among consenting accounts (purpose ``understand``)."""
    today = int(now // _DAY)
    async with gate.use("understand", "baat", fields=["account.last_seen_day"]) as subjects:
        seen = [int(s.fields["account.last_seen_day"]) for s in subjects]
    return {
        "purpose": "understand",
        "accounts": len(seen),
        "active_1d": sum(1 for d in seen if today - d < 1),
        "active_7d": sum(1 for d in seen if today - d < 7),
        "active_30d": sum(1 for d in seen if today - d < 30),
    }


def _tip(age_days: int) -> str:
    if age_days < 7:
        return "verify-your-contacts"
    if age_days < 90:
        return "link-another-device"
    return "export-your-chats"


async def customize(gate: Gate, now: float) -> dict[str, str]:
    """An in-app tip per consenting account, chosen from the account's age."""
    today = int(now // _DAY)
    async with gate.use("customize", "baat", fields=["account.created_day"]) as subjects:
        return {s.account_id: _tip(today - int(s.fields["account.created_day"])) for s in subjects}


SUPPORT_FIELDS = (
    "account.username",
    "account.region",
    "account.jurisdiction",
    "account.created_day",
    "account.last_seen_day",
    "device.id",
    "device.created_day",
)


async def support_lookup(gate: Gate, account_id: str) -> dict[str, Any]:
    """What support staff may see about one account, if it consented to ``support``.

    Raises:
        ConsentRequired: the account has not (or no longer) consented to ``support``.
    """
    async with gate.use(
        "support", "baat-support", fields=SUPPORT_FIELDS, only=[account_id]
    ) as subjects:
        if not subjects:
            raise ConsentRequired("this account has not allowed support staff to see its data")
        f = dict(subjects[0].fields)
    return {
        "username": f["account.username"],
        "region": f["account.region"],
        "jurisdiction": f["account.jurisdiction"],
        "created": day_iso(f["account.created_day"]),
        "last_seen": day_iso(f["account.last_seen_day"]),
        "devices": [
            {"device_id": d, "created": day_iso(c)}
            for d, c in zip(f.get("device.id", []), f.get("device.created_day", []), strict=True)
        ],
    }


async def market(gate: Gate) -> dict[str, Any]:
    """The audience of the next in-app announcement (purpose ``market``)."""
    async with gate.use("market", "baat", fields=["account.username"]) as subjects:
        audience = sorted(str(s.fields["account.username"]) for s in subjects)
    return {"purpose": "market", "audience": audience}


AFFILIATE_FIELDS = (
    "account.username",
    "account.region",
    "account.created_day",
    "account.last_seen_day",
)


async def post_json(url: str, body: dict[str, Any]) -> None:
    """POST to the affiliate. Raises: httpx.HTTPError."""
    async with httpx.AsyncClient(timeout=10.0) as client:
        response = await client.post(url, json=body)
        response.raise_for_status()


async def share_affiliate(gate: Gate, url: str | None) -> dict[str, Any]:
    """Send consenting accounts' metadata to the affiliate's endpoint.

    Raises:
        UndeclaredTransfer: no affiliate endpoint is configured.
        httpx.HTTPError: the affiliate did not accept the export (the transfer stays logged:
            the data may have left).
    """
    if not url:
        raise UndeclaredTransfer("no affiliate endpoint configured (affiliate_url)")
    async with gate.use("share_affiliate", AFFILIATE, fields=AFFILIATE_FIELDS) as subjects:
        records = [
            {
                "username": s.fields["account.username"],
                "region": s.fields["account.region"],
                "created": day_iso(s.fields["account.created_day"]),
                "last_seen": day_iso(s.fields["account.last_seen_day"]),
            }
            for s in subjects
        ]
        body = {"type": "export", "policy_version": gate.policy.version, "records": records}
        if records:
            await post_json(url, body)
    return {"purpose": "share_affiliate", "sent": len(records), "url": url}


async def notify_affiliate(url: str | None, kind: str, body: dict[str, Any]) -> str:
    """Tell the affiliate about an erasure, withdrawal or correction (GDPR Art. 19,
    DPDP s. 12(3)); returns "sent", "failed" or "not-configured". Never raises: the
    user's request has already been carried out."""
    if not url:
        return "not-configured"
    try:
        await post_json(url, {"type": kind, **body})
    except httpx.HTTPError:
        return "failed"
    return "sent"
