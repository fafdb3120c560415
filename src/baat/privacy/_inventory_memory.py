"""Inventory entries for personal data held outside the database: in the server's memory
and in Redis. Part of ``baat.privacy.inventory`` (import them from there); each is erased
by a store registered with ``baat.privacy.erasure`` (``baat.server.erasable``).
"""

from __future__ import annotations

from baat.privacy._inventory_records import (
    _ACTIVITY,
    _METADATA,
    Category,
    Entry,
    Retention,
    _server,
)
from baat.privacy.purposes import PD

MEMORY_ENTRIES: tuple[Entry, ...] = (
    _server(
        "connection.presence",
        "Presence",
        "Which server node holds each connected device: with several nodes, a Redis key "
        "<region>:presence:<account id>:<device number> whose value is the node's name "
        "(in the server's memory with one node).",
        (),
        Category("user.device", PD + "DeviceBased"),
        ("service",),
        ("baat",),
        retention=Retention(
            "PT30S",
            "the device disconnects, or its node stops refreshing the key",
            "deleted when the device disconnects, expires 30 seconds after the last refresh, "
            "deleted on erasure",
        ),
        source="the server",
        storage="redis",
        in_export=False,
        since=7,
    ),
    _server(
        "connection.session",
        "Live connection",
        "While a device is connected: its account and device number and the envelopes "
        "pushed to it and not yet acknowledged, in the server's memory.",
        (),
        _METADATA,
        ("service",),
        ("baat",),
        retention=Retention("PT0S", "the connection closes", "held in memory only"),
        source="the server",
        storage="memory",
        in_export=False,
        since=7,
    ),
    _server(
        "memory.device_cache",
        "Cached device list",
        "The device numbers of accounts recently written to, so that a send is checked "
        "without a database read.",
        (),
        Category("user.device.device_id", PD + "DeviceBased"),
        ("service",),
        ("baat",),
        retention=Retention(
            "P0D",
            "a device is added or removed, the account is deleted, or the server restarts",
            "dropped from memory",
        ),
        source="the server",
        storage="memory",
        in_export=False,
        since=7,
    ),
    _server(
        "memory.send_rate",
        "Send rate",
        "How many envelopes each account sent in the last seconds, to enforce the rate limit.",
        (),
        _ACTIVITY,
        ("security",),
        ("baat",),
        retention=Retention(
            "P0D", "the account is deleted or the server restarts", "dropped from memory"
        ),
        source="the server",
        storage="memory",
        in_export=False,
        since=7,
    ),
    _server(
        "memory.last_seen_cache",
        "Last connection day, cached",
        "The day each account last connected, remembered so that it is written once a day.",
        (),
        _ACTIVITY,
        ("service",),
        ("baat",),
        retention=Retention(
            "P0D", "the account is deleted or the server restarts", "dropped from memory"
        ),
        source="the server",
        storage="memory",
        in_export=False,
        since=7,
    ),
)
