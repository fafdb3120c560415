"""The notice as JSON-LD in the W3C Data Privacy Vocabulary (DPV 2.x).

Rules the graph keeps, so that an independent JSON-LD processor reading it against the DPV
finds only terms that exist and values of the kind each property expects:

1. Only DPV 2.x terms: the laws are ``legal-eu:law-GDPR``, ``legal-gb:law-GDPR`` and
   ``legal-in:law-DPDP`` (the GDPR extension has no ``GDPR`` concept); IRIs from older
   published notices are mapped to their DPV 2.x names (``_RENAMED``) so that every version
   renders valid.
2. Concepts where DPV expects concepts: countries are ``loc:`` concepts, data subjects,
   personal data categories, rights and security measures are DPV concepts, locations are
   ``dpv:StorageLocation`` nodes; free text goes into ``rdfs:label``/``rdfs:comment`` only.
3. Durations that mean what they say: a period after an event is a ``dpv:TemporalDuration``
   whose ``rdf:value`` is an ``xsd:duration``; "until the account is deleted" (stored as
   ``P0D`` after that event) is a ``dpv:UntilEventDuration`` naming the event, never a zero
   duration.
4. Nodes for what a regulator asks: applicable law per jurisdiction, transfers to third
   countries with their legal basis, security measures, and the rights with their GDPR
   articles.

The notice's own members that DPV has no term for stay in the ``baat:`` namespace.
"""

from __future__ import annotations

import re
from typing import Any

from baat.privacy.inventory import duration_seconds
from baat.privacy.purposes import DPV, GDPR, LEGAL_EU, LEGAL_GB, LEGAL_IN, PD

LOC = "https://w3id.org/dpv/loc#"
XSD = "http://www.w3.org/2001/XMLSchema#"
CONTEXT = {
    "dpv": DPV,
    "pd": PD,
    "eu-gdpr": GDPR,
    "legal-eu": LEGAL_EU,
    "legal-gb": LEGAL_GB,
    "legal-in": LEGAL_IN,
    "loc": LOC,
    "dct": "http://purl.org/dc/terms/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "xsd": XSD,
    "baat": "urn:baat:vocab#",
}
# IRIs published in earlier notices and their DPV 2.x names.
_RENAMED = {
    GDPR + "GDPR": LEGAL_EU + "law-GDPR",
    PD + "ServiceConsumptionBehavior": PD + "ServiceConsumptionBehaviour",
}
_LAW_BY_JURISDICTION = {"GB": LEGAL_GB + "law-GDPR"}
# GDPR articles that DPV models as data-subject rights (legal/eu/gdpr, rights module).
_GDPR_RIGHTS = {"A7-3", *(f"A{n}" for n in range(13, 23)), "A77", "A78", "A79"}
# Security measures as DPV concepts, recognised by what the notice says about them.
_MEASURES = (
    ("end-to-end", DPV + "EndToEndEncryption"),
    ("encrypted at rest", DPV + "EncryptionAtRest"),
    ("hash", DPV + "HashFunctions"),
    ("signed", DPV + "DigitalSignatures"),
    ("constant time", DPV + "AccessControlMethod"),
    ("gate", DPV + "UsageControl"),
    ("no phone number", DPV + "PrivacyByDesign"),
)


def _iri(value: str) -> str:
    return _RENAMED.get(value, value)


def _ref(value: str) -> dict[str, str]:
    return {"@id": _iri(value)}


def _country(code: str) -> dict[str, str] | None:
    """A country code as a ``loc:`` concept; placeholders (any, storage-region) are not."""
    return {"@id": LOC + code} if re.fullmatch(r"[A-Z]{2}", code) else None


def _law(j: dict[str, Any]) -> str:
    return _LAW_BY_JURISDICTION.get(j["code"], _iri(j["law_iri"]))


def duration(retention: dict[str, Any]) -> dict[str, Any]:
    """A retention period as a DPV duration node (rule 3)."""
    trigger = retention["trigger"]
    if duration_seconds(retention["duration"]) == 0:
        return {"@type": "dpv:UntilEventDuration", "rdfs:label": f"until {trigger}"}
    return {
        "@type": "dpv:TemporalDuration",
        "rdf:value": {"@value": retention["duration"], "@type": "xsd:duration"},
        "rdfs:label": f"{retention['duration']} after {trigger}",
    }


