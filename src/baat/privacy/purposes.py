"""Why Baat processes data, who receives it, and where it is kept.

Purposes, recipients, storage regions and jurisdictions are declared here once; the
inventory (``inventory.py``) points at them by id, and the notice, the consent receipts, the
gate and the transparency report are all computed from these records.

Vocabulary: purposes carry a W3C DPV purpose IRI and a fideslang data-use key; legal bases
carry the DPV GDPR-extension IRI (``https://w3id.org/dpv/legal/eu/gdpr#A6-1-a`` ...). The DPV
has no concepts for the sections of India's DPDP Act, so DPDP bases cite the section and use
the closest generic DPV class.
"""

from __future__ import annotations

from dataclasses import dataclass

DPV = "https://w3id.org/dpv#"
PD = "https://w3id.org/dpv/pd#"
GDPR = "https://w3id.org/dpv/legal/eu/gdpr#"
LEGAL_IN = "https://w3id.org/dpv/legal/in#"
# The laws themselves are concepts of the jurisdiction extensions (DPV 2.x), not of the GDPR
# extension: ``legal-eu:law-GDPR`` and ``legal-gb:law-GDPR``.
LEGAL_EU = "https://w3id.org/dpv/legal/eu#"
LEGAL_GB = "https://w3id.org/dpv/legal/gb#"

# A recipient whose country is the account's own storage region: no cross-border transfer.
STORAGE_REGION = "storage-region"
# A recipient the user chooses (the people they write to) may be anywhere.
ANYWHERE = "any"
# Baat itself in another declared storage region: the home region of the account the user
# writes to or looks up (a message to an account stored in the EU is delivered there).
OTHER_REGION = "other-region"


@dataclass(frozen=True, slots=True)
class Basis:
    """One legal basis under one law."""

    law: str  # "GDPR" or "DPDP"
    cite: str  # the article or section
    label: str
    iri: str


@dataclass(frozen=True, slots=True)
class Recipient:
    id: str
    name: str
    role: str
    dpv_role: str
    country: str  # ISO 3166-1 alpha-2, STORAGE_REGION, OTHER_REGION or ANYWHERE
    # How data may leave the storage region for this recipient (GDPR chapter V, DPDP s. 16);
    # None when the recipient sits in the storage region.
    transfer_gdpr: Basis | None
    transfer_dpdp: Basis | None


@dataclass(frozen=True, slots=True)
class Purpose:
    id: str
    title: str
    description: str
    optional: bool
    dpv: str
    fides: str
    gdpr: Basis
    dpdp: Basis
    recipients: tuple[str, ...]
    # Consents granted under an older policy version do not count: bump this to the new
    # policy version whenever the purpose expands (``baat policy publish`` checks it).
    consent_since: int = 1
    profiling: bool = False
    automated_decisions: bool = False


@dataclass(frozen=True, slots=True)
class Region:
    id: str
    country: str
    location: str


@dataclass(frozen=True, slots=True)
class Jurisdiction:
    """What an account's jurisdiction changes: the storage region and the law the notice
    cites. Never defaults, rights or choices (DPDP s. 6(1), GDPR Art. 7(4))."""

    code: str
    name: str
    law: str
    law_iri: str
    cites: str  # "gdpr" or "dpdp": which basis column the notice quotes
    authority: str
    region: str


@dataclass(frozen=True, slots=True)
class Controller:
    name: str
    address: str
    email: str
    grievance_officer: str  # DPDP s. 8(9) and 8(10): published contact for grievances
    eu_representative: str  # GDPR Art. 27
    website: str


CONTROLLER = Controller(
    name="Baat Communications Private Limited",
    address="Bengaluru, Karnataka, India",
    email="privacy@baat.example",
    grievance_officer="grievance@baat.example",
    eu_representative="eu-representative@baat.example",
    website="https://baat.example",
)

# -- legal bases ---------------------------------------------------------------------------

