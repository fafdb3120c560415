"""The errors ``baat.crypto`` raises. Every one of them is a :class:`CryptoError`.

The tree::

    CryptoError
    ├── InvalidKey            a public or private key has the wrong size or is unusable
    ├── InvalidSignature      a signature over a prekey or an identity DH key does not verify
    ├── MalformedMessage      ciphertext bytes that do not parse
    │   └── UnsupportedVersion    a ciphertext format or header version this code does not know
    ├── DecryptionError       the message did not authenticate; nothing was changed
    │   ├── DuplicateMessage      its key was already used (or expired, or was evicted)
    │   └── TooManySkipped        it would need more skipped message keys than allowed
    ├── UnknownPrekey         a first message names a prekey the responder no longer has
    ├── SessionMismatch       a first message that belongs to another session
    └── InvalidState          a stored record that cannot be read (bad bytes, unknown
                              version) or a state that cannot do what was asked

``InvalidKey``, ``InvalidSignature`` and ``InvalidState`` are also ``ValueError`` so that
callers validating input with ``except ValueError`` keep working.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base class of every error raised by ``baat.crypto``."""


class InvalidKey(CryptoError, ValueError):
    """A key has the wrong length or encoding, or is a low-order X25519 point."""


class InvalidSignature(CryptoError, ValueError):
    """A signature did not verify, or the key or kind it names is malformed."""


class MalformedMessage(CryptoError):
    """Ciphertext bytes that are too short, too long or otherwise do not parse."""


class UnsupportedVersion(MalformedMessage):
    """A ciphertext or ratchet header carries a version this code cannot read."""


class DecryptionError(CryptoError):
    """The message failed authentication. The state passed in is unchanged."""


class DuplicateMessage(DecryptionError):
    """The message key was already used, or was discarded because it expired or was evicted.

    A replayed or duplicated message raises this; callers usually drop it silently.
    """


class TooManySkipped(DecryptionError):
    """Decrypting would derive more skipped message keys than the limits allow."""


class UnknownPrekey(CryptoError):
    """A first message uses a prekey id the responder's lookup does not return."""


class SessionMismatch(CryptoError):
    """A first (prekey) message for a different session than the one passed in.

    The caller should start a new session with ``respond_to_initial``.
    """


class InvalidState(CryptoError, ValueError):
    """A state record that cannot be decoded, or an operation the state cannot perform."""
