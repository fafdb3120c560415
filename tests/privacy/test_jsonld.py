"""The JSON-LD notice read by an independent JSON-LD processor (rdflib) and checked against
the DPV 2.x terms listed in ``tests/vectors/dpv_terms.txt``, for the code's notice and for
every published version."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from rdflib import RDF, RDFS, XSD, Graph, Literal, Namespace, URIRef

from baat.privacy.jsonld import jsonld
from baat.privacy.policy import Policy, load_document, published_versions
from baat.server.privacy.ledger import STATE_IRI

ROOT = Path(__file__).resolve().parents[2]
TERMS = {
    line.strip()
    for line in (ROOT / "tests/vectors/dpv_terms.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
}
DPV = Namespace("https://w3id.org/dpv#")
LOC = "https://w3id.org/dpv/loc#"
DOCS = {
    **{f"v{v}": load_document(p) for v, p in published_versions(ROOT / "policies").items()},
    "current": Policy.current().document(),
}


def _graph(doc: dict[str, Any]) -> Graph:
    with warnings.catch_warnings():
        # rdflib's JSON-LD parser uses its own deprecated ConjunctiveGraph internally.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="rdflib")
        return Graph().parse(data=json.dumps(jsonld(doc)), format="json-ld")


@pytest.fixture(params=sorted(DOCS), scope="module")
def graph(request: pytest.FixtureRequest) -> tuple[dict[str, Any], Graph]:
    doc = DOCS[request.param]
    return doc, _graph(doc)


def test_only_existing_dpv_terms(graph: tuple[dict[str, Any], Graph]) -> None:
    _, g = graph
    used = {str(t) for triple in g for t in triple if isinstance(t, URIRef)}
    dpv = {t for t in used if t.startswith("https://w3id.org/dpv")}
    assert dpv, "no DPV term in the graph"
    assert dpv <= TERMS, f"not DPV 2.x terms: {sorted(dpv - TERMS)}"
    assert not any(t.endswith("/gdpr#GDPR") for t in used)


def test_concepts_where_dpv_expects_concepts(graph: tuple[dict[str, Any], Graph]) -> None:
    doc, g = graph
    for prop in ("hasCountry", "hasThirdCountry"):
        for obj in g.objects(None, DPV[prop]):
            assert isinstance(obj, URIRef) and str(obj).startswith(LOC), (prop, obj)
    for prop in ("hasDataSubject", "hasPersonalData", "hasApplicableLaw", "hasLegalBasis"):
        objects = list(g.objects(None, DPV[prop]))
        assert objects and all(isinstance(o, URIRef) for o in objects), prop
    notice = URIRef(f"urn:baat:policy:v{doc['version']}")
    laws = {str(o) for o in g.objects(notice, DPV.hasApplicableLaw)}
    assert "https://w3id.org/dpv/legal/eu#law-GDPR" in laws
    assert "https://w3id.org/dpv/legal/in#law-DPDP" in laws


def test_durations_mean_what_they_say(graph: tuple[dict[str, Any], Graph]) -> None:
    doc, g = graph
    assert not any(isinstance(o, Literal) and str(o) in ("P0D", "PT0S") for o in g.objects())
    for e in doc["data"]:
        for pid in e["purposes"]:
            process = URIRef(f"urn:baat:process:{e['id']}:{pid}")
            durations = [
                d
                for c in g.objects(process, DPV.hasStorageCondition)
                for d in g.objects(c, DPV.hasDuration)
            ]
            assert len(durations) == 1, process
            kinds = set(g.objects(durations[0], RDF.type))
            if e["retention"]["duration"] in ("P0D", "PT0S"):
                assert kinds == {DPV.UntilEventDuration}
                label = str(g.value(durations[0], RDFS.label))
                assert e["retention"]["trigger"] in label
            else:
                assert kinds == {DPV.TemporalDuration}
                value = g.value(durations[0], RDF.value)
                assert isinstance(value, Literal) and value.datatype == XSD.duration
                assert not value.ill_typed and str(value) == e["retention"]["duration"]


def test_transfers_law_rights_and_security_have_nodes(
    graph: tuple[dict[str, Any], Graph],
) -> None:
    doc, g = graph
    transfers = [
        s
        for s in g.subjects(DPV.hasProcessing, DPV.CrossBorderTransfer)
        if (s, RDF.type, DPV.Process) in g
    ]
    abroad = [
        (r, reg)
        for r in doc["recipients"]
        if len(r["country"]) == 2 and any(r["transfer_basis"].values())
        for reg in doc["regions"]
        if reg["country"] != r["country"]
    ]
    assert len([t for t in transfers if g.value(t, DPV.hasThirdCountry)]) == len(abroad)
    for t in transfers:
        assert list(g.objects(t, DPV.hasLegalBasis)) and g.value(t, DPV.hasRecipient)
    rights = list(g.subjects(RDF.type, DPV.DataSubjectRight))
    assert len(rights) == len(doc["rights"])
    gdpr = Namespace("https://w3id.org/dpv/legal/eu/gdpr#")
    for article in ("A15", "A16", "A17", "A20", "A7-3", "A77"):
        assert list(g.subjects(RDF.type, gdpr[article])), article
    measures = list(g.subjects(RDF.type, DPV.TechnicalMeasure))
    assert len(measures) == len(doc["security"])
    assert list(g.subjects(RDF.type, DPV.EndToEndEncryption))
    jurisdictions = list(g.subjects(RDF.type, DPV.Jurisdiction))
    assert len(jurisdictions) == len(doc["jurisdictions"])
    assert all(g.value(j, DPV.hasApplicableLaw) for j in jurisdictions)


def test_receipts_and_purposes_use_listed_terms() -> None:
    assert set(STATE_IRI.values()) <= TERMS
    for p in Policy.current().purposes:
        assert p.dpv in TERMS, p.dpv


def test_an_unknown_term_is_caught() -> None:
    doc = json.loads(json.dumps(DOCS["current"]))
    doc["purposes"][0]["dpv"] = "https://w3id.org/dpv#SellEverything"
    used = {str(t) for triple in _graph(doc) for t in triple if isinstance(t, URIRef)}
    assert "https://w3id.org/dpv#SellEverything" in used - TERMS
