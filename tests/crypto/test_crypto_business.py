"""Signed business profiles (baat.crypto.business, docs/BUSINESS.md §2 and §4)."""

from __future__ import annotations

import msgspec
import pytest

from baat.crypto import IdentityKeyPair
from baat.crypto.business import (
    BusinessProfile,
    InvalidBusinessProfile,
    Processor,
    disclosure_digest,
    named_devices,
    read_unverified,
    sign_business_profile,
    unnamed_devices,
    verify_business_profile,
)

KEY = IdentityKeyPair.generate()
HOST = Processor("CloudDesk GmbH", "DE", "host", (2, 3))
PROFILE = BusinessProfile(
    v=1,
    account_id="in-0123456789abcdef",
    version=3,
    display_name="Shop",
    entity="Shop Retail Pvt Ltd",
    country="IN",
    contact="help@shop.example",
    purposes=("answering questions about your orders",),
    retention="90 days",
    devices=(1,),
    processors=(HOST,),
)


def test_a_signed_profile_verifies_only_with_the_account_key() -> None:
    blob = sign_business_profile(KEY, PROFILE)
    assert verify_business_profile(KEY.identity_key, blob, account_id=PROFILE.account_id) == PROFILE
    assert read_unverified(blob) == PROFILE
    with pytest.raises(InvalidBusinessProfile):
        verify_business_profile(IdentityKeyPair.generate().identity_key, blob)
    with pytest.raises(InvalidBusinessProfile):
        verify_business_profile(KEY.identity_key, blob, account_id="in-somebodyelse")
    # Any byte changed anywhere: refused, never an exception of another kind.
    for i in range(0, len(blob), 7):
        bad = bytearray(blob)
        bad[i] ^= 0x01
        with pytest.raises(InvalidBusinessProfile):
            verify_business_profile(KEY.identity_key, bytes(bad))
    for junk in (b"", b"\x00" * 40, blob[:-1], blob + b"\x00"):
        with pytest.raises(InvalidBusinessProfile):
            verify_business_profile(KEY.identity_key, junk)


@pytest.mark.parametrize(
    "change",
    [
        {"country": "India"},
        {"purposes": ()},
        {"entity": ""},
        {"devices": (2,)},  # the primary signs, so it is the business's own
        {"processors": (Processor("X", "DE", "host", ()),)},
        {"processors": (Processor("X", "DE", "host", (1,)),)},  # device named twice
        {"version": 0},
        {"v": 2},
    ],
)
def test_malformed_profiles_are_not_signed(change: dict[str, object]) -> None:
    bad = msgspec.structs.replace(PROFILE, **change)
    with pytest.raises(InvalidBusinessProfile):
        sign_business_profile(KEY, bad)


def test_named_devices_and_the_ones_refused() -> None:
    assert named_devices(PROFILE) == {1, 2, 3}
    assert unnamed_devices(PROFILE, {1, 2, 3}) == []
    assert unnamed_devices(PROFILE, {1, 2, 4, 5}) == [4, 5]


def test_the_disclosure_digest_follows_who_can_read_what() -> None:
    digest = disclosure_digest(PROFILE)
    # Cosmetic or bookkeeping changes keep the acceptance valid...
    for same in (
        {"version": 4},
        {"display_name": "Shop!"},
        {"contact": "other@shop.example"},
        {"devices": (1, 4)},
        {"issued_at": 99},
    ):
        assert disclosure_digest(msgspec.structs.replace(PROFILE, **same)) == digest, same
    # ...what the user was told does not.
    for other in (
        {"processors": ()},
        {"processors": (HOST, Processor("Support Co", "US", "support desk", (5,)))},
        {"processors": (msgspec.structs.replace(HOST, country="US"),)},
        {"processors": (msgspec.structs.replace(HOST, devices=(2,)),)},
        {"entity": "Other Ltd"},
        {"country": "DE"},
        {"purposes": ("marketing",)},
        {"retention": "forever"},
    ):
        assert disclosure_digest(msgspec.structs.replace(PROFILE, **other)) != digest, other
