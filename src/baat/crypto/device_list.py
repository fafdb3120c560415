"""Signed device lists and link codes: an account with several devices.

**Device list.** An account's devices are ``(device id, Ed25519 identity key)`` pairs. The list
is signed by the *account identity key*: the Ed25519 identity key of the account's first
(primary) device. The design follows the WhatsApp Encryption Overview (technical white
paper, version 8, 2024-08-19), sections "Terms" and "Client Registration": the primary
device's identity key signs the "Signed Device List Data" (the linked devices at the time
of signing, with a domain prefix, 0x0602 there) and peers check it before they encrypt to a
device. Here the list carries a version that only grows, so a server cannot hand out an
older list (rollback) without the peer noticing (:func:`check_supersedes`).

Limits of this choice (see docs/GROUPS.md): the primary device is the only authority; a
linked device cannot add or remove devices; losing the primary device means registering a
new account identity (and new safety numbers). The list's timestamp is informational; the
version orders lists.

**Link code.** A new device is linked with a one-time code shown by the primary device: a
random secret of 160 bits, the account id and the server URL, as text (RFC 4648 base32 in
groups of four) or as the bytes of a QR code. (In the white paper the companion shows the QR
code with its "Linking Secret Key"; here the primary shows it, since it alone knows the
account and the server.) Both devices then show :func:`link_sas`, a short string derived from
the secret and both identity keys, which the user compares.

Everything here is a pure function over bytes; nothing is stored or sent.
"""

from __future__ import annotations

import base64
import secrets
import struct
from collections.abc import Iterable
from typing import Final

import msgspec

from baat.crypto._errors import CryptoError, InvalidKey, MalformedMessage, UnsupportedVersion
from baat.crypto._primitives import (
    ED25519_KEY_BYTES,
    ED25519_SIGNATURE_BYTES,
    constant_time_equal,
    ed25519_verify,
    hkdf_sha256,
    sha512,
)
from baat.crypto.keys import IdentityKeyPair

__all__ = [
    "DEVICE_LIST_FORMAT_VERSION",
    "LINK_CODE_FORMAT_VERSION",
    "LINK_SECRET_BYTES",
    "MAX_DEVICES",
    "DeviceEntry",
    "DeviceList",
    "DeviceListRollback",
    "InvalidDeviceList",
    "InvalidLinkCode",
    "LinkCode",
    "check_supersedes",
    "link_sas",
    "sign_device_list",
    "verify_device_list",
]

DEVICE_LIST_FORMAT_VERSION: Final = 1
LINK_CODE_FORMAT_VERSION: Final = 1
MAX_DEVICES: Final = 64
LINK_SECRET_BYTES: Final = 20
"""160 bits: above the 128 asked of a one-time secret, and a whole number of base32 groups."""
MAX_ACCOUNT_ID_BYTES: Final = 64
MAX_SERVER_URL_BYTES: Final = 255
_DEVICE_LIST_DOMAIN: Final = b"Baat device list v1\x00"
_LINK_SAS_INFO: Final = b"Baat link SAS v1\x00"
_CHECKSUM_BYTES: Final = 4
_LIST_HEAD = struct.Struct(">QQH")  # version, timestamp, count
_ENTRY = struct.Struct(">I32s")  # device id, Ed25519 identity key
_U64: Final = 2**64
_U32: Final = 2**32


class InvalidDeviceList(MalformedMessage, ValueError):
    """A device list that does not parse, is not in canonical form, or is inconsistent."""


class DeviceListRollback(CryptoError):
    """A device list older than one already seen, or a different list with the same version."""


class InvalidLinkCode(MalformedMessage, ValueError):
    """A link code that does not parse, fails its checksum, or has invalid fields."""


class DeviceEntry(msgspec.Struct, frozen=True):
    device_id: int
    identity_key: bytes
    """The device's Ed25519 identity key (32 bytes)."""


