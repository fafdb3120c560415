"""Refusals shared by the delivery path (delivery.py) and the links between regions
(regions/links.py): a module of its own so that neither imports the other for them.
"""

from __future__ import annotations

from baat.proto import ErrorCode


class SendRefused(Exception):
    """The whole send was refused (rate limit, storage down); nothing was accepted."""

    def __init__(self, code: ErrorCode, message: str, retry_after_ms: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms
