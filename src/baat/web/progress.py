"""Progress of attachment transfers, as events for the page: at most a few a second for
one transfer, and always the last. A module of its own so that runtime.py (which listens
to downloads) and attachments_api.py (uploads) share it without importing each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from baat.client.store import StoredMessage

PROGRESS_EVERY = 0.1  # seconds between progress events for one transfer

DownloadFn = Callable[[StoredMessage, int, int], None]


def on_download(publish: Callable[[dict[str, Any]], None]) -> DownloadFn:
    """A listener for ``client.attachments.progress_listeners``: download progress events."""
    last: dict[str, float] = {}

    def listener(m: StoredMessage, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last.get(m.message_id, 0.0) < PROGRESS_EVERY:
            return
        last[m.message_id] = now
        if done >= total:
            last.pop(m.message_id, None)
        event = {"type": "download", "id": m.message_id, "chat": m.chat}
        publish({**event, "done": done, "total": total})

    return listener
