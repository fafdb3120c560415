"""The privacy policy as a product of the code.

``Policy.current()`` gathers the inventory, purposes, recipients, regions and jurisdictions
into one record; ``Policy.document()`` turns it into the canonical JSON notice whose SHA-256
identifies it. Published versions live in ``policies/vN.json``; a test fails when the code's
notice differs from the latest published one, and ``baat policy publish`` writes the next.

Canonical form: UTF-8 JSON with sorted keys and no insignificant whitespace. The document
holds only strings, integers, booleans, lists and objects (no floats), for which this is the
same byte string as RFC 8785 (JCS) produces.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from baat.privacy.errors import PolicyFileError, UnknownPurpose
from baat.privacy.inventory import ENTRIES, SUBJECTS, Entry
from baat.privacy.purposes import (
    BUSINESS_CHAT,
    CONTROLLER,
    JURISDICTIONS,
    PER_BUSINESS,
    PURPOSES,
    RECIPIENTS,
    REGIONS,
    Basis,
    Controller,
    Jurisdiction,
    Purpose,
    Recipient,
    Region,
)

# The version of the notice the code produces. Bump it, run `baat policy publish`, commit
# the new policies/vN.json.
POLICY_VERSION = 9
EFFECTIVE = "2026-12-02"
NOTICE_ID = "urn:baat:privacy-notice"
FORMAT = "baat-privacy-policy/1"
_FILE = re.compile(r"^v(\d+)\.json$")
_ACCOUNT = re.compile(r"^[a-z0-9][a-z0-9-]{3,39}$")  # an account id, as ids.py makes them


def canonical_json(value: Any) -> bytes:
    """The canonical bytes of a JSON value (sorted keys, compact, UTF-8)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def document_sha256(doc: dict[str, Any]) -> str:
    """SHA-256 of a policy document, computed without its own ``sha256`` member."""
    body = {k: v for k, v in doc.items() if k != "sha256"}
    return sha256_hex(canonical_json(body))


def _basis(b: Basis | None) -> dict[str, str] | None:
    if b is None:
        return None
    return {"law": b.law, "cite": b.cite, "label": b.label, "iri": b.iri}


@dataclass(frozen=True)
class Policy:
    """One version of the notice and everything the runtime decides from it."""

    version: int = POLICY_VERSION
    effective: str = EFFECTIVE
    controller: Controller = CONTROLLER
    purposes: tuple[Purpose, ...] = PURPOSES
    recipients: tuple[Recipient, ...] = RECIPIENTS
    entries: tuple[Entry, ...] = ENTRIES
    regions: tuple[Region, ...] = REGIONS
    jurisdictions: tuple[Jurisdiction, ...] = JURISDICTIONS
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def current(cls) -> Policy:
        return _CURRENT

    def evolve(self, **changes: Any) -> Policy:
        """A copy with some fields replaced (tests and the publishing tool use this)."""
        return replace(self, _cache={}, **changes)

    # -- look-ups --------------------------------------------------------------------------

    def purpose(self, purpose_id: str) -> Purpose:
        """The purpose ``purpose_id``; ``business-chat:<account id>`` is the declared
        ``business-chat`` purpose for that one business (docs/BUSINESS.md §3).

        Raises: UnknownPurpose."""
        family, sep, account = purpose_id.partition(":")
        if sep:
            if family not in PER_BUSINESS or not _ACCOUNT.match(account):
                raise UnknownPurpose(f"unknown purpose {purpose_id!r}")
            p = self.purpose(family)
            return replace(p, id=purpose_id, title=f"{p.title} ({account})")
        for p in self.purposes:
            if p.id == purpose_id:
                return p
        known = ", ".join(p.id for p in self.purposes if p.optional)
        raise UnknownPurpose(f"unknown purpose {purpose_id!r}; optional purposes are: {known}")

    def recipient(self, recipient_id: str) -> Recipient | None:
        return next((r for r in self.recipients if r.id == recipient_id), None)

    def entry(self, entry_id: str) -> Entry | None:
        return next((e for e in self.entries if e.id == entry_id), None)

    def region(self, region_id: str) -> Region | None:
        return next((r for r in self.regions if r.id == region_id), None)

    def jurisdiction(self, code: str) -> Jurisdiction | None:
        return next((j for j in self.jurisdictions if j.code == code), None)

    @property
    def optional_purposes(self) -> tuple[Purpose, ...]:
        """Those granted once per account; ``business-chat`` is granted per business."""
        return tuple(p for p in self.purposes if p.optional and p.id not in PER_BUSINESS)

    def entries_for(self, purpose_id: str) -> tuple[Entry, ...]:
        family = purpose_id.partition(":")[0]
        return tuple(e for e in self.entries if family in e.purposes)

    # -- the document ----------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        """The canonical notice, including its ``sha256``."""
        doc = self._cache.get("doc")
        if doc is None:
            doc = _build(self)
            doc["sha256"] = document_sha256(doc)
            self._cache["doc"] = doc
        return json.loads(json.dumps(doc))  # type: ignore[no-any-return]

    @property
    def sha256(self) -> str:
        self.document()
        return str(self._cache["doc"]["sha256"])


