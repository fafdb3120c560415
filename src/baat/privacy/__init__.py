"""Privacy as a mechanism: the inventory, purposes, gate, consent ledger, notice and rights.

See ``docs/PRIVACY.md``. The server wires ``PrivacyService`` and ``baat.privacy.http.routes``;
the CLI lives in ``baat.cli.privacy``.
"""

from __future__ import annotations

from baat.privacy.consent_view import ConsentView
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
from baat.privacy.gate import Gate, Subject
from baat.privacy.inventory import CLIENT_ENTRIES, ENTRIES, SERVER_ENTRIES, Entry
from baat.privacy.ledger import LedgerReport
from baat.privacy.ledger_head import Head as LedgerHead
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
from baat.privacy.service import JOBS, PrivacyService

__all__ = [
    "CLIENT_ENTRIES",
    "ENTRIES",
    "JOBS",
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
    "ConsentView",
    "Entry",
    "Gate",
    "InvalidCorrection",
    "LedgerHead",
    "LedgerReport",
    "LedgerUnverifiable",
    "Policy",
    "PolicyDiff",
    "PolicyFileError",
    "PrivacyError",
    "PrivacyService",
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
    "Subject",
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
