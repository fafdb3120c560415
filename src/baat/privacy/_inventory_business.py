"""Inventory entries of business accounts (docs/BUSINESS.md). Part of
``baat.privacy.inventory`` (import them from there); the notice's "Businesses you chat with"
section is generated from the entries whose purposes include ``business-chat``.
"""

from __future__ import annotations

from baat.privacy._inventory_records import _CREDENTIAL, Category, Entry, _client, _server
from baat.privacy.purposes import BUSINESS_CHAT, PD

_ORGANISATION = Category("user.contact", PD + "Identifier")

BUSINESS_SERVER_ENTRIES: tuple[Entry, ...] = (
    _server(
        "business.profile",
        "Business profile",
        "Only for business accounts: the profile the business signs with its identity key "
        "(legal entity, country, contact, purposes, retention, and every host or processor "
        "that can read messages with its country and devices), its version and the day it "
        "was last published. Shown to everyone who chats with the business.",
        (
            "business_profiles.version",
            "business_profiles.signed_profile",
            "business_profiles.updated_day",
        ),
        _ORGANISATION,
        ("service", BUSINESS_CHAT),
        ("baat", "correspondents"),
        source="the business, when it registers or publishes a new profile",
        since=9,
    ),
    _server(
        "business.verification",
        "Business verification",
        "Only for business accounts the operator checked: the operator's signed statement "
        "(naming the account, its legal entity and country) and the day it was signed.",
        ("business_verifications.statement", "business_verifications.verified_day"),
        _ORGANISATION,
        ("service", BUSINESS_CHAT),
        ("baat", "correspondents"),
        source="the operator, after its own checks ('baat admin verify-business')",
        since=9,
    ),
)

BUSINESS_CLIENT_ENTRIES: tuple[Entry, ...] = (
    _client(
        "client.businesses",
        "Businesses you chat with",
        "For each business you wrote to or heard from: its last verified profile, the "
        "disclosure you accepted, your signed consent receipt, and whether you withdrew it.",
        _CREDENTIAL,
        (BUSINESS_CHAT,),
        subjects=("user", "correspondent"),
        required=False,
        source="the business's signed profile and your choices",
        since=9,
    ),
)

__all__ = ["BUSINESS_CLIENT_ENTRIES", "BUSINESS_SERVER_ENTRIES"]