_CURRENT = Policy()


def _build(p: Policy) -> dict[str, Any]:
    c = p.controller
    return {
        "format": FORMAT,
        "notice_id": NOTICE_ID,
        "version": p.version,
        "effective": p.effective,
        "language": "en",
        "controller": {
            "name": c.name,
            "address": c.address,
            "email": c.email,
            "grievance_officer": c.grievance_officer,
            "eu_representative": c.eu_representative,
            "website": c.website,
        },
        "vocabularies": {
            "dpv": "W3C Data Privacy Vocabulary 2.2, https://w3id.org/dpv",
            "fideslang": "fideslang taxonomy by Ethyca, CC BY 4.0",
        },
        "same_rules_everywhere": (
            "Your jurisdiction chooses only where your data is stored and which law this "
            "notice cites. Defaults, rights and choices are identical for everyone."
        ),
        "jurisdictions": [
            {
                "code": j.code,
                "name": j.name,
                "law": j.law,
                "law_iri": j.law_iri,
                "cites": j.cites,
                "authority": j.authority,
                "storage_region": j.region,
            }
            for j in p.jurisdictions
        ],
        "regions": [{"id": r.id, "country": r.country, "location": r.location} for r in p.regions],
        "subjects": [
            {"id": k, "label": label, "iri": iri} for k, (label, iri) in sorted(SUBJECTS.items())
        ],
        "purposes": [_purpose(x) for x in p.purposes],
        "recipients": [_recipient(r) for r in p.recipients],
        "data": [_entry(e) for e in p.entries],
        "consent": {
            "default": "off: every optional purpose is off until you turn it on",
            "refusing": "Baat works fully with every optional purpose refused.",
            "withdraw": [
                "In the app: Settings, Privacy, switch the purpose off",
                "CLI: baat consent withdraw PURPOSE",
                "HTTP: DELETE /v1/consents/{purpose}",
            ],
            "effect": "Withdrawal applies to the very next run of every job and export.",
            "receipts": (
                "Every grant and withdrawal returns a receipt signed with Ed25519 (JWS) that "
                "names the notice, how you gave it and your device's key fingerprint, with the "
                "ledger's signed head; check them offline with the keys at "
                "/.well-known/baat/keys."
            ),
            "reconsent": (
                "When a new policy version widens an optional purpose or changes what it means "
                "(its wording, who receives the data, the data it reads), earlier consents to "
                "it stop counting until you grant it again."
            ),
        },
        "rights": _RIGHTS,
        "response_time": (
            "We answer within 30 days: GDPR Art. 12(3) allows one month; DPDP Rules 2025 "
            "allow 90 days for grievances. Everyone gets the shorter deadline."
        ),
        "businesses": _businesses(p),
        "profiling": {
            "profiling": any(x.profiling for x in p.purposes),
            "automated_decisions": any(x.automated_decisions for x in p.purposes),
            "statement": "Baat builds no profiles and makes no automated decisions about you.",
        },
        "children": (
            "No purpose tracks, monitors the behaviour of, or targets advertising at anyone, "
            "children included (DPDP s. 9(3), GDPR Art. 8)."
        ),
        "other_apps": "Baat records nothing about other apps on your device.",
        "security": list(SECURITY_MEASURES),
        "legal_process": {
            "fields": [e.id for e in p.entries if e.legal_process],
            "statement": (
                "Asked under valid legal process about an account, the operator hands over only "
                "the day it was created and the day it last connected. The server holds no "
                "message content it can read, no contact list and no IP address, and no "
                "sender for a sealed message."
            ),
        },
        "changes": (
            "A new version is published at /v1/policy and in policies/. Optional purposes "
            "that widen or change meaning need your consent again; messaging never does."
        ),
    }


def _businesses(p: Policy) -> dict[str, Any]:
    """The "Businesses you chat with" section, from the inventory entries of the purpose."""
    return {
        "purpose": BUSINESS_CHAT,
        "data": [e.id for e in p.entries if BUSINESS_CHAT in e.purposes],
        "statement": (
            "A business account publishes a profile signed by its own key: the legal entity, "
            "its country, a contact, the purposes it uses chat content for, how long it keeps "
            "it, and every host or processor that can read messages, with its country and the "
            "devices it runs. Before your first message to or from a business your app shows "
            "it, with a verified badge only when the operator has signed a verification "
            "statement. Messages are end-to-end encrypted to exactly the devices the profile "
            "names; your app refuses any other. The business and the hosts it names can read "
            "what you send it; Baat cannot."
        ),
        "consent": (
            "You accept each business's disclosure on its own (purpose business-chat:<account>, "
            "with a signed receipt); withdrawing it makes the chat read-only. When the business "
            "changes its hosts or processors, your next message waits until you accept again."
        ),
    }


