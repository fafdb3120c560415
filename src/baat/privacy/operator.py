"""The operator's own notice: who runs this deployment, whom it shares with, where it
stores data (``baat serve --operator FILE``; docs/DEPLOY.md, "The operator's notice").

The inventory, the purposes, the legal bases and the jurisdictions are the code's: they say
what the software does, and only a new release changes them. Who the controller is, how to
reach it and its grievance officer (DPDP s. 8(9)-(10), GDPR Art. 13(1)(a)-(b) and 27), who
the named recipients are (the affiliate, the support desk) and where each region's data
centre is are the operator's, and come from a TOML file:

```toml
[controller]
name = "Example Community Trust"
address = "..."
email = "privacy@example.org"
grievance_officer = "grievance@example.org"
eu_representative = "eu@example.org"
website = "https://example.org"

[recipients.affiliate]
name = "..."
country = "IN"

[regions.in]
location = "Chennai, India"
country = "IN"
```

``deploy/operator.example.toml`` holds the built-in values. The file is validated against
the code's notice: every controller field present and non-empty, only recipients and
regions the inventory declares (a file cannot invent a recipient or a region, nor rename
the users or the authorities), countries as ISO 3166-1 alpha-2 codes. The result is the
code's ``Policy`` with those values replaced, so ``baat policy show``/``diff``/``publish``
and the server treat it as any other notice: a changed controller or a recipient's new
name or country is a blocking change for the strict diff, and consents to the purposes it
touches must be asked again.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from baat.privacy.errors import PrivacyError
from baat.privacy.policy import Policy
from baat.privacy.purposes import Controller

# Recipients the operator names. The others are fixed by what the software does:
# "baat" and "baat-regions" are the controller itself (named from [controller]), and the
# users and the authorities are not the operator's to name.
NAMED_RECIPIENTS = ("affiliate", "baat-support")
_CONTROLLER_FIELDS = tuple(Controller.__dataclass_fields__)
_COUNTRY = re.compile(r"^[A-Z]{2}$")


class OperatorConfigError(PrivacyError):
    """The operator's file is unreadable or does not fit the code's notice."""

    code: ClassVar[str] = "invalid_operator_config"


def load(path: Path, base: Policy | None = None) -> Policy:
    """The notice of ``base`` (default: the code's) with the operator's values from
    ``path``.

    Raises:
        OperatorConfigError: unreadable, invalid TOML, or not fitting the notice.
    """
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OperatorConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise OperatorConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return apply(base or Policy.current(), doc)
    except OperatorConfigError as exc:
        raise OperatorConfigError(f"{path}: {exc.message}") from exc


def _table(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise OperatorConfigError(f"[{key}] must be a table")
    return value


def _text(where: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise OperatorConfigError(f"{where} must be a non-empty string")
    return value.strip()


def _country(where: str, value: object) -> str:
    text = _text(where, value)
    if not _COUNTRY.match(text):
        raise OperatorConfigError(f"{where} must be an ISO 3166-1 alpha-2 code like 'IN'")
    return text


def apply(base: Policy, doc: dict[str, Any]) -> Policy:
    """``base`` with the operator's controller, recipients and regions.

    Raises:
        OperatorConfigError: an unknown section, key, recipient or region; a missing or
            empty controller field; a malformed country.
    """
    unknown = sorted(set(doc) - {"controller", "recipients", "regions"})
    if unknown:
        raise OperatorConfigError(
            f"unknown section(s) {', '.join(unknown)}; use controller, recipients, regions"
        )
    given = _table(doc, "controller")
    extra = sorted(set(given) - set(_CONTROLLER_FIELDS))
    missing = [f for f in _CONTROLLER_FIELDS if f not in given]
    if extra or missing:
        raise OperatorConfigError(
            "[controller] needs exactly: " + ", ".join(_CONTROLLER_FIELDS)
            + (f" (unknown: {', '.join(extra)})" if extra else "")
            + (f" (missing: {', '.join(missing)})" if missing else "")
        )  # fmt: skip
    controller = Controller(**{f: _text(f"controller.{f}", given[f]) for f in _CONTROLLER_FIELDS})
    old_name = base.controller.name

    recipients = {r.id: r for r in base.recipients}
    renamed: dict[str, str] = {}
    for rid, spec in _table(doc, "recipients").items():
        if rid not in NAMED_RECIPIENTS or rid not in recipients:
            raise OperatorConfigError(
                f"recipient {rid!r} is not one the operator names; the notice's are: "
                + ", ".join(r for r in NAMED_RECIPIENTS if r in recipients)
            )
        if not isinstance(spec, dict) or set(spec) - {"name", "country"}:
            raise OperatorConfigError(f"[recipients.{rid}] takes name and country")
        r = recipients[rid]
        name = _text(f"recipients.{rid}.name", spec.get("name", r.name))
        country = _country(f"recipients.{rid}.country", spec.get("country", r.country))
        renamed[r.name] = name
        # Purposes may name it without its parenthesis ("... (an affiliate of Baat)").
        renamed[_short(r.name)] = _short(name)
        recipients[rid] = replace(r, name=name, country=country)
    for rid, r in recipients.items():
        # The controller's own rows carry its name.
        if rid not in NAMED_RECIPIENTS and old_name in r.name:
            recipients[rid] = replace(r, name=r.name.replace(old_name, controller.name))

    regions = {r.id: r for r in base.regions}
    for region_id, spec in _table(doc, "regions").items():
        if region_id not in regions:
            raise OperatorConfigError(
                f"region {region_id!r} is not declared in the notice; regions are: "
                + ", ".join(regions)
            )
        if not isinstance(spec, dict) or set(spec) - {"location", "country"}:
            raise OperatorConfigError(f"[regions.{region_id}] takes location and country")
        reg = regions[region_id]
        regions[region_id] = replace(
            reg,
            location=_text(f"regions.{region_id}.location", spec.get("location", reg.location)),
            country=_country(f"regions.{region_id}.country", spec.get("country", reg.country)),
        )

    def reword(text: str) -> str:
        # A purpose that names a recipient (the affiliate) names the operator's.
        for old, new in renamed.items():
            text = text.replace(old, new)
        return text

    purposes = tuple(replace(p, description=reword(p.description)) for p in base.purposes)
    return base.evolve(
        controller=controller,
        recipients=tuple(recipients[r.id] for r in base.recipients),
        regions=tuple(regions[reg.id] for reg in base.regions),
        purposes=purposes,
    )


def example(base: Policy | None = None) -> str:
    """The TOML of ``base``'s own values (deploy/operator.example.toml is this)."""
    p = base or Policy.current()
    lines = [
        "# The operator's own notice (baat serve --operator FILE; docs/DEPLOY.md).",
        "# These are the built-in example values: replace every one with your own.",
        "",
        "[controller]",
    ]
    lines += [f"{f} = {_quote(getattr(p.controller, f))}" for f in _CONTROLLER_FIELDS]
    for r in p.recipients:
        if r.id in NAMED_RECIPIENTS:
            lines += ["", f"[recipients.{r.id}]"]
            lines += [f"name = {_quote(r.name)}", f"country = {_quote(r.country)}"]
    for region in p.regions:
        lines += ["", f"[regions.{region.id}]"]
        lines += [f"location = {_quote(region.location)}", f"country = {_quote(region.country)}"]
    return "\n".join(lines) + "\n"


def _short(name: str) -> str:
    return re.sub(r"\s*\([^)]*\)$", "", name)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def install(policy: Policy) -> None:
    """Make ``policy`` the notice this process serves (``Policy.current()``)."""
    from baat.privacy import policy as module

    module._CURRENT = policy