class DeviceList(msgspec.Struct, frozen=True, kw_only=True):
    """An account's devices at one version. Build with :meth:`build` (sorts the entries)."""

    account_id: str
    version: int
    """Grows by at least one with every change; a peer refuses anything older."""
    devices: tuple[DeviceEntry, ...]
    """Sorted by device id, ids and keys unique."""
    timestamp: int
    """Seconds since the epoch when the primary device signed it (informational)."""

    @classmethod
    def build(
        cls,
        account_id: str,
        version: int,
        devices: Iterable[tuple[int, bytes]],
        timestamp: int,
    ) -> DeviceList:
        """A list in canonical order.

        Raises:
            InvalidDeviceList: any field out of range (see :meth:`encode`).
        """
        entries = tuple(DeviceEntry(d, k) for d, k in sorted(devices))
        result = cls(account_id=account_id, version=version, devices=entries, timestamp=timestamp)
        result.encode()  # validates
        return result

    def identity_key(self, device_id: int) -> bytes | None:
        """The identity key of ``device_id``, or ``None`` if it is not listed."""
        for entry in self.devices:
            if entry.device_id == device_id:
                return entry.identity_key
        return None

    def device_ids(self) -> tuple[int, ...]:
        return tuple(e.device_id for e in self.devices)

    def encode(self) -> bytes:
        """The canonical body that is signed (see docs/GROUPS.md for the layout).

        Raises:
            InvalidDeviceList: empty or over-long account id, version or timestamp out of
                range, no device or more than :data:`MAX_DEVICES`, entries not sorted by
                device id, a repeated id or key, or a key that is not 32 bytes.
        """
        account = _account_bytes(self.account_id, InvalidDeviceList)
        if not (0 <= self.version < _U64 and 0 <= self.timestamp < _U64):
            raise InvalidDeviceList("version or timestamp out of range")
        if not 1 <= len(self.devices) <= MAX_DEVICES:
            raise InvalidDeviceList(f"a device list has 1 to {MAX_DEVICES} devices")
        parts = [bytes([len(account)]), account]
        parts.append(_LIST_HEAD.pack(self.version, self.timestamp, len(self.devices)))
        previous = -1
        keys: set[bytes] = set()
        for entry in self.devices:
            if not previous < entry.device_id < _U32:
                raise InvalidDeviceList("device ids must be unique, sorted and 32-bit")
            if len(entry.identity_key) != ED25519_KEY_BYTES or entry.identity_key in keys:
                raise InvalidDeviceList("identity keys must be unique 32-byte Ed25519 keys")
            previous = entry.device_id
            keys.add(entry.identity_key)
            parts.append(_ENTRY.pack(entry.device_id, entry.identity_key))
        return b"".join(parts)

    @classmethod
    def decode(cls, body: bytes) -> DeviceList:
        """Inverse of :meth:`encode`; refuses anything that would not re-encode identically.

        Raises:
            InvalidDeviceList: the bytes are not a canonical device list body.
        """
        try:
            n = body[0]
            account_id = body[1 : 1 + n].decode("utf-8")
            offset = 1 + n
            version, timestamp, count = _LIST_HEAD.unpack_from(body, offset)
            offset += _LIST_HEAD.size
            entries = tuple(
                DeviceEntry(*_ENTRY.unpack_from(body, offset + i * _ENTRY.size))
                for i in range(count)
            )
        except (IndexError, UnicodeDecodeError, struct.error) as exc:
            raise InvalidDeviceList("not a device list") from exc
        result = cls(account_id=account_id, version=version, devices=entries, timestamp=timestamp)
        if result.encode() != body:
            raise InvalidDeviceList("not a canonical device list")
        return result


def sign_device_list(account_identity: IdentityKeyPair, device_list: DeviceList) -> bytes:
    """Sign ``device_list`` with the account identity key (the primary device's).

    Returns ``format:u8 (=1) || body || signature:64`` where the signature is Ed25519 over
    ``"Baat device list v1\\0" || format || body``.

    Raises:
        InvalidDeviceList: the list is invalid, or does not contain the signing key (the
            primary device is always listed).
    """
    body = device_list.encode()
    if not any(
        constant_time_equal(e.identity_key, account_identity.identity_key)
        for e in device_list.devices
    ):
        raise InvalidDeviceList("the account identity key must be one of the listed devices")
    signed = bytes([DEVICE_LIST_FORMAT_VERSION]) + body
    return signed + account_identity.sign(_DEVICE_LIST_DOMAIN + signed)