def _purpose(x: Purpose) -> dict[str, Any]:
    return {
        "id": x.id,
        "title": x.title,
        "description": x.description,
        "optional": x.optional,
        "dpv": x.dpv,
        "fides": x.fides,
        "legal_basis": {"gdpr": _basis(x.gdpr), "dpdp": _basis(x.dpdp)},
        "recipients": list(x.recipients),
        "consent_since": x.consent_since,
        "profiling": x.profiling,
        "automated_decisions": x.automated_decisions,
    }


def _recipient(r: Recipient) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "role": r.role,
        "dpv_role": r.dpv_role,
        "country": r.country,
        "transfer_basis": {"gdpr": _basis(r.transfer_gdpr), "dpdp": _basis(r.transfer_dpdp)},
    }


def _entry(e: Entry) -> dict[str, Any]:
    return {
        "id": e.id,
        "title": e.title,
        "description": e.description,
        "side": e.side,
        "columns": list(e.columns),
        "server_visible": e.server_visible,
        "category": {"fides": e.category.fides, "dpv": e.category.dpv},
        "subjects": list(e.subjects),
        "purposes": list(e.purposes),
        "required": e.required,
        "source": e.source,
        "retention": {
            "duration": e.retention.duration,
            "trigger": e.retention.trigger,
            "deletion": e.retention.deletion,
        },
        "storage": e.storage,
        "recipients": list(e.recipients),
        "in_export": e.in_export,
        "legal_process": e.legal_process,
        "since": e.since,
    }


SECURITY_MEASURES: tuple[str, ...] = (
    "Messages are end-to-end encrypted (PQXDH key agreement, double ratchet); the server "
    "stores only ciphertext and deletes it on delivery or after 30 days.",
    "No phone number, no contact list, no IP address log; activity is kept by the day only, "
    "and an undelivered envelope's storage time only until it is delivered.",
    "Device tokens are stored as SHA-256 hashes and compared in constant time.",
    "Consent records form a SHA-256 hash chain; receipts are Ed25519-signed JWS.",
    "The newest consent record is signed as the ledger's head and published at "
    "/.well-known/baat/ledger-head; consent is decided only from verified, signed records.",
    "Receipt signing keys are encrypted at rest (AES-256-GCM) with a key outside the database.",
    "Optional processing reads personal data only through one audited gate that logs every "
    "transfer.",
    "Sealed sender: a message to a contact who shared a profile key is sent without naming "
    "its sender; the sender is inside the end-to-end encryption, and the server stores no "
    "sender for it (docs/CRYPTO.md section 18).",
)

_RIGHTS: list[dict[str, str]] = [
    {
        "right": "access",
        "cites": "GDPR Art. 15 and 20; DPDP s. 11",
        "how": "baat me export, or GET /v1/me/export: everything the server holds about "
        "you, your consent history with receipts, and every transfer of your data, as JSON",
    },
    {
        "right": "correction",
        "cites": "GDPR Art. 16 and 19; DPDP s. 12",
        "how": "baat me correct, or PATCH /v1/me (username, jurisdiction, storage region)",
    },
    {
        "right": "erasure",
        "cites": "GDPR Art. 17 and 19; DPDP s. 12",
        "how": "baat me delete, or DELETE /v1/me: nothing on the server references your "
        "account afterwards; recipients are told",
    },
    {
        "right": "withdraw consent",
        "cites": "GDPR Art. 7(3); DPDP s. 6(4)",
        "how": "baat consent withdraw PURPOSE, or DELETE /v1/consents/{purpose}",
    },
    {
        "right": "object and not be subject to automated decisions",
        "cites": "GDPR Art. 21 and 22",
        "how": "there is no profiling or automated decision; optional purposes are opt-in",
    },
    {
        "right": "grievance redressal",
        "cites": "DPDP s. 13; GDPR Art. 12",
        "how": "write to the grievance officer named in this notice",
    },
    {
        "right": "nominate",
        "cites": "DPDP s. 14",
        "how": "write to the grievance officer to name who may act for you",
    },
    {
        "right": "complain to an authority",
        "cites": "GDPR Art. 77; DPDP s. 13(3)",
        "how": "the authority listed for your jurisdiction",
    },
]


# -- published versions --------------------------------------------------------------------


def published_versions(directory: Path) -> dict[int, Path]:
    """Published policy files in ``directory`` by version number."""
    if not directory.is_dir():
        return {}
    found: dict[int, Path] = {}
    for path in directory.iterdir():
        m = _FILE.match(path.name)
        if m:
            found[int(m.group(1))] = path
    return dict(sorted(found.items()))


def load_document(path: Path) -> dict[str, Any]:
    """Read a published policy and check its SHA-256.

    Raises:
        PolicyFileError: unreadable, not a Baat policy, or its content does not match its
            recorded SHA-256 (it was edited after publication).
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PolicyFileError(f"{path}: cannot read policy: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PolicyFileError(f"{path}: not a Baat policy document ({FORMAT})")
    if doc.get("sha256") != document_sha256(doc):
        raise PolicyFileError(
            f"{path}: content does not match its sha256; published files are immutable"
        )
    return doc


def dump_document(doc: dict[str, Any]) -> str:
    """The text of a published policy file (stable, reviewable diffs)."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