_CONTRACT = Basis(
    "GDPR", "Art. 6(1)(b)", "necessary to perform our contract with you", GDPR + "A6-1-b"
)
_SECURITY = Basis(
    "GDPR",
    "Art. 6(1)(f)",
    "legitimate interest in network and information security (Recital 49)",
    GDPR + "A6-1-f",
)
_OBLIGATION = Basis(
    "GDPR",
    "Art. 6(1)(c)",
    "legal obligation: proof of consent (Art. 7(1)) and accountability (Art. 5(2))",
    GDPR + "A6-1-c",
)
_LEGAL_PROCESS = Basis(
    "GDPR", "Art. 6(1)(c)", "legal obligation to answer valid legal process", GDPR + "A6-1-c"
)
_CONSENT = Basis(
    "GDPR",
    "Art. 6(1)(a)",
    "your consent, which you may withdraw at any time (Art. 7(3))",
    GDPR + "A6-1-a",
)
_DPDP_SERVICE = Basis(
    "DPDP",
    "s. 7(a)",
    "legitimate use: data you provided voluntarily for the specified purpose of using Baat",
    DPV + "LegalBasis",
)
_DPDP_SECURITY = Basis(
    "DPDP",
    "s. 7(a) with s. 8(5)",
    "legitimate use for the service you asked for; duty to take reasonable security safeguards",
    DPV + "LegalObligation",
)
_DPDP_PROOF = Basis(
    "DPDP",
    "s. 6(10) with s. 8",
    "duty of the Data Fiduciary to prove that notice was given and consent obtained",
    DPV + "LegalObligation",
)
_DPDP_LEGAL = Basis(
    "DPDP",
    "s. 7(d) and s. 7(e)",
    "legitimate use: a legal duty to disclose information to the State, or a court order",
    DPV + "LegalObligation",
)
_DPDP_CONSENT = Basis(
    "DPDP",
    "s. 6",
    "your consent, free, specific, informed and unambiguous; withdraw any time (s. 6(4))",
    DPV + "Consent",
)
_SCC = Basis(
    "GDPR",
    "Art. 46(2)(c)",
    "standard contractual clauses adopted by the Commission",
    GDPR + "A46-2-c",
)
_EXPLICIT = Basis(
    "GDPR",
    "Art. 49(1)(a)",
    "your explicit consent to the transfer, given with the purpose",
    GDPR + "A49-1-a",
)
_AT_YOUR_REQUEST = Basis(
    "GDPR",
    "Art. 49(1)(b)",
    "necessary to perform the contract: delivering the message you sent",
    GDPR + "A49-1-b",
)
_DPDP_TRANSFER = Basis(
    "DPDP",
    "s. 16",
    "transfer outside India is allowed except to a country the Central Government restricts",
    DPV + "DataTransferLegalBasis",
)

# -- recipients ----------------------------------------------------------------------------

RECIPIENTS: tuple[Recipient, ...] = (
    Recipient(
        "baat",
        CONTROLLER.name,
        "controller",
        DPV + "DataController",
        STORAGE_REGION,
        None,
        None,
    ),
    Recipient(
        "correspondents",
        "The people you send messages to (their devices)",
        "recipient chosen by you",
        DPV + "Recipient",
        ANYWHERE,
        _AT_YOUR_REQUEST,
        _DPDP_TRANSFER,
    ),
    Recipient(
        "businesses",
        "The businesses you choose to chat with, and the hosts and processors each one names "
        "in the disclosure you accept before the first message",
        "recipient chosen by you",
        DPV + "Recipient",
        ANYWHERE,
        _AT_YOUR_REQUEST,
        _DPDP_TRANSFER,
    ),
    Recipient(
        "baat-regions",
        CONTROLLER.name + ", in the storage region of the account you write to or look up",
        "controller, another storage region",
        DPV + "DataController",
        OTHER_REGION,
        _AT_YOUR_REQUEST,
        _DPDP_TRANSFER,
    ),
    Recipient(
        "authorities",
        "Courts and law-enforcement authorities serving valid legal process",
        "public authority",
        DPV + "Authority",
        STORAGE_REGION,
        None,
        None,
    ),
    Recipient(
        "baat-support",
        "Baat support staff",
        "controller's staff",
        DPV + "DataController",
        "IN",
        _EXPLICIT,
        _DPDP_TRANSFER,
    ),
    Recipient(
        "affiliate",
        "Saathi Insights Private Limited (an affiliate of Baat)",
        "third party, independent controller",
        DPV + "ThirdParty",
        "IN",
        _SCC,
        _DPDP_TRANSFER,
    ),
)

# -- purposes ------------------------------------------------------------------------------

# One consent per business, ``business-chat:<account id>`` (docs/BUSINESS.md §3): the
# purpose is declared once here, and ``Policy.purpose`` gives each business its own id.
BUSINESS_CHAT = "business-chat"
PER_BUSINESS: frozenset[str] = frozenset({BUSINESS_CHAT})

