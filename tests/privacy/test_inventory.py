"""Point 1: the inventory declares every stored field, and nothing that is not stored."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from baat.privacy.inventory import CLIENT_ENTRIES, ENTRIES, SERVER_ENTRIES, duration_seconds
from baat.privacy.policy import Policy
from baat.server.storage import migrations
from baat.server.storage.schema import metadata
from baat.server.storage.sql import SqlStore

POLICY = Policy.current()
IDS = {e.id for e in ENTRIES}


def _reflect(sync_conn: object) -> dict[str, list[str]]:
    insp = inspect(sync_conn)
    return {t: [c["name"] for c in insp.get_columns(t)] for t in insp.get_table_names()}


def _declared_key(table: str, column: str) -> str | None:
    migrations.load_all_tables()
    t = metadata.tables.get(table)
    if t is None or column not in t.c:
        return None
    key = t.c[column].info.get("inventory")
    return str(key) if key else None


async def test_every_real_server_column_is_in_the_inventory(store: SqlStore) -> None:
    async with store.engine.connect() as conn:
        real = await conn.run_sync(_reflect)
    server = {e.id: e for e in SERVER_ENTRIES}
    columns = {c: e.id for e in SERVER_ENTRIES for c in e.columns}
    problems = []
    for table, cols in sorted(real.items()):
        for col in cols:
            ref = f"{table}.{col}"
            key = _declared_key(table, col)
            if key is None:
                problems.append(f"{ref}: no info={{'inventory': ...}} on the column")
            elif key not in server:
                problems.append(f"{ref}: inventory key {key!r} is not a server entry")
            elif columns.get(ref) != key:
                problems.append(f"{ref}: entry {key!r} does not list this column")
    assert not problems, "undeclared columns:\n" + "\n".join(problems)


async def test_every_declared_server_column_exists(store: SqlStore) -> None:
    async with store.engine.connect() as conn:
        real = await conn.run_sync(_reflect)
    existing = {f"{t}.{c}" for t, cols in real.items() for c in cols}
    missing = [f"{e.id}: {c}" for e in SERVER_ENTRIES for c in e.columns if c not in existing]
    assert not missing, "inventory declares columns the database lacks:\n" + "\n".join(missing)
    for e in SERVER_ENTRIES:
        for c in e.account_columns:
            assert c in e.columns, f"{e.id}: account column {c} is not one of its columns"


def test_every_client_column_is_in_the_inventory(tmp_path: Path) -> None:
    client = pytest.importorskip(
        "baat.client.schema", reason="the client SDK has not declared baat.client.schema yet"
    )
    engine = create_engine(f"sqlite:///{tmp_path / 'client.sqlite3'}")
    client.metadata.create_all(engine)
    with engine.connect() as conn:
        real = _reflect(conn)
    engine.dispose()
    declared = {e.id for e in CLIENT_ENTRIES}
    used = set()
    problems = []
    for table, cols in sorted(real.items()):
        for col in cols:
            t = client.metadata.tables.get(table)
            key = t.c[col].info.get("inventory") if t is not None and col in t.c else None
            if key not in declared:
                problems.append(f"client {table}.{col}: inventory key {key!r} is not declared")
            used.add(key)
    assert not problems, "\n".join(problems)
    # Imported chats are stored as messages marked "imported"; every other client entry
    # must be backed by at least one column.
    unused = declared - used - {"client.imported_chats"}
    assert not unused, f"client entries with no column in baat.client.schema: {sorted(unused)}"


def test_entries_are_complete_and_consistent() -> None:
    assert len(IDS) == len(ENTRIES), "duplicate inventory ids"
    purposes = {p.id for p in POLICY.purposes}
    recipients = {r.id for r in POLICY.recipients}
    for e in ENTRIES:
        assert e.side in ("server", "client"), e.id
        assert e.title and e.description and e.source, e.id
        assert re.fullmatch(r"(user|system)(\.[a-z_]+)*", e.category.fides), e.id
        assert e.category.dpv.startswith("https://w3id.org/dpv"), e.id
        assert e.purposes and set(e.purposes) <= purposes, e.id
        assert set(e.recipients) <= recipients, e.id
        assert duration_seconds(e.retention.duration) >= 0, e.id
        assert e.retention.trigger and e.retention.deletion, e.id
        assert e.storage in ("account-region", "server-region", "device", "memory", "redis"), e.id
        assert e.since >= 1, e.id
        if e.side == "client":
            assert not e.server_visible and not e.in_export and not e.legal_process, e.id
        # Every recipient of a field must be a recipient of one of its purposes.
        via = {r for p in e.purposes for r in POLICY.purpose(p).recipients}
        assert set(e.recipients) <= via, f"{e.id}: recipients no purpose explains"


def test_the_keys_the_server_uses_are_declared() -> None:
    required = {
        "system.schema_version", "account.id", "account.username", "account.region",
        "account.jurisdiction", "account.created_day", "account.last_seen_day", "device.id",
        "device.identity_key", "device.created_day", "device.auth_token", "device.prekeys",
        "envelope.seq", "envelope.recipient", "envelope.sender", "envelope.message_id",
        "envelope.content", "envelope.stored_at",
        "client.identity_keys", "client.prekeys_private", "client.sessions", "client.contacts",
        "client.messages", "client.outbox", "client.settings", "client.credentials",
        "client.imported_chats",
    }  # fmt: skip
    assert required <= IDS
    content = POLICY.entry("envelope.content")
    assert content is not None and not content.server_visible
    assert content.retention.duration == "P30D"


def test_only_creation_and_last_connection_are_producible() -> None:
    producible = {e.id for e in ENTRIES if e.legal_process}
    assert producible == {"account.created_day", "account.last_seen_day"}


def test_optional_purposes_exist_for_real() -> None:
    optional = {p.id for p in POLICY.purposes if p.optional}
    assert optional == {
        "improve",
        "understand",
        "customize",
        "support",
        "market",
        "share_affiliate",
        "business-chat",  # granted once per business, as business-chat:<account>
    }
    for p in POLICY.purposes:
        assert p.gdpr.law == "GDPR" and p.dpdp.law == "DPDP", p.id
        if p.optional:
            assert p.gdpr.cite == "Art. 6(1)(a)" and p.dpdp.cite == "s. 6", p.id
            assert POLICY.entries_for(p.id), f"{p.id} reads no declared field"
        assert not p.profiling and not p.automated_decisions


def test_durations_parse() -> None:
    assert duration_seconds("P30D") == 30 * 86_400
    assert duration_seconds("P1Y") == 365 * 86_400
    assert duration_seconds("PT0S") == 0
    for bad in ("30 days", "P", "PT", "P1.5D"):
        with pytest.raises(ValueError):
            duration_seconds(bad)


def test_what_is_about_people_is_filed_as_personal() -> None:
    # A field with data subjects is personal data: a user.* category and a DPV personal-data
    # concept. Only fields about no one may be system.* / NonPersonalData.
    for e in ENTRIES:
        personal = bool(e.subjects)
        assert e.category.fides.startswith("user") == personal, e.id
        assert ("NonPersonalData" in e.category.dpv) == (not personal), e.id
    for field_id in ("envelope.sender", "envelope.recipient", "envelope.recent_send"):
        entry = POLICY.entry(field_id)
        assert entry is not None and entry.category.fides.startswith("user."), field_id


def test_stores_outside_the_database_are_declared() -> None:
    # Redis presence keys and every in-memory store holding personal data (the router's
    # recent sends, device-list cache and rate buckets, the last-seen cache, live sessions).
    outside = {e.id: e.storage for e in SERVER_ENTRIES if e.storage in ("memory", "redis")}
    assert outside == {
        "connection.ip_address": "memory",
        "connection.presence": "redis",
        "connection.session": "memory",
        "envelope.recent_send": "memory",
        "memory.device_cache": "memory",
        "memory.send_rate": "memory",
        "memory.last_seen_cache": "memory",
    }
    recent = POLICY.entry("envelope.recent_send")
    assert recent is not None and recent.retention.duration == "P1D"
    assert set(recent.columns) == {f"recent_sends.{c}" for c in (
        "sender_account", "sender_device", "message_id", "expires_at")}  # fmt: skip
