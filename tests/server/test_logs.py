"""The server's log handler: JSON lines, and one warning per interval during an outage
with the count of those suppressed (baat.server.logs)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from baat.server import logs


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, Clock]]:
    stream, clock = io.StringIO(), Clock()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    handler = logs.configure("info", "json", interval=10.0, stream=stream)
    limit = next(f for f in handler.filters if isinstance(f, logs.RateLimit))
    limit.clock = clock
    try:
        yield stream, clock
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_an_outage_writes_one_warning_per_interval_with_the_count(
    captured: tuple[io.StringIO, Clock],
) -> None:
    stream, clock = captured
    log = logging.getLogger("baat.delivery")
    # The writer retries every 200 ms; a quarter second keeps the sums exact: 30 s.
    for _ in range(120):
        log.warning("storage unavailable, will retry: %s", "connection refused")
        clock.now += 0.25
    log.warning("a different warning")  # its own template: not suppressed
    out = lines(stream)
    storage = [r for r in out if str(r["message"]).startswith("storage")]
    assert len(storage) == 3  # at 0 s, 10 s and 20 s
    assert storage[0]["message"] == "storage unavailable, will retry: connection refused"
    assert storage[1]["message"] == (
        "storage unavailable, will retry: connection refused "
        "(39 similar suppressed in the last 10 s)"
    )
    assert [r["message"] for r in out][-1] == "a different warning"
    assert all(r["level"] == "warning" and r["logger"] == "baat.delivery" for r in out)


def test_info_is_never_suppressed_and_levels_filter(captured: tuple[io.StringIO, Clock]) -> None:
    stream, _ = captured
    log = logging.getLogger("baat.server")
    for _ in range(5):
        log.info("connection refused: %s", "cap")
    log.debug("not written at info")
    assert len(lines(stream)) == 5


def test_json_lines_carry_extra_fields_and_exceptions(
    captured: tuple[io.StringIO, Clock],
) -> None:
    stream, _ = captured
    log = logging.getLogger("baat.server")
    log.info("listening", extra={"baat": {"event": "listening", "port": 8780}})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("handler failed")
    first, second = lines(stream)
    assert first["event"] == "listening" and first["port"] == 8780
    assert second["level"] == "error" and "ValueError: boom" in str(second["exc"])


def test_credentials_are_redacted() -> None:
    assert logs.redact("postgresql://baat:pw@db:5432/baat") == "postgresql://baat@db:5432/baat"
    assert logs.redact("redis://:pw@redis:6379/0") == "redis://@redis:6379/0"
    assert logs.redact("sqlite:////var/lib/baat/baat.sqlite3").endswith("baat.sqlite3")


def test_unknown_level_or_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log level"):
        logs.configure("loud")
    with pytest.raises(ValueError, match="log format"):
        logs.configure("info", "xml")