def _gdpr_rights(cites: str) -> list[str]:
    """GDPR articles named in a right's citation, e.g. "GDPR Art. 15 and 20; DPDP s. 11"."""
    found = []
    for part in cites.split(";"):
        part = part.strip()
        if not part.startswith("GDPR"):
            continue
        for num, para in re.findall(r"(\d+)(?:\((\d+)\))?", part):
            term = f"A{num}-{para}" if para else f"A{num}"
            if term in _GDPR_RIGHTS:
                found.append(GDPR + term)
    return found


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def jsonld(doc: dict[str, Any]) -> dict[str, Any]:
    """The notice as a DPV JSON-LD graph with an inline context (no remote fetch needed)."""
    purposes = {p["id"]: p for p in doc["purposes"]}
    regions = {r["id"]: r for r in doc["regions"]}
    subjects = {s["id"]: s["iri"] for s in doc.get("subjects", [])}
    graph: list[dict[str, Any]] = [
        {
            "@id": "urn:baat:controller",
            "@type": "dpv:DataController",
            "dpv:hasName": doc["controller"]["name"],
            "dpv:hasAddress": doc["controller"]["address"],
            "dpv:hasContact": doc["controller"]["email"],
        }
    ]
    for r in doc["regions"]:
        graph.append(
            {
                "@id": f"urn:baat:region:{r['id']}",
                "@type": "dpv:StorageLocation",
                "rdfs:label": r["location"],
                "dpv:hasCountry": _country(r["country"]),
            }
        )
    for j in doc["jurisdictions"]:
        graph.append(
            {
                "@id": f"urn:baat:jurisdiction:{j['code']}",
                "@type": "dpv:Jurisdiction",
                "rdfs:label": j["name"],
                "dpv:hasApplicableLaw": _ref(_law(j)),
                "rdfs:comment": f"{j['law']}; complaints: {j['authority']}",
                "baat:storageRegion": {"@id": f"urn:baat:region:{j['storage_region']}"},
            }
        )
    graph += _recipients(doc, regions)
    for p in doc["purposes"]:
        graph.append(
            {
                "@id": f"urn:baat:purpose:{p['id']}",
                "@type": ["dpv:Purpose", _iri(p["dpv"])],
                "rdfs:label": p["title"],
                "rdfs:comment": p["description"],
                "dpv:hasLegalBasis": [
                    {"@id": _iri(b["iri"]), "rdfs:label": f"{b['law']} {b['cite']}"}
                    for b in p["legal_basis"].values()
                    if b
                ],
                "baat:optional": p["optional"],
                "baat:consentSince": p["consent_since"],
                "baat:fidesDataUse": p["fides"],
            }
        )
    for e in doc["data"]:
        for pid in e["purposes"]:
            graph.append(_process(e, purposes[pid], subjects, regions))
    rights = [_right(r) for r in doc["rights"]]
    measures = [_measure(i, text) for i, text in enumerate(doc["security"])]
    graph += rights + measures
    laws = sorted({_law(j) for j in doc["jurisdictions"]})
    notice = {
        "@id": f"urn:baat:policy:v{doc['version']}",
        "@type": "dpv:PrivacyNotice",
        "dct:identifier": doc["notice_id"],
        "dct:hasVersion": str(doc["version"]),
        "dct:valid": doc["effective"],
        "baat:sha256": doc["sha256"],
        "dpv:hasDataController": {"@id": "urn:baat:controller"},
        "dpv:hasApplicableLaw": [_ref(law) for law in laws],
        "dpv:hasRight": [{"@id": r["@id"]} for r in rights],
        "dpv:hasTechnicalOrganisationalMeasure": [{"@id": m["@id"]} for m in measures],
    }
    # One default graph: a top-level node carrying both properties and "@graph" would make
    # the nodes a named graph (JSON-LD 1.1, section 4.9), invisible to most consumers.
    return {"@context": CONTEXT, "@graph": [notice, *graph]}


