"""Residency: where this deployment stores an account of each jurisdiction.

The policy maps every jurisdiction to a storage region (``purposes.JURISDICTIONS``). A
deployment runs one region, possibly linked to others (``baat serve --region``,
``--peer``). For a registration of a jurisdiction whose region is

* this node's: the account is stored here, with ``accounts.region`` set to it;
* a linked region: registration is redirected there (HTTP 421, ``wrong_region``);
* neither: the operator chooses, with ``baat serve --unserved-jurisdictions``,
  - ``refuse``: registration is refused (HTTP 403, ``region_not_served``), naming the
    region the notice promises;
  - ``store-here`` (the default): the account is stored here, and this deployment says so
    in the policy it serves. ``deployment_policy`` maps the jurisdiction to this region,
    so the notice ("Your data is stored in ..."), the transparency report and every
    stored ``accounts.region`` name the same place.

An account is therefore never stored under a notice that names another region.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from baat.privacy.policy import Policy

LOCAL = "local"
LINKED = "linked"
REFUSED = "refused"
STORE_HERE = "store-here"
REFUSE = "refuse"
CHOICES = (STORE_HERE, REFUSE)


@dataclass(frozen=True, slots=True)
class Placement:
    jurisdiction: str
    kind: str  # LOCAL, LINKED or REFUSED
    region: str  # where an account of the jurisdiction is stored
    url: str | None = None  # the linked region's server, for LINKED

    def describe(self) -> str:
        if self.kind == LOCAL:
            return f"stored here, in region {self.region}"
        if self.kind == LINKED:
            return f"sent to region {self.region} and stored there"
        return f"refused: region {self.region} is not served by this deployment"


@dataclass(frozen=True)
class Residency:
    policy: Policy  # the published policy
    local: str
    linked: Mapping[str, str] = field(default_factory=dict)  # region -> server URL
    unserved: str = STORE_HERE

    def __post_init__(self) -> None:
        if self.unserved not in CHOICES:
            raise ValueError(f"unserved jurisdictions: use one of {', '.join(CHOICES)}")

    def placement(self, code: str) -> Placement:
        """What a registration of jurisdiction ``code`` gets here.

        Raises:
            KeyError: the policy declares no such jurisdiction.
        """
        j = self.policy.jurisdiction(code.upper())
        if j is None:
            raise KeyError(code)
        if j.region == self.local:
            return Placement(j.code, LOCAL, self.local)
        url = self.linked.get(j.region)
        if url is not None:
            return Placement(j.code, LINKED, j.region, url)
        if self.unserved == STORE_HERE:
            return Placement(j.code, LOCAL, self.local)
        return Placement(j.code, REFUSED, j.region)

    def deployment_policy(self) -> Policy:
        """The policy this deployment serves: the published one, with each jurisdiction
        it stores here although the policy names another region mapped to this region."""
        moved = tuple(
            dataclasses.replace(j, region=self.local)
            if self.placement(j.code).kind == LOCAL and j.region != self.local
            else j
            for j in self.policy.jurisdictions
        )
        if moved == self.policy.jurisdictions:
            return self.policy
        return self.policy.evolve(jurisdictions=moved)
