"""Numbered schema migrations, a small layer of our own instead of Alembic.

Each migration creates the tables it lists (in the shape ``schema.py`` declares) and may run
further statements per engine. Once a version has shipped, a change to one of its tables is
a new migration with an ``ALTER``; ``tests/server/test_storage.py`` reflects the migrated
database on both engines and fails when it drifts from the declared schema.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, insert, inspect, select, text

from baat.server.storage.schema import metadata, schema_version


def load_all_tables() -> None:
    # Other layers declare their tables on the shared metadata; import them so that every
    # table a migration names is known.
    import baat.server.privacy.schema  # noqa: F401


_LOCK_KEY = 0x6261617400000001  # "baat" and the migration lock's number


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    tables: Sequence[str]
    # Extra statements, keyed by dialect name ("sqlite", "postgresql") or "*" for both.
    extra: dict[str, Callable[[Connection], None]] = field(default_factory=dict)


MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "accounts, devices, prekeys, envelope queue",
        [
            "accounts",
            "devices",
            "signed_prekeys",
            "one_time_prekeys",
            "envelopes",
            "recent_sends",
        ],
    ),
    Migration(
        2,
        "privacy: consent ledger, transfer log, server signing keys",
        # Declared in baat.server.privacy.schema on the same metadata.
        ["consent_events", "transfer_log", "server_keys", "consent_subjects", "ledger_anchor"],
    ),
    Migration(
        3,
        "attachment blobs",
        ["blobs", "blob_chunks"],
        # Chunks are ciphertext, which never compresses: spare PostgreSQL the attempt.
        {
            "postgresql": lambda conn: conn.execute(
                text("ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL")
            ).close()
        },
    ),
    Migration(
        4, "linked devices: link codes and signed device lists", ["link_codes", "device_lists"]
    ),
    Migration(
        5, "storage regions: daily counts of transfers between regions", ["region_transfers"]
    ),
    Migration(6, "a dated log of legal-process runs, without content", ["legal_process_runs"]),
    Migration(8, "consent ledger: the signed chain head", ["ledger_head"]),
    Migration(
        11,
        "one-time registration invites; blobs by uploader for the blob quota",
        ["registration_invites"],
        {
            "*": lambda conn: conn.execute(
                text("CREATE INDEX IF NOT EXISTS blobs_by_uploader ON blobs (uploader_account)")
            ).close()
        },
    ),
    Migration(
        12,
        "sealed sender: envelopes without a sender",
        [],
        {
            "postgresql": lambda conn: _sealed_envelopes_postgresql(conn),
            "sqlite": lambda conn: _sealed_envelopes_sqlite(conn),
        },
    ),
    Migration(
        13,
        "sealed sender: delivery access and encrypted profiles",
        ["delivery_access", "profiles"],
    ),
    Migration(14, "business accounts: signed business profiles", ["business_profiles"]),
    Migration(
        15,
        "business verification statements; consent purposes of one business chat each",
        ["business_verifications"],
        # ``business-chat:<account id>`` is 46 characters (docs/BUSINESS.md §3); SQLite does
        # not enforce VARCHAR lengths, PostgreSQL does.
        {
            "postgresql": lambda conn: conn.execute(
                text("ALTER TABLE consent_events ALTER COLUMN purpose TYPE VARCHAR(64)")
            ).close()
        },
    ),
]

_SEALED_INDEX = (
    "CREATE UNIQUE INDEX IF NOT EXISTS envelopes_sealed_idempotency ON envelopes "
    "(message_id, recipient_account, recipient_device) WHERE sender_account IS NULL"
)


def _sealed_envelopes_postgresql(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE envelopes ALTER COLUMN sender_account DROP NOT NULL"))
    conn.execute(text("ALTER TABLE envelopes ALTER COLUMN sender_device DROP NOT NULL"))
    conn.execute(text(_SEALED_INDEX))


def _sealed_envelopes_sqlite(conn: Connection) -> None:
    """SQLite cannot drop NOT NULL: rebuild the table in its declared shape, rows kept
    (https://www.sqlite.org/lang_altertable.html, "Making Other Kinds Of Table Schema
    Changes"). A database created at this version already has the shape."""
    from baat.server.storage.schema import envelopes

    columns = {c["name"]: c for c in inspect(conn).get_columns("envelopes")}
    if columns["sender_account"]["nullable"]:
        conn.execute(text(_SEALED_INDEX))
        return
    names = ", ".join(c.name for c in envelopes.columns)
    conn.execute(text("ALTER TABLE envelopes RENAME TO envelopes_before_sealed"))
    conn.execute(text("DROP INDEX IF EXISTS envelopes_by_recipient"))
    envelopes.create(conn)
    conn.execute(
        text(f"INSERT INTO envelopes ({names}) SELECT {names} FROM envelopes_before_sealed")
    )
    conn.execute(text("DROP TABLE envelopes_before_sealed"))
    conn.execute(text(_SEALED_INDEX))


def current_version(conn: Connection) -> int:
    """The highest applied migration, 0 on an empty database."""
    if not inspect(conn).has_table("schema_version"):
        return 0
    value = conn.execute(select(schema_version.c.version).order_by(schema_version.c.version.desc()))
    row = value.first()
    return int(row[0]) if row else 0


def migrate(conn: Connection, target: int | None = None) -> list[int]:
    """Apply every pending migration up to ``target`` inside the caller's transaction.

    Returns the versions applied, in order.
    """
    load_all_tables()
    if conn.dialect.name == "postgresql":
        # Several nodes may start at once on an empty database: one migrates, the others
        # wait for its transaction and then find nothing left to do.
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    schema_version.create(conn, checkfirst=True)
    # Numbers are reserved per change and land in any order: a database already at a higher
    # number still gets a lower one it has not run.
    done = {int(v) for (v,) in conn.execute(select(schema_version.c.version))}
    applied: list[int] = []
    for migration in MIGRATIONS:
        if migration.version in done or (target is not None and migration.version > target):
            continue
        for name in migration.tables:
            metadata.tables[name].create(conn, checkfirst=True)
        for key in ("*", conn.dialect.name):
            step = migration.extra.get(key)
            if step is not None:
                step(conn)
        conn.execute(
            insert(schema_version).values(version=migration.version, applied_at=int(time.time()))
        )
        applied.append(migration.version)
    return applied
