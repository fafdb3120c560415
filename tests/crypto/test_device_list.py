"""Signed device lists (signature, canonical form, rollback) and link codes."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baat.crypto import (
    CryptoError,
    DeviceEntry,
    DeviceList,
    DeviceListRollback,
    IdentityKeyPair,
    InvalidDeviceList,
    InvalidKey,
    InvalidLinkCode,
    InvalidSignature,
    LinkCode,
    MalformedMessage,
    UnsupportedVersion,
    check_supersedes,
    link_sas,
    sign_device_list,
    verify_device_list,
)
from baat.crypto.device_list import _DEVICE_LIST_DOMAIN, LINK_SECRET_BYTES, MAX_DEVICES
from crypto.crypto_helpers import NOW

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ACCOUNT = "5f0c3a9e1b2d4c6e8a0b1c2d3e4f5a6b"
PRIMARY = IdentityKeyPair.generate()
LINKED = IdentityKeyPair.generate()
THIRD = IdentityKeyPair.generate()


def devices(version: int = 3, *extra: IdentityKeyPair) -> DeviceList:
    entries = [(1, PRIMARY.identity_key), (2, LINKED.identity_key)]
    entries += [(10 + i, k.identity_key) for i, k in enumerate(extra)]
    return DeviceList.build(ACCOUNT, version, reversed(entries), NOW)


def test_sign_and_verify() -> None:
    listed = devices()
    assert listed.device_ids() == (1, 2)  # build sorts
    blob = sign_device_list(PRIMARY, listed)
    assert blob[0] == 1 and len(blob) == 1 + len(listed.encode()) + 64
    assert verify_device_list(PRIMARY.identity_key, blob) == listed
    assert verify_device_list(PRIMARY.identity_key, blob, account_id=ACCOUNT) == listed
    assert sign_device_list(PRIMARY, listed) == blob  # deterministic
    assert listed.identity_key(2) == LINKED.identity_key
    assert listed.identity_key(3) is None


def test_wrong_key_or_account() -> None:
    blob = sign_device_list(PRIMARY, devices())
    with pytest.raises(InvalidSignature):
        verify_device_list(LINKED.identity_key, blob)
    with pytest.raises(InvalidDeviceList, match="another account"):
        verify_device_list(PRIMARY.identity_key, blob, account_id="someone else")
    with pytest.raises(InvalidKey):
        verify_device_list(b"short", blob)


def test_linked_device_cannot_sign() -> None:
    """Only the account identity key vouches for devices: a linked device adding one fails."""
    forged = sign_device_list(LINKED, devices(4, THIRD))
    with pytest.raises(InvalidSignature):
        verify_device_list(PRIMARY.identity_key, forged)


def test_signer_must_be_listed() -> None:
    without_primary = DeviceList.build(ACCOUNT, 1, [(2, LINKED.identity_key)], NOW)
    with pytest.raises(InvalidDeviceList):
        sign_device_list(PRIMARY, without_primary)
    # A valid signature of the primary over a list without it is refused too.
    signed = b"\x01" + without_primary.encode()
    blob = signed + PRIMARY.sign(_DEVICE_LIST_DOMAIN + signed)
    with pytest.raises(InvalidDeviceList, match="not among"):
        verify_device_list(PRIMARY.identity_key, blob)


def test_every_byte_is_covered() -> None:
    blob = sign_device_list(PRIMARY, devices(9, THIRD))
    for position in range(len(blob)):
        mutated = bytearray(blob)
        mutated[position] ^= 0x01
        with pytest.raises(CryptoError):
            verify_device_list(PRIMARY.identity_key, bytes(mutated))
    for cut in (0, 1, 64, len(blob) - 1):
        with pytest.raises(CryptoError):
            verify_device_list(PRIMARY.identity_key, blob[:cut])
    with pytest.raises(InvalidSignature):
        verify_device_list(PRIMARY.identity_key, blob + b"\x00")
    with pytest.raises(UnsupportedVersion):
        verify_device_list(PRIMARY.identity_key, b"\x02" + blob[1:])


@SETTINGS
@given(st.binary(max_size=400))
def test_arbitrary_bodies(body: bytes) -> None:
    try:
        decoded = DeviceList.decode(body)
    except InvalidDeviceList:
        return
    assert decoded.encode() == body  # only canonical bodies decode


def test_canonical_form_is_enforced() -> None:
    key = PRIMARY.identity_key
    cases = [
        DeviceList(account_id=ACCOUNT, version=1, devices=(), timestamp=NOW),
        DeviceList(account_id="", version=1, devices=(DeviceEntry(1, key),), timestamp=NOW),
        DeviceList(account_id="x" * 65, version=1, devices=(DeviceEntry(1, key),), timestamp=NOW),
        DeviceList(account_id=ACCOUNT, version=-1, devices=(DeviceEntry(1, key),), timestamp=NOW),
        DeviceList(account_id=ACCOUNT, version=2**64, devices=(DeviceEntry(1, key),), timestamp=0),
        DeviceList(
            account_id=ACCOUNT,
            version=1,
            devices=(DeviceEntry(2, key), DeviceEntry(1, LINKED.identity_key)),
            timestamp=NOW,
        ),
        DeviceList(
            account_id=ACCOUNT,
            version=1,
            devices=(DeviceEntry(1, key), DeviceEntry(1, LINKED.identity_key)),
            timestamp=NOW,
        ),
        DeviceList(
            account_id=ACCOUNT,
            version=1,
            devices=(DeviceEntry(1, key), DeviceEntry(2, key)),
            timestamp=NOW,
        ),
        DeviceList(account_id=ACCOUNT, version=1, devices=(DeviceEntry(1, b"k"),), timestamp=NOW),
        DeviceList(
            account_id=ACCOUNT, version=1, devices=(DeviceEntry(2**32, key),), timestamp=NOW
        ),
    ]
    for case in cases:
        with pytest.raises(InvalidDeviceList):
            case.encode()
    many = [(i, IdentityKeyPair.generate().identity_key) for i in range(MAX_DEVICES + 1)]
    with pytest.raises(InvalidDeviceList):
        DeviceList.build(ACCOUNT, 1, many, NOW)
    assert len(DeviceList.build(ACCOUNT, 1, many[:MAX_DEVICES], NOW).devices) == MAX_DEVICES


def test_rollback_protection() -> None:
    v3, v4 = devices(3), devices(4, THIRD)
    assert check_supersedes(None, v3)
    assert check_supersedes(3, v4)
    assert check_supersedes(v3, v4)
    assert not check_supersedes(3, v3)
    assert not check_supersedes(v3, v3)
    with pytest.raises(DeviceListRollback):
        check_supersedes(4, v3)
    with pytest.raises(DeviceListRollback):
        check_supersedes(v4, v3)
    # Same version, other content: only a misbehaving primary signs that.
    with pytest.raises(DeviceListRollback, match="two different"):
        check_supersedes(v3, devices(3, THIRD))


def test_removed_device_is_gone_from_newer_list() -> None:
    old = verify_device_list(PRIMARY.identity_key, sign_device_list(PRIMARY, devices(5, THIRD)))
    new_list = DeviceList.build(ACCOUNT, 6, [(1, PRIMARY.identity_key)], NOW + 10)
    new = verify_device_list(PRIMARY.identity_key, sign_device_list(PRIMARY, new_list))
    assert check_supersedes(old, new)
    assert new.device_ids() == (1,)
    # A server replaying the older list is refused.
    with pytest.raises(DeviceListRollback):
        check_supersedes(new, old)


# -- Link codes -------------------------------------------------------------------------------


def test_link_code_round_trips() -> None:
    code = LinkCode.generate(ACCOUNT, "https://baat.example:8443")
    assert len(code.secret) == LINK_SECRET_BYTES >= 16
    assert LinkCode.from_bytes(code.qr_payload()) == code
    text = code.to_text()
    groups = text.split("-")
    assert all(len(g) == 4 for g in groups[:-1]) and 1 <= len(groups[-1]) <= 4
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567-")
    assert LinkCode.from_text(text) == code
    assert LinkCode.from_text(" " + text.lower().replace("-", " ") + "\n") == code
    assert code.secret.hex() not in repr(code)
    assert LinkCode.generate(ACCOUNT, "https://baat.example").secret != code.secret


def test_link_code_typos_are_caught() -> None:
    code = LinkCode.generate(ACCOUNT, "http://127.0.0.1:8080")
    text = code.to_text()
    for i, ch in enumerate(text):
        if ch == "-":
            continue
        typo = text[:i] + ("A" if ch != "A" else "B") + text[i + 1 :]
        with pytest.raises(InvalidLinkCode):
            LinkCode.from_text(typo)
    for bad in ("", "!!!!", "AAAA-AAAA", text[:-4]):
        with pytest.raises(InvalidLinkCode):
            LinkCode.from_text(bad)
    payload = code.to_bytes()
    with pytest.raises(InvalidLinkCode):
        LinkCode.from_bytes(payload[:-1] + bytes([payload[-1] ^ 1]))
    assert issubclass(InvalidLinkCode, MalformedMessage)


@SETTINGS
@given(st.binary(max_size=120))
def test_arbitrary_link_payloads(blob: bytes) -> None:
    try:
        code = LinkCode.from_bytes(blob)
    except InvalidLinkCode:
        return
    assert code.to_bytes() == blob


def test_link_code_fields_are_validated() -> None:
    for account, url in [
        ("", "https://a"),
        ("x" * 65, "https://a"),
        (ACCOUNT, "ftp://a"),
        (ACCOUNT, "https://" + "a" * 250),
        (ACCOUNT, ""),
    ]:
        with pytest.raises(InvalidLinkCode):
            LinkCode.generate(account, url)
    code = LinkCode.generate(ACCOUNT, "https://a")
    with pytest.raises(InvalidLinkCode):
        msgspec.structs.replace(code, secret=b"short").to_bytes()


def test_short_authentication_string() -> None:
    code = LinkCode.generate(ACCOUNT, "https://baat.example")
    on_primary = link_sas(code, PRIMARY.identity_key, LINKED.identity_key)
    scanned = LinkCode.from_text(code.to_text())
    on_new_device = link_sas(scanned, PRIMARY.identity_key, LINKED.identity_key)
    assert on_primary == on_new_device
    assert len(on_primary) == 7 and on_primary[3] == " "
    assert on_primary.replace(" ", "").isdigit()
    # A substituted key or another secret gives (almost surely) another string.
    assert link_sas(code, PRIMARY.identity_key, THIRD.identity_key) != on_primary
    assert link_sas(code, LINKED.identity_key, PRIMARY.identity_key) != on_primary
    other = LinkCode.generate(ACCOUNT, "https://baat.example")
    assert link_sas(other, PRIMARY.identity_key, LINKED.identity_key) != on_primary
    with pytest.raises(InvalidKey):
        link_sas(code, b"short", LINKED.identity_key)