def verify_device_list(
    account_identity_key: bytes, blob: bytes, *, account_id: str | None = None
) -> DeviceList:
    """Check a signed device list against the account identity key the caller trusts.

    Only the account identity key is accepted as a signer: a list signed by a linked device
    is refused like any other bad signature.

    Raises:
        UnsupportedVersion: unknown format byte.
        InvalidSignature: the signature does not verify under ``account_identity_key``.
        InvalidDeviceList: the body does not parse, the account id is not ``account_id``
            (when given), or the signing key is not among the devices.
        InvalidKey: ``account_identity_key`` is not 32 bytes.
    """
    if len(account_identity_key) != ED25519_KEY_BYTES:
        raise InvalidKey("an account identity key is 32 bytes")
    if not blob:
        raise InvalidDeviceList("empty device list")
    if blob[0] != DEVICE_LIST_FORMAT_VERSION:
        raise UnsupportedVersion(f"device list format {blob[0]} is not supported")
    if len(blob) < 1 + ED25519_SIGNATURE_BYTES + 1:
        raise InvalidDeviceList("device list too short")
    signed, signature = blob[:-ED25519_SIGNATURE_BYTES], blob[-ED25519_SIGNATURE_BYTES:]
    ed25519_verify(account_identity_key, signature, _DEVICE_LIST_DOMAIN + signed)
    device_list = DeviceList.decode(signed[1:])
    if account_id is not None and device_list.account_id != account_id:
        raise InvalidDeviceList("the device list is for another account")
    if not any(
        constant_time_equal(e.identity_key, account_identity_key) for e in device_list.devices
    ):
        raise InvalidDeviceList("the account identity key is not among the devices")
    return device_list


def check_supersedes(last_seen: int | DeviceList | None, new: DeviceList) -> bool:
    """Rollback protection: whether ``new`` replaces what was seen before.

    ``last_seen`` is the last accepted list (or only its version; ``None`` if none). Returns
    ``True`` if ``new`` is newer and should be stored, ``False`` if it is the same list again.

    Raises:
        DeviceListRollback: ``new`` is older, or (when ``last_seen`` is a list) has the same
            version but other content, which only a misbehaving signer produces.
    """
    if last_seen is None:
        return True
    seen_version = last_seen if isinstance(last_seen, int) else last_seen.version
    if new.version > seen_version:
        return True
    if new.version < seen_version:
        raise DeviceListRollback(f"device list version {new.version} < {seen_version}")
    if isinstance(last_seen, DeviceList) and last_seen != new:
        raise DeviceListRollback(f"two different device lists with version {new.version}")
    return False


# -- Link codes -------------------------------------------------------------------------------


