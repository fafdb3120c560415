"""Handing out prekey bundles and public account details, to local devices and to the other
regions alike."""

from __future__ import annotations

import base64
from typing import Any

from baat.proto import DeviceBundleRecord, ErrorCode, PrekeyRecord
from baat.server.storage.base import Account, Prekey
from baat.server.storage.sql import SqlStore


class NoSuchDevice(LookupError):
    """The account, or the one device asked for, does not exist."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def claim_bundles(
    store: SqlStore, account_id: str, device_id: int
) -> list[DeviceBundleRecord]:
    """One bundle per device of ``account_id`` (or only ``device_id`` when not 0), each taking
    a one-time prekey of each kind if any is left.

    Raises:
        NoSuchDevice: unknown account or device.
    """
    if device_id:
        if await store.device(account_id, device_id) is None:
            raise NoSuchDevice(
                ErrorCode.UNKNOWN_DEVICE, f"no such account or device: {account_id}/{device_id}"
            )
        ids = [device_id]
    else:
        ids = [d.device_id for d in await store.devices(account_id)]
        if not ids:
            raise NoSuchDevice(ErrorCode.UNKNOWN_ACCOUNT, f"no such account: {account_id}")
    records = []
    for one in ids:
        b = await store.claim_bundle(account_id, one)
        records.append(
            DeviceBundleRecord(
                device_id=one,
                identity_key=b.device.identity_key,
                identity_dh_key=b.device.identity_dh_key,
                identity_dh_sig=b.device.identity_dh_sig,
                signed_prekey=_record(b.signed_prekey),
                kem_last_resort=_record(b.kem_last_resort),
                one_time_curve=_record(b.one_time_curve),
                one_time_kem=_record(b.one_time_kem),
            )
        )
    return records


def _record(key: Prekey | None) -> PrekeyRecord | None:
    if key is None:
        return None
    return PrekeyRecord(key.kind, key.key_id, key.public_key, key.signature)


async def public_details(store: SqlStore, account: Account) -> dict[str, Any]:
    """What a lookup of ``account`` by username answers: id, name, devices, signed list."""
    devices = await store.devices(account.account_id)
    signed = await store.device_list(account.account_id)
    return {
        "account_id": account.account_id,
        "username": account.username,
        "devices": [d.device_id for d in devices],
        "device_list": None
        if signed is None
        else {"version": signed[0], "signed_list": base64.b64encode(signed[1]).decode()},
    }
