"""Render a policy document as Markdown, HTML, JSON or JSON-LD.

Rendering works on the document (a published ``policies/vN.json`` or the code's current
one), never on the Python records, so every published version can be shown as it was.

A jurisdiction changes the wording only: which law's legal basis is quoted and which
authority hears complaints (GDPR Art. 13(1)(c), DPDP Rule 3). Every section, purpose and
right is present whatever the jurisdiction.
"""

from __future__ import annotations

import html
import json
from typing import Any

from baat.privacy import ropa
from baat.privacy.jsonld import jsonld
from baat.privacy.policy import dump_document

FORMATS = ("md", "html", "json", "jsonld", "ropa", "ropa-csv")
__all__ = ["FORMATS", "jsonld", "render"]

Block = tuple[str, Any]  # ("p", str) | ("ul", list[str]) | ("h3", str)


def render(doc: dict[str, Any], fmt: str, jurisdiction: str | None = None) -> str:
    """The notice in ``fmt`` (md, html, json, jsonld), worded for ``jurisdiction``, or the
    record of processing (ropa as Markdown, ropa-csv), which is the same for every jurisdiction.

    Raises:
        ValueError: unknown format or jurisdiction.
    """
    if jurisdiction is not None and not any(
        j["code"] == jurisdiction for j in doc["jurisdictions"]
    ):
        raise ValueError(f"unknown jurisdiction {jurisdiction!r}")
    if fmt == "json":
        return dump_document(doc)
    if fmt == "jsonld":
        return json.dumps(jsonld(doc), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if fmt == "ropa":
        return ropa.markdown(doc)
    if fmt == "ropa-csv":
        return ropa.csv_text(doc)
    sections = _sections(doc, jurisdiction)
    if fmt == "md":
        return _markdown(doc, sections)
    if fmt == "html":
        return _html(doc, sections)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _basis_text(basis: dict[str, Any] | None) -> str:
    if basis is None:
        return "no transfer: stays in the storage region"
    return f"{basis['law']} {basis['cite']}: {basis['label']}"


def _sections(doc: dict[str, Any], code: str | None) -> list[tuple[str, list[Block]]]:
    juris = {j["code"]: j for j in doc["jurisdictions"]}
    cites = juris[code]["cites"] if code else None
    purposes = {p["id"]: p for p in doc["purposes"]}
    recipients = {r["id"]: r for r in doc["recipients"]}
    regions = {r["id"]: r for r in doc["regions"]}
    c = doc["controller"]

    def bases(p: dict[str, Any]) -> str:
        lb = p["legal_basis"]
        chosen = [lb[cites]] if cites else [lb["gdpr"], lb["dpdp"]]
        return "; ".join(_basis_text(b) for b in chosen)

    out: list[tuple[str, list[Block]]] = []
    intro: list[Block] = [
        ("p", f"Controller: {c['name']}, {c['address']}. Contact: {c['email']}."),
        ("p", doc["same_rules_everywhere"]),
    ]
    if code:
        j = juris[code]
        intro.append(
            (
                "p",
                f"For accounts in {j['name']} this notice cites: {j['law']}. "
                f"Your data is stored in {regions[j['storage_region']]['location']}.",
            )
        )
    out.append(("Who we are", intro))

    blocks: list[Block] = []
    for p in doc["purposes"]:
        kind = "optional, off until you turn it on" if p["optional"] else "essential, no consent"
        blocks.append(("h3", f"{p['title']} ({p['id']}, {kind})"))
        names = ", ".join(recipients[r]["name"] for r in p["recipients"])
        blocks.append(
            (
                "ul",
                [
                    p["description"],
                    f"Legal basis: {bases(p)}",
                    f"Recipients: {names}",
                    f"Vocabulary: {p['dpv']}, fideslang {p['fides']}",
                ],
            )
        )
    out.append(("Why we process data", blocks))

    blocks = []
    for side, label in (("server", "On the server"), ("client", "Only on your devices")):
        blocks.append(("h3", label))
        for e in (e for e in doc["data"] if e["side"] == side):
            r = e["retention"]
            names = ", ".join(recipients[x]["name"] for x in e["recipients"]) or "nobody"
            where = ", ".join(e["columns"]) or e["storage"]
            blocks.append(
                (
                    "ul",
                    [
                        f"**{e['title']}** (`{e['id']}`): {e['description']}",
                        f"Where: {where}; server can read it: {_yes(e['server_visible'])}",
                        f"Category: {e['category']['fides']} ({e['category']['dpv']}); "
                        f"about: {', '.join(e['subjects']) or 'no one'}; source: {e['source']}; "
                        f"{'required' if e['required'] else 'optional'}",
                        f"Purposes: {', '.join(purposes[x]['title'] for x in e['purposes'])}",
                        f"Kept: {r['duration']} after {r['trigger']}; {r['deletion']}",
                        f"Recipients: {names}",
                        f"In your export: {'yes' if e['in_export'] else 'no'}; "
                        f"producible under legal process: {'yes' if e['legal_process'] else 'no'}",
                    ],
                )
            )
    out.append(("What we hold", blocks))

    items = []
    for r in doc["recipients"]:
        tb = r["transfer_basis"]
        chosen = [tb[cites]] if cites else [tb["gdpr"], tb["dpdp"]]
        items.append(
            f"{r['name']} ({r['role']}; country: {r['country']}); transfer: "
            + "; ".join(_basis_text(b) for b in chosen)
        )
    out.append(("Recipients and transfers", [("ul", items)]))
    businesses = _business_section(doc)
    if businesses:  # notices before version 9 have no such section
        out.append(("Businesses you chat with", businesses))
    out.append(
        (
            "Where data is stored",
            [("ul", [f"{r['id']}: {r['location']} ({r['country']})" for r in doc["regions"]])],
        )
    )
    consent = doc["consent"]
    out.append(
        (
            "Your choices",
            [
                ("p", f"Default: {consent['default']}. {consent['refusing']}"),
                ("p", "How to withdraw:"),
                ("ul", consent["withdraw"]),
                ("p", consent["effect"]),
                ("p", consent["receipts"]),
                ("p", consent["reconsent"]),
            ],
        )
    )
    out.append(
        (
            "Your rights",
            [
                ("ul", [f"{x['right']} ({x['cites']}): {x['how']}" for x in doc["rights"]]),
                ("p", doc["response_time"]),
            ],
        )
    )
    out.append(
        (
            "Profiling, children, other apps",
            [
                ("p", doc["profiling"]["statement"]),
                ("p", doc["children"]),
                ("p", doc["other_apps"]),
            ],
        )
    )
    out.append(("Security", [("ul", doc["security"])]))
    out.append(("Legal process", [("p", doc["legal_process"]["statement"])]))
    complaint = [
        f"Grievance officer: {c['grievance_officer']}",
        f"EU representative (GDPR Art. 27): {c['eu_representative']}",
    ]
    if code:
        complaint.append(f"Authority: {juris[code]['authority']}")
    else:
        complaint += [f"Authority for {j['name']}: {j['authority']}" for j in doc["jurisdictions"]]
    out.append(("Contact and complaints", [("ul", complaint)]))
    out.append(("Changes to this notice", [("p", doc["changes"])]))
    return out


def _business_section(doc: dict[str, Any]) -> list[Block]:
    """From the inventory entries the document lists for business chats."""
    b = doc.get("businesses")
    if not b:
        return []
    entries = {e["id"]: e for e in doc["data"]}
    held = []
    for field in b["data"]:
        e = entries[field]
        where = "on the server" if e["side"] == "server" else "only on your devices"
        held.append(f"**{e['title']}** (`{e['id']}`, {where}): {e['description']}")
    return [("p", b["statement"]), ("p", b["consent"]), ("ul", held)]


def _markdown(doc: dict[str, Any], sections: list[tuple[str, list[Block]]]) -> str:
    lines = [
        f"# Baat privacy notice, version {doc['version']}",
        "",
        f"Effective {doc['effective']}. SHA-256 `{doc['sha256']}`.",
    ]
    for title, blocks in sections:
        lines += ["", f"## {title}"]
        for kind, value in blocks:
            lines.append("")
            if kind == "h3":
                lines.append(f"### {value}")
            elif kind == "p":
                lines.append(value)
            else:
                lines += [f"- {item}" for item in value]
    return "\n".join(lines) + "\n"


def _inline(text: str) -> str:
    # The Markdown subset the sections use: **bold** and `code`.
    out, bold, code = [], False, False
    i = 0
    while i < len(text):
        if text.startswith("**", i):
            out.append("</strong>" if bold else "<strong>")
            bold, i = not bold, i + 2
        elif text[i] == "`":
            out.append("</code>" if code else "<code>")
            code, i = not code, i + 1
        else:
            out.append(html.escape(text[i]))
            i += 1
    return "".join(out)


def _html(doc: dict[str, Any], sections: list[tuple[str, list[Block]]]) -> str:
    title = f"Baat privacy notice, version {doc['version']}"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Effective {html.escape(doc['effective'])}. SHA-256 <code>{doc['sha256']}</code>.</p>",
    ]
    for heading, blocks in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        for kind, value in blocks:
            if kind == "h3":
                parts.append(f"<h3>{_inline(value)}</h3>")
            elif kind == "p":
                parts.append(f"<p>{_inline(value)}</p>")
            else:
                parts.append("<ul>" + "".join(f"<li>{_inline(v)}</li>" for v in value) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