PURPOSES: tuple[Purpose, ...] = (
    Purpose(
        "service",
        "Deliver your messages and run your account",
        "Register devices, hand out prekeys, and hold encrypted envelopes until your "
        "devices fetch them. When you write to or look up an account stored in another "
        "Baat region, the envelope or the request goes to that region.",
        False,
        DPV + "ServiceProvision",
        "essential.service",
        _CONTRACT,
        _DPDP_SERVICE,
        ("baat", "correspondents", "baat-regions"),
    ),
    Purpose(
        "security",
        "Authenticate devices and keep the service secure",
        "Check that requests come from your registered devices.",
        False,
        DPV + "EnforceSecurity",
        "essential.service.security",
        _SECURITY,
        _DPDP_SECURITY,
        ("baat",),
    ),
    Purpose(
        "accountability",
        "Prove your consents and record every use of your data for an optional purpose",
        "Keep the hash-chained consent ledger and the transfer log.",
        False,
        DPV + "RecordManagement",
        "essential.legal_obligation",
        _OBLIGATION,
        _DPDP_PROOF,
        ("baat",),
    ),
    Purpose(
        "legal",
        "Answer valid legal process",
        "Hand over, when legally compelled, only the day your account was created and the "
        "day it last connected.",
        False,
        DPV + "LegalCompliance",
        "third_party_sharing.legal_obligation",
        _LEGAL_PROCESS,
        _DPDP_LEGAL,
        ("authorities",),
    ),
    Purpose(
        "improve",
        "Improve Baat",
        "Count devices per account, among consenting accounts, to plan multi-device work.",
        True,
        DPV + "ImproveExistingProductsAndServices",
        "functional.service.improve",
        _CONSENT,
        _DPDP_CONSENT,
        ("baat",),
    ),
    Purpose(
        "understand",
        "Understand how Baat is used (usage analytics)",
        "Count consenting accounts active in the last 1, 7 and 30 days from the day they "
        "last connected. Only the counts leave the job.",
        True,
        DPV + "ServiceUsageAnalytics",
        "analytics.reporting",
        _CONSENT,
        _DPDP_CONSENT,
        ("baat",),
    ),
    Purpose(
        "customize",
        "Customize Baat for you",
        "Choose in-app tips from the age of your account.",
        True,
        DPV + "ServicePersonalisation",
        "personalize.system",
        _CONSENT,
        _DPDP_CONSENT,
        ("baat",),
    ),
    Purpose(
        "support",
        "Let support staff see your account metadata",
        "Support staff may look up your username, region, jurisdiction, the days your "
        "account and devices were created and the day you last connected.",
        True,
        DPV + "CustomerCare",
        "essential.service.operations.support",
        _CONSENT,
        _DPDP_CONSENT,
        ("baat-support",),
    ),
    Purpose(
        "market",
        "Tell you about Baat features and offers",
        "Put your account in the audience of in-app announcements about Baat. No targeted "
        "advertising and no profiling.",
        True,
        DPV + "DirectMarketing",
        "marketing.communications",
        _CONSENT,
        _DPDP_CONSENT,
        ("baat",),
    ),
    Purpose(
        "share_affiliate",
        "Share account metadata with an affiliate",
        "Send your username, storage region, account creation day and last connection day "
        "to Saathi Insights Private Limited, which uses them as an independent controller.",
        True,
        DPV + "SellDataToThirdParties",
        "third_party_sharing",
        _CONSENT,
        _DPDP_CONSENT,
        ("affiliate",),
    ),
    Purpose(
        BUSINESS_CHAT,
        "Chat with a business",
        "Exchange end-to-end encrypted messages with one business account. Before the first "
        "message you are shown who can read the chat (the business and every host or "
        "processor it names, with their country), for what and for how long; you accept it "
        "for that business alone, as business-chat:<account>, and may withdraw it (the chat "
        "becomes read-only). A change of hosts or processors holds your next message until "
        "you accept again. Baat itself still cannot read the messages.",
        True,
        DPV + "ServiceProvision",
        "essential.service",
        _CONSENT,
        _DPDP_CONSENT,
        ("businesses",),
        consent_since=9,
    ),
)

# -- where data lives, and which law the notice quotes -------------------------------------

REGIONS: tuple[Region, ...] = (
    Region("in", "IN", "Mumbai, India"),
    Region("eu", "DE", "Frankfurt am Main, Germany"),
    Region("us", "US", "Ashburn, Virginia, United States"),
)

JURISDICTIONS: tuple[Jurisdiction, ...] = (
    Jurisdiction(
        "IN",
        "India",
        "Digital Personal Data Protection Act, 2023 and DPDP Rules, 2025",
        LEGAL_IN + "law-DPDP",
        "dpdp",
        "Data Protection Board of India",
        "in",
    ),
    Jurisdiction(
        "EU",
        "European Union and EEA",
        "Regulation (EU) 2016/679 (GDPR)",
        LEGAL_EU + "law-GDPR",
        "gdpr",
        "the supervisory authority of your Member State (GDPR Art. 77)",
        "eu",
    ),
    Jurisdiction(
        "GB",
        "United Kingdom",
        "UK GDPR and Data Protection Act 2018",
        LEGAL_GB + "law-GDPR",
        "gdpr",
        "Information Commissioner's Office",
        "eu",
    ),
    Jurisdiction(
        "US",
        "United States",
        "state privacy laws where they apply; Baat applies this notice in full everywhere",
        DPV + "Law",
        "gdpr",
        "the Federal Trade Commission or your state Attorney General",
        "us",
    ),
    Jurisdiction(
        "ZZ",
        "Elsewhere",
        "the data protection law of your country; Baat applies this notice in full everywhere",
        DPV + "Law",
        "gdpr",
        "your national data protection authority",
        "eu",
    ),
)

OPTIONAL_PURPOSES: tuple[str, ...] = tuple(
    p.id for p in PURPOSES if p.optional and p.id not in PER_BUSINESS
)


def region_for(jurisdiction: str) -> str:
    """The storage region for a new account in ``jurisdiction`` (unknown codes → "ZZ").

    Registration should store this as ``accounts.region``.
    """
    by_code = {j.code: j for j in JURISDICTIONS}
    return by_code.get(jurisdiction.upper(), by_code["ZZ"]).region