class LinkCode(msgspec.Struct, frozen=True, kw_only=True):
    """A one-time code from the primary device that lets a new device join the account.

    Secret: whoever reads it can try to link. Use it once and for a few minutes only.
    """

    secret: bytes
    account_id: str
    server_url: str

    @classmethod
    def generate(cls, account_id: str, server_url: str) -> LinkCode:
        """A fresh code with a random 160-bit secret.

        Raises:
            InvalidLinkCode: the account id or the URL is empty, too long, or the URL is not
                ``http(s)://``.
        """
        code = cls(
            secret=secrets.token_bytes(LINK_SECRET_BYTES),
            account_id=account_id,
            server_url=server_url,
        )
        code.to_bytes()  # validates
        return code

    def to_bytes(self) -> bytes:
        """The QR payload: ``format:u8 (=1) || secret:20 || len:u8 || account id || len:u8
        || server URL || checksum:4`` (checksum = first 4 bytes of SHA-512 of the rest).

        Raises:
            InvalidLinkCode: a field is out of range (see :meth:`generate`).
        """
        if len(self.secret) != LINK_SECRET_BYTES:
            raise InvalidLinkCode(f"a link secret is {LINK_SECRET_BYTES} bytes")
        account = _account_bytes(self.account_id, InvalidLinkCode)
        url = self.server_url.encode("utf-8")
        if not 0 < len(url) <= MAX_SERVER_URL_BYTES or not self.server_url.startswith(
            ("https://", "http://")
        ):
            raise InvalidLinkCode("the server URL must be an http(s) URL of at most 255 bytes")
        payload = b"".join(
            [
                bytes([LINK_CODE_FORMAT_VERSION]),
                self.secret,
                bytes([len(account)]),
                account,
                bytes([len(url)]),
                url,
            ]
        )
        return payload + sha512(payload)[:_CHECKSUM_BYTES]

    qr_payload = to_bytes

    @classmethod
    def from_bytes(cls, data: bytes) -> LinkCode:
        """Inverse of :meth:`to_bytes`.

        Raises:
            InvalidLinkCode: bad checksum, length or fields (``UnsupportedVersion`` is not
                raised: an unknown format byte is reported as ``InvalidLinkCode`` too, since
                a typo is far likelier than a newer format).
        """
        payload, checksum = data[:-_CHECKSUM_BYTES], data[-_CHECKSUM_BYTES:]
        if len(data) <= _CHECKSUM_BYTES or not constant_time_equal(
            sha512(payload)[:_CHECKSUM_BYTES], checksum
        ):
            raise InvalidLinkCode("the link code is mistyped or damaged (checksum)")
        if payload[0] != LINK_CODE_FORMAT_VERSION:
            raise InvalidLinkCode(f"link code format {payload[0]} is not supported")
        try:
            offset = 1 + LINK_SECRET_BYTES
            secret = payload[1:offset]
            n = payload[offset]
            account_id = payload[offset + 1 : offset + 1 + n].decode("utf-8")
            offset += 1 + n
            m = payload[offset]
            server_url = payload[offset + 1 : offset + 1 + m].decode("utf-8")
        except (IndexError, UnicodeDecodeError) as exc:
            raise InvalidLinkCode("not a link code") from exc
        code = cls(secret=secret, account_id=account_id, server_url=server_url)
        if code.to_bytes() != data:
            raise InvalidLinkCode("not a canonical link code")
        return code

    def to_text(self) -> str:
        """RFC 4648 base32 of :meth:`to_bytes`, without padding, in dash-separated groups of 4.

        Raises:
            InvalidLinkCode: a field is out of range.
        """
        text = base64.b32encode(self.to_bytes()).decode("ascii").rstrip("=")
        return "-".join(text[i : i + 4] for i in range(0, len(text), 4))

    @classmethod
    def from_text(cls, text: str) -> LinkCode:
        """Inverse of :meth:`to_text`; ignores case, spaces and dashes.

        Raises:
            InvalidLinkCode: not base32, or the decoded bytes are not a link code.
        """
        compact = "".join(text.split()).replace("-", "").upper()
        try:
            data = base64.b32decode(compact + "=" * (-len(compact) % 8))
        except ValueError as exc:
            raise InvalidLinkCode("a link code is base32 (letters A-Z, digits 2-7)") from exc
        return cls.from_bytes(data)

    def __repr__(self) -> str:
        return f"LinkCode(account_id={self.account_id!r}, server_url={self.server_url!r})"


def link_sas(code: LinkCode, primary_identity_key: bytes, new_identity_key: bytes) -> str:
    """The short authentication string both devices show while linking: ``"123 456"``.

    ``HKDF-SHA256(IKM = secret, salt = zeros, info = "Baat link SAS v1\\0" || len || account id
    || primary key || new key, L = 8)`` as a number modulo 10**6. Equal strings mean both
    devices used the same secret and saw the same two identity keys; an attacker who
    replaced a key matches by chance with probability 10**-6.

    Raises:
        InvalidKey: an identity key is not 32 bytes.
    """
    if len(primary_identity_key) != ED25519_KEY_BYTES or len(new_identity_key) != (
        ED25519_KEY_BYTES
    ):
        raise InvalidKey("identity keys are 32 bytes")
    account = code.account_id.encode("utf-8")
    info = b"".join(
        [_LINK_SAS_INFO, bytes([len(account)]), account, primary_identity_key, new_identity_key]
    )
    number = int.from_bytes(hkdf_sha256(code.secret, b"", info, 8), "big") % 1_000_000
    text = f"{number:06d}"
    return f"{text[:3]} {text[3:]}"


def _account_bytes(account_id: str, error: type[MalformedMessage]) -> bytes:
    account = account_id.encode("utf-8")
    if not 0 < len(account) <= MAX_ACCOUNT_ID_BYTES:
        raise error(f"an account id is 1 to {MAX_ACCOUNT_ID_BYTES} bytes of UTF-8")
    return account
