"""The record of processing activities (GDPR Art. 30(1)), generated from a policy document.

One processing activity per purpose, each with what Art. 30(1) lists:

(a) the controller, its EU representative and grievance officer, with contacts;
(b) the purpose, with its legal basis under each law the notice cites;
(c) the categories of data subjects and of personal data (the inventory's fields);
(d) the recipients, with their country;
(e) transfers to third countries: from which storage region to which country, and the
    safeguard (GDPR Art. 46 or 49, DPDP s. 16);
(f) the time limit for erasure of each field, worded as the period after its trigger, or
    "until" the event when nothing is kept beyond it;
(g) the technical and organisational security measures.

Markdown for people (``baat policy show --format ropa``) and CSV with one row per purpose
and field for spreadsheets and audits (``--format ropa-csv``). Both are computed from the
document, so every published version has its record as it was.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from baat.privacy.inventory import duration_seconds

CSV_COLUMNS = (
    "activity",
    "purpose",
    "optional",
    "legal_basis_gdpr",
    "legal_basis_dpdp",
    "data_subjects",
    "field",
    "field_title",
    "category",
    "recipients",
    "third_country_transfers",
    "erasure",
    "storage",
    "controller",
    "controller_contact",
)


def erasure(retention: dict[str, Any]) -> str:
    """The erasure time limit in words: "P30D after X" or "until X" (never "P0D after X")."""
    if duration_seconds(retention["duration"]) == 0:
        return f"until {retention['trigger']}"
    return f"{retention['duration']} after {retention['trigger']}"


# The recipients' placeholder countries (``purposes.py``) in words.
_PLACES = {
    "storage-region": "the account's storage region",
    "any": "any country",
    "other-region": "another Baat storage region",
}


def _where(country: str) -> str:
    return _PLACES.get(country, country)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _basis(b: dict[str, Any] | None) -> str:
    return "none" if b is None else f"{b['law']} {b['cite']} ({b['label']})"


class _Record:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.recipients = {r["id"]: r for r in doc["recipients"]}
        self.subjects = {s["id"]: s["label"] for s in doc.get("subjects", [])}

    def entries(self, purpose_id: str) -> list[dict[str, Any]]:
        return [e for e in self.doc["data"] if purpose_id in e["purposes"]]

    def data_subjects(self, purpose_id: str) -> list[str]:
        ids = sorted({s for e in self.entries(purpose_id) for s in e["subjects"]})
        return [self.subjects.get(s, s) for s in ids]

    def recipient_names(self, p: dict[str, Any]) -> list[str]:
        return [
            f"{self.recipients[r]['name']} ({_where(self.recipients[r]['country'])})"
            for r in p["recipients"]
            if r in self.recipients
        ]

    def transfers(self, p: dict[str, Any]) -> list[str]:
        """Where this purpose's data may go from a storage region to another country."""
        out = []
        for rid in p["recipients"]:
            r = self.recipients.get(rid)
            if r is None or not any(r["transfer_basis"].values()):
                continue
            bases = "; ".join(_basis(b) for b in r["transfer_basis"].values() if b)
            if len(r["country"]) == 2:
                sources = [g["id"] for g in self.doc["regions"] if g["country"] != r["country"]]
                if sources:
                    out.append(f"{r['name']}: from {', '.join(sources)} to {r['country']}; {bases}")
            elif r["country"] == "other-region":
                ids = ", ".join(g["id"] for g in self.doc["regions"])
                out.append(f"{r['name']}: between the storage regions ({ids}); {bases}")
            else:
                out.append(f"{r['name']}: to {_where(r['country'])}; {bases}")
        return out


def markdown(doc: dict[str, Any]) -> str:
    """The record as Markdown."""
    rec = _Record(doc)
    c = doc["controller"]
    lines = [
        "# Record of processing activities (GDPR Art. 30(1))",
        "",
        f"Generated from privacy policy v{doc['version']} (effective {doc['effective']}, "
        f"sha256 `{doc['sha256']}`).",
        "",
        "## Controller",
        "",
        f"- Controller: {c['name']}, {c['address']}; {c['email']}; {c['website']}",
        f"- Representative in the EU (Art. 27): {c['eu_representative']}",
        f"- Grievance officer: {c['grievance_officer']}",
        "- Storage regions: "
        + "; ".join(f"{r['id']}: {r['location']} ({r['country']})" for r in doc["regions"]),
        "",
    ]
    for p in doc["purposes"]:
        kind = "optional, by consent" if p["optional"] else "essential"
        lines += [
            f"## {p['title']} (`{p['id']}`, {kind})",
            "",
            f"- Purpose: {p['description']}",
            f"- Legal basis: GDPR: {_basis(p['legal_basis'].get('gdpr'))}; "
            f"DPDP: {_basis(p['legal_basis'].get('dpdp'))}",
            f"- Data subjects: {', '.join(rec.data_subjects(p['id'])) or 'none'}",
            f"- Recipients: {', '.join(rec.recipient_names(p)) or 'none'}",
            "- Transfers to third countries: "
            + ("; ".join(rec.transfers(p)) or "none: data stays in its storage region"),
            "",
            "| Field | Category | Kept (erasure time limit) | Where |",
            "| --- | --- | --- | --- |",
        ]
        for e in rec.entries(p["id"]):
            kept = f"{erasure(e['retention'])}; {e['retention']['deletion']}"
            cells = (f"{e['title']} (`{e['id']}`)", e["category"]["fides"], kept, e["storage"])
            lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
        lines.append("")
    lines += ["## Security measures (Art. 32)", ""]
    lines += [f"- {m}" for m in doc["security"]]
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def csv_text(doc: dict[str, Any]) -> str:
    """The record as CSV (RFC 4180), one row per purpose and field."""
    rec = _Record(doc)
    c = doc["controller"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for p in doc["purposes"]:
        for e in rec.entries(p["id"]):
            writer.writerow(
                {
                    "activity": p["title"],
                    "purpose": p["id"],
                    "optional": "yes" if p["optional"] else "no",
                    "legal_basis_gdpr": _basis(p["legal_basis"].get("gdpr")),
                    "legal_basis_dpdp": _basis(p["legal_basis"].get("dpdp")),
                    "data_subjects": "; ".join(rec.subjects.get(s, s) for s in e["subjects"]),
                    "field": e["id"],
                    "field_title": e["title"],
                    "category": e["category"]["fides"],
                    "recipients": "; ".join(rec.recipient_names(p)),
                    "third_country_transfers": " | ".join(rec.transfers(p)),
                    "erasure": f"{erasure(e['retention'])}; {e['retention']['deletion']}",
                    "storage": e["storage"],
                    "controller": c["name"],
                    "controller_contact": c["email"],
                }
            )
    return out.getvalue()
