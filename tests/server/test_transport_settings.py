"""The connection guard's arithmetic and the ``baat serve`` options that configure it (the
real-process behaviour is in test_transport_limits.py)."""

from __future__ import annotations

import dataclasses

from baat.cli._limits import FIELD, OPTIONS, settings_kwargs
from baat.server.transport.guard import (
    ADMIT,
    REFUSE_ADDRESS,
    REFUSE_TOTAL,
    RESERVE_ONLY,
    ConnectionGuard,
    TransportSettings,
)


def test_cli_defaults_are_the_settings_defaults() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(TransportSettings)}
    for name, default, _, _ in OPTIONS:
        assert defaults[FIELD.get(name, name)] == default, name
    values = {name: default for name, default, _, _ in OPTIONS}
    assert TransportSettings(**settings_kwargs(values)) == TransportSettings()


def test_per_address_cap_counts_and_releases() -> None:
    guard = ConnectionGuard(TransportSettings(max_connections=100, per_address=2))
    assert guard.admit("a") == ADMIT
    assert guard.admit("a") == ADMIT
    assert guard.admit("a") == REFUSE_ADDRESS  # refused ones are not counted
    assert guard.admit("b") == ADMIT
    assert guard.open == 3
    guard.release("a")
    assert guard.admit("a") == ADMIT
    for _ in range(2):
        guard.release("a")
    guard.release("b")
    assert guard.open == 0 and guard.count("a") == 0


def test_reserve_is_for_healthz_and_authenticated_devices_keep_room() -> None:
    guard = ConnectionGuard(TransportSettings(max_connections=10, reserve=3, per_address=0))
    verdicts = [guard.admit(str(i)) for i in range(10)]
    assert verdicts == [ADMIT] * 7 + [RESERVE_ONLY] * 3
    assert guard.admit("x") == REFUSE_TOTAL
    # Authenticated devices do not count against the unauthenticated share.
    for i in range(10):
        guard.release(str(i))
    guard.authenticated = 5
    for i in range(5):
        guard.admit(f"device{i}")
    assert guard.admit("new") == ADMIT  # 6 open, 1 unauthenticated


def test_default_total_stays_below_the_open_file_limit() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    settings = TransportSettings()
    total = settings.total()
    assert total <= max(64, soft - 256)
    assert 16 <= settings.reserved(total) < total
