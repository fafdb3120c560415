"""Errors of the privacy layer, each with a stable code that HTTP and the CLI pass on.

::

    PrivacyError
    ├── UnknownPurpose          unknown_purpose          no such purpose id
    ├── PurposeNotOptional      purpose_not_optional     essential purposes need no consent
    ├── ConsentNotGiven         consent_not_given        withdrawing a consent that is not active
    ├── ConsentRequired         consent_required         processing a non-consenting account
    ├── UndeclaredTransfer      undeclared_transfer      recipient, country or field undeclared
    │   └── UndeclaredRegion    undeclared_region        storage region undeclared
    ├── ReceiptError            (base of the receipt errors)
    │   ├── ReceiptMalformed    receipt_malformed        not a compact JWS of a Baat receipt
    │   ├── ReceiptForged       receipt_signature_invalid  signature or hash does not verify
    │   ├── ReceiptUnknownKey   receipt_unknown_key      signed by a key the server never published
    │   └── ReceiptNotInLedger  receipt_not_in_ledger    valid signature, but the ledger disagrees
    ├── LedgerUnverifiable      ledger_unverifiable      a record or the signed head does not
    │                                                    verify: no consent can be proven
    ├── AccountNotFound         account_not_found
    ├── InvalidCorrection       invalid_correction       unknown field or bad value in a correction
    ├── UnknownJurisdiction     unknown_jurisdiction
    ├── UsernameInUse           username_taken
    ├── PolicyFileError         policy_invalid           a published policy file is unreadable
    └── PrivacyStorageError     storage_unavailable      the database failed; the caller may retry

Codes are part of the public contract: clients branch on them, so never rename one.
"""

from __future__ import annotations

from typing import ClassVar


class PrivacyError(Exception):
    """Base of every error the privacy layer raises."""

    code: ClassVar[str] = "privacy_error"
    status: ClassVar[int] = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class UnknownPurpose(PrivacyError):
    code = "unknown_purpose"
    status = 404


class PurposeNotOptional(PrivacyError):
    code = "purpose_not_optional"
    status = 400


class ConsentNotGiven(PrivacyError):
    code = "consent_not_given"
    status = 409


class ConsentRequired(PrivacyError):
    code = "consent_required"
    status = 403


class UndeclaredTransfer(PrivacyError):
    code = "undeclared_transfer"
    status = 500


class UndeclaredRegion(UndeclaredTransfer):
    code = "undeclared_region"


class ReceiptError(PrivacyError):
    code = "receipt_invalid"
    status = 400


class ReceiptMalformed(ReceiptError):
    code = "receipt_malformed"


class ReceiptForged(ReceiptError):
    code = "receipt_signature_invalid"


class ReceiptUnknownKey(ReceiptError):
    code = "receipt_unknown_key"


class ReceiptNotInLedger(ReceiptError):
    code = "receipt_not_in_ledger"
    status = 409


class LedgerUnverifiable(PrivacyError):
    """The consent ledger does not verify (a record's hash, link or signature, or the chain
    ends before its signed head): optional processing stops until it is restored."""

    code = "ledger_unverifiable"
    status = 503


class AccountNotFound(PrivacyError):
    code = "account_not_found"
    status = 404


class InvalidCorrection(PrivacyError):
    code = "invalid_correction"
    status = 400


class UnknownJurisdiction(PrivacyError):
    code = "unknown_jurisdiction"
    status = 400


class UsernameInUse(PrivacyError):
    code = "username_taken"
    status = 409


class PolicyFileError(PrivacyError):
    code = "policy_invalid"
    status = 400


class PrivacyStorageError(PrivacyError):
    code = "storage_unavailable"
    status = 503
