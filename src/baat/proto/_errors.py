"""Protocol errors and their stable codes.

::

    ProtocolError                 base; carries a stable ``code`` string
    ├── RemoteProtocolError       the peer broke the protocol (malformed, out of order,
    │                             oversized); the connection answers with an Error frame
    │                             and closes when ``fatal``
    └── LocalProtocolError        we were asked to send something invalid in this state

Codes are part of the wire contract (docs/PROTOCOL.md); never renumber or reuse one.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    MALFORMED_FRAME = "malformed_frame"
    UNKNOWN_FRAME = "unknown_frame"
    FRAME_TOO_LARGE = "frame_too_large"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNAUTHENTICATED = "unauthenticated"
    AUTH_FAILED = "auth_failed"
    UNEXPECTED_FRAME = "unexpected_frame"
    ENVELOPE_TOO_LARGE = "envelope_too_large"
    TOO_MANY_RECIPIENTS = "too_many_recipients"
    RATE_LIMITED = "rate_limited"
    UNKNOWN_ACCOUNT = "unknown_account"
    UNKNOWN_DEVICE = "unknown_device"
    STALE_DEVICES = "stale_devices"
    DEVICE_REMOVED = "device_removed"
    INVALID_PREKEY = "invalid_prekey"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    SHUTTING_DOWN = "shutting_down"
    INTERNAL = "internal"
    # The home region of an addressed account is unreachable; retry later (appended in
    # protocol version 1 with storage regions).
    REGION_UNAVAILABLE = "region_unavailable"
    # The connection did not authenticate within the server's limit (issue 14 timeouts).
    AUTH_TIMEOUT = "auth_timeout"
    # An upload would keep more one-time prekeys than the per-account cap (issue 13).
    TOO_MANY_PREKEYS = "too_many_prekeys"
    # Quotas (docs/PROTOCOL.md, "Quotas"); both are retryable: the sender keeps the message.
    RECIPIENT_QUEUE_FULL = "recipient_queue_full"
    RECIPIENT_RATE_LIMITED = "recipient_rate_limited"
    # Sealed sender (issue 16): the access key does not open the recipient's door; send it
    # authenticated instead (docs/PROTOCOL.md, "Sealed sender").
    SEALED_ACCESS_DENIED = "sealed_access_denied"
    # The operator suspended the account (``baat admin accounts suspend``): fatal, and the
    # account's devices cannot authenticate until the suspension is lifted.
    ACCOUNT_SUSPENDED = "account_suspended"


# Errors after which the connection cannot continue.
FATAL_CODES = frozenset(
    {
        ErrorCode.MALFORMED_FRAME,
        ErrorCode.FRAME_TOO_LARGE,
        ErrorCode.UNSUPPORTED_VERSION,
        ErrorCode.UNAUTHENTICATED,
        ErrorCode.AUTH_FAILED,
        ErrorCode.UNEXPECTED_FRAME,
        ErrorCode.SHUTTING_DOWN,
        ErrorCode.DEVICE_REMOVED,
        ErrorCode.AUTH_TIMEOUT,
        ErrorCode.ACCOUNT_SUSPENDED,
    }
)


class ProtocolError(Exception):
    """Base of the protocol errors; ``code`` is stable and machine-readable."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def fatal(self) -> bool:
        return self.code in FATAL_CODES


class RemoteProtocolError(ProtocolError):
    """The peer sent something this protocol does not allow."""


class LocalProtocolError(ProtocolError):
    """This side tried to do something the protocol does not allow in its state."""
