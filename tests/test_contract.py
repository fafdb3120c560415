"""The contract both sides share (baat.contract): the bearer header and the signed proofs."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from baat.contract import (
    BadCredentials,
    DeviceCredentials,
    link_message,
    parse_header,
    registration_message,
)

_ACCOUNT = st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=32)
_TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.", min_size=1)


@given(_ACCOUNT, st.integers(min_value=0, max_value=2**31), _TOKEN)
def test_the_header_the_client_sends_is_the_one_the_server_parses(
    account: str, device: int, token: str
) -> None:
    creds = DeviceCredentials(account, device, token)
    assert parse_header(creds.header()) == creds


@pytest.mark.parametrize(
    "value",
    [None, "", "Basic abc", "Bearer ", "Bearer a.b.c", "Bearer a.1", "bearer a.1.t"],
)
def test_a_missing_or_malformed_header_is_refused(value: str | None) -> None:
    with pytest.raises(BadCredentials):
        parse_header(value)


def test_a_registration_proof_never_stands_for_a_link_proof() -> None:
    key = Ed25519PrivateKey.generate()
    ik, dh = b"\x01" * 32, b"\x02" * 32
    proof = key.sign(registration_message("alice", ik, dh))
    key.public_key().verify(proof, registration_message("alice", ik, dh))
    # The same text as a link code: the domain strings keep the two apart.
    with pytest.raises(InvalidSignature):
        key.public_key().verify(proof, link_message("alice", ik, dh))
    with pytest.raises(InvalidSignature):
        key.public_key().verify(proof, registration_message("alicf", ik, dh))
