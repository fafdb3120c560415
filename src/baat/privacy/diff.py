"""Compare two policy documents and classify every change.

An *expansion* is any change that lets Baat do more with personal data than the old version
allowed: a new field, category, purpose, recipient, country or legal basis, a longer or
differently triggered retention, a field newly visible to the server or newly producible
under legal process, less in the access export, an optional purpose becoming essential.
A *reduction* is the reverse. Everything else (wording, column layout) is *neutral*.

Where an expansion touches an optional purpose, the change names it: consents granted
before the expansion stop counting for that purpose (the new version must set the purpose's
``consent_since`` to itself; ``reconsent_problems`` checks it), as GDPR Art. 7 and DPDP
s. 6(1) tie consent to the specific purpose the person was told about.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from baat.privacy.inventory import duration_seconds

EXPANSION = "expansion"
REDUCTION = "reduction"
NEUTRAL = "neutral"


@dataclass(frozen=True, slots=True)
class Change:
    kind: str
    path: str
    what: str
    old: Any = None
    new: Any = None
    purposes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyDiff:
    old_version: int
    new_version: int
    changes: tuple[Change, ...] = field(default_factory=tuple)

    @property
    def expansions(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.kind == EXPANSION)

    @property
    def reductions(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.kind == REDUCTION)

    @property
    def expands(self) -> bool:
        return bool(self.expansions)

    def expanded_purposes(self) -> set[str]:
        return {p for c in self.expansions for p in c.purposes}

    def to_json(self) -> dict[str, Any]:
        return {
            "old_version": self.old_version,
            "new_version": self.new_version,
            "expands": self.expands,
            "expanded_purposes": sorted(self.expanded_purposes()),
            "changes": [{**asdict(c), "purposes": list(c.purposes)} for c in self.changes],
        }

    def to_text(self) -> str:
        head = f"policy v{self.old_version} -> v{self.new_version}: "
        if not self.changes:
            return head + "no changes\n"
        lines = [
            head + f"{len(self.expansions)} expansion(s), {len(self.reductions)} reduction(s), "
            f"{len(self.changes) - len(self.expansions) - len(self.reductions)} neutral"
        ]
        for c in self.changes:
            extra = f" [re-consent: {', '.join(c.purposes)}]" if c.purposes else ""
            lines.append(f"  {c.kind:<9} {c.path}: {c.what}{extra}")
        return "\n".join(lines) + "\n"


def _by_id(items: list[dict[str, Any]], key: str = "id") -> dict[str, dict[str, Any]]:
    return {str(x[key]): x for x in items}


class _Differ:
    def __init__(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.old, self.new = old, new
        self.out: list[Change] = []
        self.new_purposes = _by_id(new["purposes"])
        self.optional = {k for k, p in self.new_purposes.items() if p["optional"]}

    def add(
        self,
        kind: str,
        path: str,
        what: str,
        old: Any = None,
        new: Any = None,
        purposes: set[str] | tuple[str, ...] = (),
    ) -> None:
        affected = tuple(sorted(set(purposes) & self.optional)) if kind == EXPANSION else ()
        self.out.append(Change(kind, path, what, old, new, affected))

    def sets(
        self,
        path: str,
        old: list[Any],
        new: list[Any],
        noun: str,
        purposes: set[str] | tuple[str, ...] = (),
        added_kind: str = EXPANSION,
    ) -> None:
        removed_kind = REDUCTION if added_kind == EXPANSION else EXPANSION
        for x in sorted(set(new) - set(old), key=str):
            self.add(added_kind, path, f"new {noun} {x}", None, x, purposes)
        for x in sorted(set(old) - set(new), key=str):
            self.add(removed_kind, path, f"{noun} {x} removed", x, None, purposes)

    def run(self) -> list[Change]:
        self.controller()
        self.purposes()
        self.recipients()
        self.places()
        self.data()
        old_sec, new_sec = self.old.get("security", []), self.new.get("security", [])
        for x in sorted(set(old_sec) - set(new_sec)):
            self.add(EXPANSION, "security", "security measure removed", x, None)
        for x in sorted(set(new_sec) - set(old_sec)):
            self.add(REDUCTION, "security", "security measure added", None, x)
        for key in ("consent", "rights", "profiling", "children", "other_apps", "legal_process"):
            if self.old.get(key) != self.new.get(key):
                self.add(NEUTRAL, key, "wording changed", self.old.get(key), self.new.get(key))
        return self.out

    def controller(self) -> None:
        o, n = self.old["controller"], self.new["controller"]
        if o["name"] != n["name"]:
            self.add(
                EXPANSION,
                "controller.name",
                "controller changed",
                o["name"],
                n["name"],
                self.optional,
            )
        for k in sorted(set(o) | set(n)):
            if k != "name" and o.get(k) != n.get(k):
                self.add(NEUTRAL, f"controller.{k}", "contact changed", o.get(k), n.get(k))

    def purposes(self) -> None:
        old, new = _by_id(self.old["purposes"]), self.new_purposes
        for pid in sorted(set(new) - set(old)):
            self.add(EXPANSION, f"purposes[{pid}]", "new purpose", None, pid, {pid})
        for pid in sorted(set(old) - set(new)):
            self.add(REDUCTION, f"purposes[{pid}]", "purpose removed", pid, None)
        for pid in sorted(set(old) & set(new)):
            o, n, path = old[pid], new[pid], f"purposes[{pid}]"
            if o["optional"] and not n["optional"]:
                self.add(EXPANSION, path, "optional purpose became essential", True, False)
            elif n["optional"] and not o["optional"]:
                self.add(REDUCTION, path, "essential purpose became optional", False, True)
            for law in ("gdpr", "dpdp"):
                if o["legal_basis"][law] != n["legal_basis"][law]:
                    self.add(
                        EXPANSION,
                        f"{path}.legal_basis.{law}",
                        "legal basis changed",
                        o["legal_basis"][law],
                        n["legal_basis"][law],
                        {pid},
                    )
            for key in ("dpv", "fides"):
                if o[key] != n[key]:
                    self.add(EXPANSION, f"{path}.{key}", "purpose redefined", o[key], n[key], {pid})
            for key in ("profiling", "automated_decisions"):
                if n[key] and not o[key]:
                    self.add(EXPANSION, f"{path}.{key}", f"{key} introduced", False, True, {pid})
                elif o[key] and not n[key]:
                    self.add(REDUCTION, f"{path}.{key}", f"{key} dropped", True, False)
            self.sets(f"{path}.recipients", o["recipients"], n["recipients"], "recipient", {pid})
            for key in ("title", "description", "consent_since"):
                if o[key] != n[key]:
                    self.add(NEUTRAL, f"{path}.{key}", "changed", o[key], n[key])

    def _recipient_purposes(self, rid: str) -> set[str]:
        return {pid for pid, p in self.new_purposes.items() if rid in p["recipients"]}

    def recipients(self) -> None:
        old, new = _by_id(self.old["recipients"]), _by_id(self.new["recipients"])
        for rid in sorted(set(new) - set(old)):
            self.add(
                EXPANSION,
                f"recipients[{rid}]",
                "new recipient",
                None,
                rid,
                self._recipient_purposes(rid),
            )
        for rid in sorted(set(old) - set(new)):
            self.add(REDUCTION, f"recipients[{rid}]", "recipient removed", rid, None)
        for rid in sorted(set(old) & set(new)):
            o, n, path = old[rid], new[rid], f"recipients[{rid}]"
            affected = self._recipient_purposes(rid)
            if o["country"] != n["country"]:
                self.add(
                    EXPANSION,
                    f"{path}.country",
                    "recipient country changed",
                    o["country"],
                    n["country"],
                    affected,
                )
            for law in ("gdpr", "dpdp"):
                if o["transfer_basis"][law] != n["transfer_basis"][law]:
                    self.add(
                        EXPANSION,
                        f"{path}.transfer_basis.{law}",
                        "transfer basis changed",
                        o["transfer_basis"][law],
                        n["transfer_basis"][law],
                        affected,
                    )
            if o["role"] != n["role"] or o["dpv_role"] != n["dpv_role"]:
                self.add(
                    EXPANSION,
                    f"{path}.role",
                    "recipient role changed",
                    o["role"],
                    n["role"],
                    affected,
                )
            if o["name"] != n["name"]:
                self.add(NEUTRAL, f"{path}.name", "renamed", o["name"], n["name"])

    def places(self) -> None:
        old, new = _by_id(self.old["regions"]), _by_id(self.new["regions"])
        for rid in sorted(set(new) - set(old)):
            self.add(EXPANSION, f"regions[{rid}]", "new storage region", None, new[rid]["country"])
        for rid in sorted(set(old) - set(new)):
            self.add(
                REDUCTION, f"regions[{rid}]", "storage region removed", old[rid]["country"], None
            )
        for rid in sorted(set(old) & set(new)):
            if old[rid] != new[rid]:
                self.add(EXPANSION, f"regions[{rid}]", "storage region moved", old[rid], new[rid])
        oj, nj = (
            _by_id(self.old["jurisdictions"], "code"),
            _by_id(self.new["jurisdictions"], "code"),
        )
        for code in sorted(set(oj) | set(nj)):
            o, n = oj.get(code), nj.get(code)
            if o and n and o["storage_region"] != n["storage_region"]:
                self.add(
                    EXPANSION,
                    f"jurisdictions[{code}].storage_region",
                    "data moves region",
                    o["storage_region"],
                    n["storage_region"],
                )
            elif o != n:
                self.add(NEUTRAL, f"jurisdictions[{code}]", "changed", o, n)

    def data(self) -> None:
        old, new = _by_id(self.old["data"]), _by_id(self.new["data"])
        for eid in sorted(set(new) - set(old)):
            self.add(EXPANSION, f"data[{eid}]", "new field", None, eid, set(new[eid]["purposes"]))
        for eid in sorted(set(old) - set(new)):
            self.add(REDUCTION, f"data[{eid}]", "field removed", eid, None)
        for eid in sorted(set(old) & set(new)):
            self.entry(eid, old[eid], new[eid])

    def entry(self, eid: str, o: dict[str, Any], n: dict[str, Any]) -> None:
        path, uses = f"data[{eid}]", set(n["purposes"])
        if o["category"] != n["category"]:
            self.add(
                EXPANSION,
                f"{path}.category",
                "category changed",
                o["category"],
                n["category"],
                uses,
            )
        self.sets(
            f"{path}.purposes",
            o["purposes"],
            n["purposes"],
            "purpose",
            set(n["purposes"]) - set(o["purposes"]),
        )
        for rid in sorted(set(n["recipients"]) - set(o["recipients"])):
            via = uses & self._recipient_purposes(rid) or uses
            self.add(EXPANSION, f"{path}.recipients", f"new recipient {rid}", None, rid, via)
        for rid in sorted(set(o["recipients"]) - set(n["recipients"])):
            self.add(REDUCTION, f"{path}.recipients", f"recipient {rid} removed", rid, None)
        self.sets(f"{path}.subjects", o["subjects"], n["subjects"], "data subject", uses)
        ro, rn = o["retention"], n["retention"]
        lo, ln = duration_seconds(ro["duration"]), duration_seconds(rn["duration"])
        if ln > lo:
            self.add(
                EXPANSION, f"{path}.retention", "kept longer", ro["duration"], rn["duration"], uses
            )
        elif ln < lo:
            self.add(REDUCTION, f"{path}.retention", "kept shorter", ro["duration"], rn["duration"])
        if ro["trigger"] != rn["trigger"]:
            # The clock may now start later: treat it as an expansion until reviewed.
            self.add(
                EXPANSION,
                f"{path}.retention.trigger",
                "retention starts differently",
                ro["trigger"],
                rn["trigger"],
                uses,
            )
        for key, grows, what in (
            ("server_visible", True, "visible to the server"),
            ("legal_process", True, "producible under legal process"),
            ("required", True, "required"),
            ("in_export", False, "in the access export"),
        ):
            if o[key] != n[key]:
                kind = EXPANSION if n[key] == grows else REDUCTION
                self.add(
                    kind,
                    f"{path}.{key}",
                    f"{'now' if n[key] else 'no longer'} {what}",
                    o[key],
                    n[key],
                    uses,
                )
        if o["storage"] != n["storage"]:
            self.add(
                EXPANSION, f"{path}.storage", "stored elsewhere", o["storage"], n["storage"], uses
            )
        for key in ("title", "description", "source", "columns", "since", "side"):
            if o[key] != n[key]:
                self.add(NEUTRAL, f"{path}.{key}", "changed", o[key], n[key])
        if ro["deletion"] != rn["deletion"]:
            self.add(
                NEUTRAL, f"{path}.retention.deletion", "changed", ro["deletion"], rn["deletion"]
            )


def diff(old: dict[str, Any], new: dict[str, Any]) -> PolicyDiff:
    """Every change from policy document ``old`` to ``new``, classified."""
    return PolicyDiff(int(old["version"]), int(new["version"]), tuple(_Differ(old, new).run()))


def reconsent_problems(d: PolicyDiff, new: dict[str, Any]) -> list[str]:
    """Optional purposes that expanded without ``consent_since`` moving to the new version."""
    purposes = _by_id(new["purposes"])
    return [
        f"purpose {pid!r} expands in v{d.new_version}: set consent_since={d.new_version}"
        for pid in sorted(d.expanded_purposes())
        if purposes[pid]["consent_since"] < d.new_version
    ]
