"""The records of the data inventory (``Entry``, ``Category``, ``Retention``) and the helpers
that build entries. Part of ``baat.privacy.inventory`` (import them from there): a module of
its own so that the inventory's entries can be declared in several modules
(``_inventory_memory.py`` for the server's memory and Redis) without an import circle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from baat.privacy.purposes import DPV, PD

# ISO 8601 durations, restricted to the designators Baat uses.
_DURATION = re.compile(
    r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$"
)


@dataclass(frozen=True, slots=True)
class Category:
    fides: str  # fideslang data category (CC BY 4.0, Ethyca)
    dpv: str  # W3C DPV personal-data IRI


@dataclass(frozen=True, slots=True)
class Retention:
    duration: str  # ISO 8601 duration, counted from the trigger
    trigger: str
    deletion: str


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    title: str
    description: str
    side: str  # "server" or "client"
    columns: tuple[str, ...]  # "table.column"; empty for data held only in memory
    server_visible: bool
    category: Category
    subjects: tuple[str, ...]
    purposes: tuple[str, ...]
    required: bool
    source: str
    retention: Retention
    storage: str  # "account-region", "server-region", "device", "memory" or "redis"
    recipients: tuple[str, ...]
    in_export: bool
    legal_process: bool
    since: int
    # Columns whose value is an account id: what erasure deletes by and export selects by.
    account_columns: tuple[str, ...] = ()
    # Rows owned through another table's row: (child column, parent column) pairs, e.g. a
    # blob's chunks belong to the blob row that names its uploader.
    belongs_to: tuple[tuple[str, str], ...] = ()


def duration_seconds(duration: str) -> int:
    """Length of an ISO 8601 duration, years as 365 days and months as 30 days.

    Raises:
        ValueError: not a duration this parser knows.
    """
    m = _DURATION.match(duration)
    if m is None or duration in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration: {duration!r}")
    y, mo, w, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    return ((((y * 365 + mo * 30 + w * 7 + d) * 24 + h) * 60 + mi) * 60) + s


_UNTIL_DELETED = Retention(
    "P0D", "you delete your account", "deleted in the same transaction as the account"
)
_ENVELOPE = Retention(
    "P30D",
    "the envelope is stored",
    "deleted as soon as the recipient device acknowledges it, at the latest after 30 days",
)
_BLOB = Retention(
    "P30D",
    "the attachment is uploaded",
    "deleted once every recipient device fetched it, at the latest after 30 days",
)
_ON_DEVICE = Retention(
    "P0D", "you delete it in the app or delete the profile", "deleted from the device store"
)

_UID = Category("user.unique_id", PD + "UID")
_ACTIVITY = Category("user.behavior", PD + "ServiceConsumptionBehavior")
_CREDENTIAL = Category("user.authorization.credentials", PD + "Authenticating")
# Who wrote to whom, when, and what they sent: about people, so a user.* category.
_METADATA = Category("user.behavior", PD + "CommunicationsMetadata")
_PRIVATE = Category("user.content.private", PD + "Communication")
_SYSTEM = Category("system.operations", DPV + "NonPersonalData")

_OPTIONAL_INTERNAL = ("improve", "understand", "customize", "support", "market")


def _server(
    id: str,
    title: str,
    description: str,
    columns: tuple[str, ...],
    category: Category,
    purposes: tuple[str, ...],
    recipients: tuple[str, ...],
    *,
    retention: Retention = _UNTIL_DELETED,
    visible: bool = True,
    subjects: tuple[str, ...] = ("user",),
    source: str = "your device, when you register or use Baat",
    storage: str = "account-region",
    in_export: bool = True,
    legal_process: bool = False,
    account_columns: tuple[str, ...] = (),
    belongs_to: tuple[tuple[str, str], ...] = (),
    since: int = 1,
) -> Entry:
    return Entry(
        id=id,
        title=title,
        description=description,
        side="server",
        columns=columns,
        server_visible=visible,
        category=category,
        subjects=subjects,
        purposes=purposes,
        required=True,
        source=source,
        retention=retention,
        storage=storage,
        recipients=recipients,
        in_export=in_export,
        legal_process=legal_process,
        since=since,
        account_columns=account_columns,
        belongs_to=belongs_to,
    )


def _client(
    id: str,
    title: str,
    description: str,
    category: Category,
    purposes: tuple[str, ...] = ("service",),
    *,
    subjects: tuple[str, ...] = ("user",),
    required: bool = True,
    source: str = "created on your device",
    since: int = 1,
) -> Entry:
    # Client data never reaches the server in readable form, so it is neither in the
    # server's access export (you hold it already) nor producible under legal process.
    return Entry(
        id=id,
        title=title,
        description=description,
        side="client",
        columns=(),
        server_visible=False,
        category=category,
        subjects=subjects,
        purposes=purposes,
        required=required,
        source=source,
        retention=_ON_DEVICE,
        storage="device",
        recipients=(),
        in_export=False,
        legal_process=False,
        since=since,
    )
