"""Who a message comes from, and how a large fan-out is sent (docs/GROUPS.md §2 and §4).

* A new sender's self-given name counts only when the server confirms it.
* A sender's identity key must be the trusted one: the account identity key for the primary
  device (a change holds its messages until the user compares safety numbers), the key the
  signed device list gives for any other device (anything else is refused).
* A message too large for one ``Send`` frame is split by account.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import msgspec
from sqlalchemy import Connection

from baat.client.core import UNCONFIRMED, ClientError, Incident, _content_decoder
from baat.client.store import Contact
from baat.crypto import CryptoError, DecryptionError
from baat.proto import Deliver, OutgoingEnvelope

if TYPE_CHECKING:
    from baat.client.core import ClientCore, Content


# Under the server's default frame (256 KiB) and recipient (1024) limits, docs/PROTOCOL.md.
SEND_BUDGET_BYTES = 192 * 1024
SEND_BUDGET_ENVELOPES = 1000


def split_send(envelopes: list[OutgoingEnvelope]) -> list[list[OutgoingEnvelope]]:
    by_account: dict[str, list[OutgoingEnvelope]] = {}
    for e in envelopes:
        by_account.setdefault(e.recipient_account, []).append(e)
    parts: list[list[OutgoingEnvelope]] = [[]]
    size = 0
    for group in by_account.values():
        extra = sum(len(e.content) + 64 for e in group)
        full = (
            size + extra > SEND_BUDGET_BYTES or len(parts[-1]) + len(group) > SEND_BUDGET_ENVELOPES
        )
        if parts[-1] and full:
            parts.append([])
            size = 0
        parts[-1].extend(group)
        size += extra
    return parts


async def name_of_new_sender(client: ClientCore, d: Deliver) -> str | None:
    """The name to give a sender who is not a contact yet, or None if it is one.

    A sender names itself inside the encrypted message, and anyone can claim any name.
    The claim is believed only if the server says that the name belongs to the sending
    account; otherwise the contact is shown as ``~name`` (unconfirmed), which no
    ``send NAME`` will ever match.
    """
    with client.store.transaction() as tx:
        if client.store.contact(tx, d.sender_account) is not None:
            return None
    # Decrypt once without keeping anything (rolled back) to read the claimed name.
    try:
        with client.store.engine.connect() as conn:
            _, plaintext = client._decrypt(conn, d, client.clock() // 1000)
            conn.rollback()
        claimed = _decode(plaintext).sender_name
    except (CryptoError, msgspec.DecodeError, msgspec.ValidationError):
        return None  # the real attempt reports it
    return await confirm_name(client, d.sender_account, claimed)


async def confirm_name(client: ClientCore, account_id: str, claimed: str) -> str:
    try:
        found, canonical, _ = await asyncio.wait_for(client.lookup(claimed), 10)
    except (ClientError, TimeoutError):
        found, canonical = "", claimed
    if found == account_id:
        return canonical
    client._incident(
        Incident(
            "unconfirmed_name",
            account_id,
            f"a new contact calls itself {claimed!r}, but the server does not confirm "
            f"that name; shown as '{_unconfirmed()}{claimed}'",
        )
    )
    return _unconfirmed() + claimed


def check_sender(
    client: ClientCore,
    tx: Connection,
    d: Deliver,
    identity: bytes,
    expected: bytes | None,
    content: Content,
    new_name: str | None,
) -> tuple[Contact, str]:
    """The sender as a contact, and "held" if its identity is not the one trusted.

    A device other than the primary must be in the account's signed device list with
    this identity key (docs/GROUPS.md §2.1); the primary's key is the account's.

    Raises:
        DecryptionError: a secondary device that the signed list does not name.
    """
    contact = client.store.contact(tx, d.sender_account)
    primary = d.sender_device == 1
    if not primary and expected != identity:
        raise DecryptionError(
            f"device {d.sender_device} is not in the signed device list of its account"
        )
    if contact is None:
        name = new_name or _unconfirmed() + (content.sender_name or "unknown")
        key = identity if primary else client.devices.account_key(tx, d.sender_account)
        contact = Contact(d.sender_account, name, key or identity)
        client.store.put_contact(tx, contact)
        return contact, "new"
    if not primary or contact.identity_key == identity:
        # "new" until shown by 'baat sync' or the app; held while a changed identity
        # waits for the user's comparison.
        return contact, "held" if contact.identity_changed else "new"
    client._incident(
        Incident(
            "identity_changed",
            d.sender_account,
            f"{contact.username}'s safety number changed; a message is held "
            "until you compare it and run 'baat verify'",
        )
    )
    # Keep the new identity for the safety number the user will compare.
    contact = Contact(contact.account_id, contact.username, identity, False, True)
    client.store.put_contact(tx, contact)
    client.store.drop_sessions(tx, d.sender_account)
    return contact, "held"


def _decode(plaintext: bytes) -> Content:
    return _content_decoder.decode(plaintext)


def _unconfirmed() -> str:
    return UNCONFIRMED
