"""The server's logs: level, text or JSON lines, and warnings limited during an outage.

``configure`` is called once by ``baat serve`` (docs/DEPLOY.md, "Logs"):

- one handler on the root logger, writing to stderr (journald and container runtimes
  collect it); ``text`` is one human line per record, ``json`` one JSON object per line
  with ``ts``, ``level``, ``logger``, ``message`` and, for failures, ``exc``;
- a ``RateLimit`` filter on that handler: a warning (or error) with the same logger and
  message template is written at most once per ``interval`` seconds; the next one written
  says how many were suppressed meanwhile. During a database outage the writer retries
  every 200 ms and the presence refresh every few seconds: without the limit that is five
  lines a second per node, and the first line of the outage is the one that matters.

No log line carries message content or IP addresses of clients beyond what the transport
already logs at INFO for refused connections (docs/ARCHITECTURE.md, "Storage").
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import IO

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
DEFAULT_INTERVAL_S = 10.0

_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record; ``extra`` fields given as ``extra={"baat": {...}}``."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "baat", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


class RateLimit(logging.Filter):
    """At most one warning or error per (logger, message template) per ``interval`` s.

    A record that passes after others were dropped has " (N similar suppressed in the
    last S s)" appended, so that the count of an outage's failures is not lost.
    """

    def __init__(
        self, interval: float = DEFAULT_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        # (logger, template) -> (time last written, suppressed since)
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or record.levelno >= logging.CRITICAL:
            return True
        key = (record.name, str(record.msg))
        now = self.clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.interval:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            # Formatting happens later: fold the arguments in now and append the count.
            record.msg = (
                f"{record.getMessage()} ({last[1]} similar suppressed in the last "
                f"{now - last[0]:.0f} s)"
            )
            record.args = None
        self._seen[key] = (now, 0)
        if len(self._seen) > 10_000:  # templates are few; bound it anyway
            self._seen.clear()
        return True


def configure(
    level: str = "info",
    fmt: str = "text",
    interval: float = DEFAULT_INTERVAL_S,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Route every logger of the process through one handler. Returns the handler.

    Raises:
        ValueError: an unknown level or format.
    """
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT))
    handler.addFilter(RateLimit(interval))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's own loggers propagate here; its access log stays off (no client addresses).
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    return handler


def redact(url: str) -> str:
    """A database or bus URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}@{host}"
    return url


def database_kind(url: str) -> str:
    return "postgresql" if url.startswith("postgres") else "sqlite"
