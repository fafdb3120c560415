"""Privacy as a mechanism, the pure core: the inventory, purposes, notice (render, JSON-LD,
record of processing, strict diff), receipts and their verification, residency, the erasure
path's registry and the errors.

See ``docs/PRIVACY.md``. The core imports neither ``baat.server`` nor ``baat.client``
(docs/ARCHITECTURE.md, "Layers"). What runs on the server against its database (the gate,
consent ledger, ``PrivacyService``, HTTP routes, jobs, rights and transparency) lives in
``baat.server.privacy``; the CLI lives in ``baat.cli.privacy``.
"""

from __future__ import annotations

from baat.privacy.diff import PolicyDiff, diff, reconsent_problems
from baat.privacy.errors import (
    AccountNotFound,
    ConsentNotGiven,
    ConsentRequired,
    InvalidCorrection,
    LedgerUnverifiable,
    PolicyFileError,
    PrivacyError,
    PrivacyStorageError,
    PurposeNotOptional,
    ReceiptError,
    ReceiptForged,
    ReceiptMalformed,
    ReceiptNotInLedger,
    ReceiptUnknownKey,
    UndeclaredRegion,
    UndeclaredTransfer,
    UnknownJurisdiction,
    UnknownPurpose,
    UsernameInUse,
)
from baat.privacy.inventory import CLIENT_ENTRIES, ENTRIES, SERVER_ENTRIES, Entry
from baat.privacy.policy import POLICY_VERSION, Policy
from baat.privacy.purposes import (
    JURISDICTIONS,
    OPTIONAL_PURPOSES,
    PURPOSES,
    RECIPIENTS,
    REGIONS,
    Purpose,
    Recipient,
    region_for,
)
from baat.privacy.receipts import Receipt
from baat.privacy.receipts import verify as verify_receipt
from baat.privacy.render import render

__all__ = [
    "CLIENT_ENTRIES",
    "ENTRIES",
    "JURISDICTIONS",
    "OPTIONAL_PURPOSES",
    "POLICY_VERSION",
    "PURPOSES",
    "RECIPIENTS",
    "REGIONS",
    "SERVER_ENTRIES",
    "AccountNotFound",
    "ConsentNotGiven",
    "ConsentRequired",
    "Entry",
    "InvalidCorrection",
    "LedgerUnverifiable",
    "Policy",
    "PolicyDiff",
    "PolicyFileError",
    "PrivacyError",
    "PrivacyStorageError",
    "Purpose",
    "PurposeNotOptional",
    "Receipt",
    "ReceiptError",
    "ReceiptForged",
    "ReceiptMalformed",
    "ReceiptNotInLedger",
    "ReceiptUnknownKey",
    "Recipient",
    "UndeclaredRegion",
    "UndeclaredTransfer",
    "UnknownJurisdiction",
    "UnknownPurpose",
    "UsernameInUse",
    "diff",
    "reconsent_problems",
    "region_for",
    "render",
    "verify_receipt",
]