def _recipients(doc: dict[str, Any], regions: dict[str, Any]) -> list[dict[str, Any]]:
    """Recipient nodes, and one transfer node per storage region whose data may reach a
    recipient in another country (GDPR chapter V, DPDP s. 16)."""
    out: list[dict[str, Any]] = []
    for r in doc["recipients"]:
        node: dict[str, Any] = {
            "@id": f"urn:baat:recipient:{r['id']}",
            "@type": _iri(r["dpv_role"]),
            "dpv:hasName": r["name"],
        }
        country = _country(r["country"])
        if country:
            node["dpv:hasCountry"] = country
        else:
            node["rdfs:comment"] = f"located: {r['country']}"
        bases = [_ref(b["iri"]) for b in r["transfer_basis"].values() if b]
        if bases:
            node["dpv:hasLegalBasis"] = bases
        out.append(node)
        if not bases:
            continue
        for reg in regions.values():
            if r["country"] == reg["country"]:
                continue
            transfer: dict[str, Any] = {
                "@id": f"urn:baat:transfer:{reg['id']}:{r['id']}",
                "@type": "dpv:Process",
                "dpv:hasProcessing": {"@id": DPV + "CrossBorderTransfer"},
                "dpv:hasLocation": {"@id": f"urn:baat:region:{reg['id']}"},
                "dpv:hasRecipient": {"@id": node["@id"]},
                "dpv:hasLegalBasis": bases,
            }
            if country:
                transfer["dpv:hasThirdCountry"] = country
            else:
                transfer["rdfs:comment"] = f"to: {r['country']}"
            out.append(transfer)
    return out


def _location(storage: str, regions: dict[str, Any]) -> list[dict[str, Any]]:
    """Where a field is kept: the storage regions' nodes for server data, else a
    ``dpv:StorageLocation`` named by the inventory (the device, memory)."""
    if storage in ("server-region", "account-region"):
        return [{"@id": f"urn:baat:region:{rid}"} for rid in regions]
    return [{"@type": "dpv:StorageLocation", "rdfs:label": storage}]


def _process(
    e: dict[str, Any], p: dict[str, Any], subjects: dict[str, str], regions: dict[str, Any]
) -> dict[str, Any]:
    return {
        "@id": f"urn:baat:process:{e['id']}:{p['id']}",
        "@type": "dpv:Process",
        "rdfs:label": f"{e['title']} for {p['title']}",
        "dpv:hasPersonalData": _ref(e["category"]["dpv"]),
        "baat:inventoryId": e["id"],
        "baat:fidesCategory": e["category"]["fides"],
        "dpv:hasPurpose": {"@id": f"urn:baat:purpose:{p['id']}"},
        "dpv:hasLegalBasis": [_ref(b["iri"]) for b in p["legal_basis"].values() if b],
        "dpv:hasDataController": {"@id": "urn:baat:controller"},
        "dpv:hasRecipient": [
            {"@id": f"urn:baat:recipient:{r}"}
            for r in e["recipients"]
            if r in p["recipients"] or r == "baat"
        ],
        "dpv:hasDataSubject": [_ref(subjects.get(s, DPV + "DataSubject")) for s in e["subjects"]],
        "dpv:hasStorageCondition": [
            {"@type": "dpv:StorageDuration", "dpv:hasDuration": duration(e["retention"])},
            {"@type": "dpv:StorageDeletion", "rdfs:label": e["retention"]["deletion"]},
            *_location(e["storage"], regions),
        ],
        "baat:serverVisible": e["server_visible"],
        "baat:inExport": e["in_export"],
        "baat:legalProcess": e["legal_process"],
    }


def _right(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "@id": f"urn:baat:right:{_slug(r['right'])}",
        "@type": ["dpv:DataSubjectRight", *_gdpr_rights(r["cites"])],
        "rdfs:label": r["right"],
        "rdfs:comment": f"{r['cites']}. {r['how']}",
    }


def _measure(index: int, text: str) -> dict[str, Any]:
    lowered = text.lower()
    kinds = [iri for needle, iri in _MEASURES if needle in lowered]
    return {
        "@id": f"urn:baat:measure:{index + 1}",
        "@type": ["dpv:TechnicalMeasure", *kinds],
        "rdfs:label": text,
    }
