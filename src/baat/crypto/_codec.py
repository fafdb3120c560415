"""MessagePack encoding of versioned state records (ratchet, session, private keys).

Every record is a msgspec ``Struct`` whose first field is ``version``. Decoding reads the
version alone first, so that a later release can keep the old ``Struct`` for each past
version and migrate it (the fixtures of version 1 under ``tests/vectors`` guard this).

Live key objects (:class:`X25519KeyPair`) are stored as their 32 raw private bytes.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from baat.crypto._errors import CryptoError, InvalidState
from baat.crypto._primitives import X25519KeyPair

T = TypeVar("T", bound=msgspec.Struct)


class _VersionProbe(msgspec.Struct):
    version: int = -1


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, X25519KeyPair):
        return obj.private_bytes()
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


def _dec_hook(type_: type, obj: Any) -> Any:
    if type_ is X25519KeyPair and isinstance(obj, bytes):
        return X25519KeyPair.from_private_bytes(obj)
    raise NotImplementedError(f"cannot decode {type_.__name__}")


_ENCODER = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_PROBE = msgspec.msgpack.Decoder(_VersionProbe)
_DECODERS: dict[type, msgspec.msgpack.Decoder[Any]] = {}


def encode_record(record: msgspec.Struct) -> bytes:
    return _ENCODER.encode(record)


def decode_record(data: bytes, type_: type[T], version: int) -> T:
    """Decode ``data`` as ``type_``, which must be at ``version``.

    Raises:
        InvalidState: the bytes do not decode, or carry another version.
    """
    try:
        found = _PROBE.decode(data).version
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as exc:
        raise InvalidState(f"not a {type_.__name__} record") from exc
    if found != version:
        raise InvalidState(f"{type_.__name__} version {found} is not supported")
    decoder = _DECODERS.get(type_)
    if decoder is None:
        decoder = _DECODERS[type_] = msgspec.msgpack.Decoder(type_, dec_hook=_dec_hook)
    try:
        result: T = decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, CryptoError) as exc:
        raise InvalidState(f"corrupt {type_.__name__} record") from exc
    return result
