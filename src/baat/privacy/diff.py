"""Compare two policy documents and classify every change, strictly.

Only a change *proven* to narrow what Baat does with personal data passes: a field, purpose,
recipient, storage region or data subject removed, a shorter retention, a field no longer
visible to the server or producible under legal process, an essential purpose made optional,
a right or security measure added, ``consent_since`` moved forward. That is a *reduction*.

Everything else blocks (``policy diff`` exits 1) until a reviewed new version is published:

* an *expansion* is a change known to widen processing (a new field, column, category,
  purpose, recipient, country, legal basis or region; longer retention; a field moving from
  the client to the server; ...);
* a *change* is anything else that differs: wording of a purpose, a recipient's name, the
  controller's or grievance officer's contacts, deletion text, the legal-process statement,
  the "default off" wording, and any member this module has no rule for. Unknown means not
  proven narrower, so a new member of the document format blocks too.

The rules are written per section; ``_rest`` then compares whatever members a section's rules
did not claim, so no difference can go unreported. Only ``version``, ``effective`` and
``sha256`` are exempt: they differ between any two versions.

Where a blocking change alters what an optional purpose means (its wording, a recipient's
identity, the data it reads), the change names it: consents granted before stop counting for
that purpose (the new version must set the purpose's ``consent_since`` to itself;
``reconsent_problems`` checks it), as GDPR Art. 7 and DPDP s. 6(1) tie consent to the
specific purpose the person was told about.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from baat.privacy.inventory import duration_seconds

EXPANSION = "expansion"
CHANGED = "changed"
REDUCTION = "reduction"
BLOCKING = (EXPANSION, CHANGED)
# Members that differ between any two versions by construction.
_EXEMPT = frozenset({"version", "effective", "sha256"})


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
    def blocking(self) -> tuple[Change, ...]:
        """Every change not proven to narrow."""
        return tuple(c for c in self.changes if c.kind in BLOCKING)

    @property
    def expands(self) -> bool:
        """True unless every change is a proven reduction (then ``policy diff`` exits 0)."""
        return bool(self.blocking)

    def expanded_purposes(self) -> set[str]:
        """Optional purposes whose earlier consents stop counting."""
        return {p for c in self.blocking for p in c.purposes}

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
        changed = len(self.blocking) - len(self.expansions)
        lines = [
            head + f"{len(self.expansions)} expansion(s), {changed} change(s) not proven "
            f"narrower, {len(self.reductions)} reduction(s)"
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
        purposes: Iterable[str] = (),
    ) -> None:
        affected = tuple(sorted(set(purposes) & self.optional)) if kind in BLOCKING else ()
        self.out.append(Change(kind, path, what, old, new, affected))

    def sets(
        self,
        path: str,
        old: list[Any],
        new: list[Any],
        noun: str,
        purposes: Iterable[str] = (),
        added_kind: str = EXPANSION,
    ) -> None:
        removed_kind = REDUCTION if added_kind == EXPANSION else EXPANSION
        uses = set(purposes)
        for x in sorted(set(new) - set(old), key=str):
            self.add(added_kind, path, f"new {noun} {x}", None, x, uses)
        for x in sorted(set(old) - set(new), key=str):
            self.add(removed_kind, path, f"{noun} {x} removed", x, None, uses)

    def rest(
        self,
        path: str,
        old: dict[str, Any],
        new: dict[str, Any],
        claimed: Iterable[str],
        purposes: Iterable[str] = (),
    ) -> None:
        """Report every member outside ``claimed`` that differs, as a blocking change."""
        done = set(claimed)
        for key in sorted(set(old) | set(new)):
            if key in done or old.get(key) == new.get(key):
                continue
            o, n, sub = old.get(key), new.get(key), f"{path}.{key}" if path else key
            if isinstance(o, dict) and isinstance(n, dict):
                self.rest(sub, o, n, (), purposes)
            else:
                what = "added" if key not in old else "removed" if key not in new else "changed"
                self.add(CHANGED, sub, what, o, n, purposes)

    def run(self) -> list[Change]:
        self.controller()
        self.purposes()
        self.recipients()
        self.places()
        self.data()
        self.subjects()
        self.security()
        self.rights()
        self.legal_process()
        claimed = {
            *_EXEMPT,
            *("controller", "purposes", "recipients", "regions", "jurisdictions", "data"),
            *("subjects", "security", "rights", "legal_process"),
        }
        self.rest("", self.old, self.new, claimed)
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
        # Contacts (address, e-mail, grievance officer, EU representative) are how a person
        # exercises rights: a change is never proven to narrow anything.
        self.rest("controller", o, n, {"name"})

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
            for law in sorted(set(o["legal_basis"]) | set(n["legal_basis"])):
                ob, nb = o["legal_basis"].get(law), n["legal_basis"].get(law)
                if ob != nb:
                    self.add(
                        EXPANSION,
                        f"{path}.legal_basis.{law}",
                        "legal basis changed",
                        ob,
                        nb,
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
            if n["consent_since"] > o["consent_since"]:
                # Earlier consents stop counting: fewer people are processed.
                self.add(
                    REDUCTION,
                    f"{path}.consent_since",
                    "earlier consents stop counting",
                    o["consent_since"],
                    n["consent_since"],
                )
            elif n["consent_since"] < o["consent_since"]:
                self.add(
                    EXPANSION,
                    f"{path}.consent_since",
                    "consents given before a change count again",
                    o["consent_since"],
                    n["consent_since"],
                    {pid},
                )
            # Title and description are what the person agreed to: new words, new meaning.
            claimed = {"id", "optional", "legal_basis", "dpv", "fides", "profiling"}
            claimed |= {"automated_decisions", "recipients", "consent_since"}
            self.rest(path, o, n, claimed, {pid})

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
            for law in sorted(set(o["transfer_basis"]) | set(n["transfer_basis"])):
                ob, nb = o["transfer_basis"].get(law), n["transfer_basis"].get(law)
                if ob != nb:
                    self.add(
                        EXPANSION,
                        f"{path}.transfer_basis.{law}",
                        "transfer basis changed",
                        ob,
                        nb,
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
                # A new name may be a new company: who receives the data is what was agreed.
                self.add(
                    CHANGED, f"{path}.name", "recipient renamed", o["name"], n["name"], affected
                )
            claimed = ("id", "country", "transfer_basis", "role", "dpv_role", "name")
            self.rest(path, o, n, claimed, affected)

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
            o, n, path = oj.get(code), nj.get(code), f"jurisdictions[{code}]"
            if o is None or n is None:
                # A new or dropped jurisdiction changes whose law and notice apply to whom.
                self.add(CHANGED, path, "added" if o is None else "removed", o, n)
                continue
            if o["storage_region"] != n["storage_region"]:
                self.add(
                    EXPANSION,
                    f"{path}.storage_region",
                    "data moves region",
                    o["storage_region"],
                    n["storage_region"],
                )
            self.rest(path, o, n, ("code", "storage_region"))

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
        # A new column under an existing entry is new stored data (the phone number filed
        # under the username entry): an expansion, never layout, and the purposes reading
        # the entry must be agreed to again. A column with the name of one the entry already
        # has (``link_codes.account_id`` for ``accounts.account_id``) is another copy of the
        # same value, a key: still an expansion, but the purposes' meaning is unchanged.
        names = {c.rsplit(".", 1)[-1] for c in o["columns"]}
        for col in sorted(set(n["columns"]) - set(o["columns"])):
            copy = col.rsplit(".", 1)[-1] in names
            what = f"new copy of the field in {col}" if copy else f"new stored column {col}"
            self.add(EXPANSION, f"{path}.columns", what, None, col, () if copy else uses)
        for col in sorted(set(o["columns"]) - set(n["columns"])):
            self.add(REDUCTION, f"{path}.columns", f"stored column {col} removed", col, None)
        if o["side"] != n["side"]:
            kind = REDUCTION if (o["side"], n["side"]) == ("server", "client") else EXPANSION
            self.add(kind, f"{path}.side", "stored elsewhere", o["side"], n["side"], uses)
        ro, rn = o["retention"], n["retention"]
        lo, ln = duration_seconds(ro["duration"]), duration_seconds(rn["duration"])
        if ln > lo:
            self.add(
                EXPANSION, f"{path}.retention", "kept longer", ro["duration"], rn["duration"], uses
            )
        elif ln < lo:
            self.add(REDUCTION, f"{path}.retention", "kept shorter", ro["duration"], rn["duration"])
        if ro["trigger"] != rn["trigger"]:
            # The clock may now start later.
            self.add(
                EXPANSION,
                f"{path}.retention.trigger",
                "retention starts differently",
                ro["trigger"],
                rn["trigger"],
                uses,
            )
        self.rest(f"{path}.retention", ro, rn, ("duration", "trigger"))
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
        claimed = {"id", "category", "purposes", "recipients", "subjects", "columns", "side"}
        claimed |= {"retention", "server_visible", "legal_process", "required", "in_export"}
        # Title, description and source say what the field is: wording is not proven
        # narrower, but the data a purpose reads is unchanged, so it asks no re-consent.
        self.rest(path, o, n, claimed | {"storage"})

    def subjects(self) -> None:
        old, new = _by_id(self.old["subjects"]), _by_id(self.new["subjects"])
        self.sets("subjects", list(old), list(new), "data subject")
        for sid in sorted(set(old) & set(new)):
            self.rest(f"subjects[{sid}]", old[sid], new[sid], ("id",))

    def security(self) -> None:
        old, new = self.old["security"], self.new["security"]
        self.sets("security", old, new, "security measure", added_kind=REDUCTION)

    def rights(self) -> None:
        old, new = _by_id(self.old["rights"], "right"), _by_id(self.new["rights"], "right")
        self.sets("rights", list(old), list(new), "right", added_kind=REDUCTION)
        for r in sorted(set(old) & set(new)):
            self.rest(f"rights[{r}]", old[r], new[r], ("right",))

    def legal_process(self) -> None:
        o, n = self.old["legal_process"], self.new["legal_process"]
        self.sets("legal_process.fields", o["fields"], n["fields"], "producible field")
        self.rest("legal_process", o, n, ("fields",))


def diff(old: dict[str, Any], new: dict[str, Any]) -> PolicyDiff:
    """Every change from policy document ``old`` to ``new``, classified."""
    return PolicyDiff(int(old["version"]), int(new["version"]), tuple(_Differ(old, new).run()))


def reconsent_problems(d: PolicyDiff, new: dict[str, Any]) -> list[str]:
    """Optional purposes that changed meaning without ``consent_since`` moving to the new
    version."""
    purposes = _by_id(new["purposes"])
    return [
        f"purpose {pid!r} changes in v{d.new_version}: set consent_since={d.new_version}"
        for pid in sorted(d.expanded_purposes())
        if purposes[pid]["consent_since"] < d.new_version
    ]
