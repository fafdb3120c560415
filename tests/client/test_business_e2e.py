"""Business chats through a real server process (docs/BUSINESS.md): the disclosure before
the first message, acceptance with a signed receipt, a device the profile does not name
refused both ways, the hold when the business adds a processor, withdrawal."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from baat.client.business import BusinessChatReadOnly, DisclosureRequired
from baat.client.sdk import Client
from baat.privacy import receipts
from client.test_multidevice_support import account, link, texts, until
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


def held(client: Client, chat: str) -> list[str]:
    return [str(m.body.get("text")) for m in client.store.messages(chat=chat, status="held")]


def outbox_to(client: Client, account_id: str) -> int:
    return sum(1 for _, recipient, _ in client.store.outbox() if recipient == account_id)


async def test_disclosure_acceptance_named_devices_hold_and_withdrawal(
    tmp_path: Path, server: ServerProcess
) -> None:
    shop = await account(tmp_path, server.url, "shop")
    asha = await account(tmp_path, server.url, "asha")
    host: Client | None = None
    try:
        # A business that runs its own device only: it declares no host or processor.
        await shop.business.publish(
            display_name="Shop",
            entity="Shop Retail Pvt Ltd",
            country="IN",
            purposes=("answering questions about your orders",),
            retention="90 days after the last message",
        )
        card = (await asha.business.disclosure("shop")).to_json()
        assert card["state"] == "new" and card["verified"] is False
        assert [r["role"] for r in card["readers"]] == ["the business"]
        assert card["purpose"] == f"business-chat:{shop.info.account_id}"

        # Nothing goes before the user accepts.
        with pytest.raises(DisclosureRequired):
            await asha.send_text("shop", "hi")
        assert texts(asha, shop.info.account_id) == []

        accepted = await asha.business.accept("shop")
        assert accepted.state == "accepted" and accepted.receipt is not None
        async with httpx.AsyncClient(base_url=server.url) as http:
            jwks = (await http.get("/.well-known/baat/keys")).json()
        receipt = receipts.verify(accepted.receipt["receipt"], jwks)
        assert receipt.record["purpose"]["id"] == f"business-chat:{shop.info.account_id}"
        assert receipt.record["state"].endswith("ConsentGiven")
        names = [r["name"] for r in receipt.record["recipients"]]
        assert names and names[0].startswith("The businesses")

        await asha.send_text("shop", "where is order 17?")
        await until([shop, asha], lambda: "where is order 17?" in texts(shop))
        await shop.send_text("asha", "it ships today")
        await until([shop, asha], lambda: "it ships today" in texts(asha))
        assert held(asha, shop.info.account_id) == []

        # A host's device joins the account before the profile names it: refused both ways.
        host = await link(tmp_path, shop, "shop-host")
        assert host.info.device_id == 2
        await asha.send_text("shop", "anyone there?")
        assert outbox_to(asha, shop.info.account_id) == 1
        assert any("device_not_in_profile" in i.detail for i in asha.incidents)
        await host.send_text("asha", "hello from the host")
        await until([host, asha], lambda: any("not named" in i.detail for i in asha.incidents))
        assert "hello from the host" not in texts(asha)

        # The business names the host: the disclosure changed, the next message is held.
        await shop.business.publish(
            processors=(
                {"name": "CloudDesk GmbH", "country": "DE", "role": "host", "devices": (2,)},
            )
        )
        changed = (await asha.business.disclosure("shop")).to_json()
        assert changed["state"] == "changed"
        assert [(r["name"], r["country"]) for r in changed["readers"]][1] == (
            "CloudDesk GmbH",
            "DE",
        )
        mid = await asha.send_text("shop", "is it still you?")
        assert [m.status for m in asha.store.messages() if m.message_id == mid] == ["held"]
        await asha.flush_outbox()
        assert outbox_to(asha, shop.info.account_id) == 2
        assert "anyone there?" not in texts(shop) and "anyone there?" not in texts(host)

        # Accepted again: both queued messages reach the business and its host.
        await asha.business.accept("shop")
        want = {"anyone there?", "is it still you?"}
        await until(
            [shop, host, asha], lambda: want <= set(texts(host)) and want <= set(texts(shop))
        )
        assert outbox_to(asha, shop.info.account_id) == 0
        assert [m.status for m in asha.store.messages() if m.message_id == mid] == ["sent"]
        await host.send_text("asha", "CloudDesk here, on behalf of Shop")
        await until([host, asha], lambda: "CloudDesk here, on behalf of Shop" in texts(asha))

        # Withdrawn: read-only; what the business sends afterwards is held, not shown.
        withdrawal = await asha.business.withdraw("shop")
        assert (
            receipts.verify(withdrawal["receipt"], jwks)
            .record["state"]
            .endswith("ConsentWithdrawn")
        )
        with pytest.raises(BusinessChatReadOnly):
            await asha.send_text("shop", "one more thing")
        await shop.send_text("asha", "a new offer for you")
        await until([shop, asha], lambda: "a new offer for you" in held(asha, shop.info.account_id))
    finally:
        for c in (shop, asha, host):
            if c is not None:
                await c.close()


async def test_profile_is_checked_by_the_server_and_versions_only_grow(
    tmp_path: Path, server: ServerProcess
) -> None:
    from baat.crypto.business import BusinessProfile, sign_business_profile

    shop = await account(tmp_path, server.url, "shop")
    other = await account(tmp_path, server.url, "other")
    try:
        first = await shop.business.publish(entity="Shop Retail Pvt Ltd")
        assert first.version == 1
        headers = {"authorization": shop.credentials.header()}
        # Signed by another account's key: refused with a stable code.
        forged = BusinessProfile(**{**_fields(first), "version": 5})
        blob = sign_business_profile(other.identity, forged)
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
            import base64

            r = await http.put(
                "/v1/business/profile", json={"signed_profile": base64.b64encode(blob).decode()}
            )
            assert r.status_code == 400
            assert r.json()["error"]["code"] == "invalid_business_profile"
            r = await http.put("/v1/business/profile", json={"signed_profile": "***"})
            assert r.json()["error"]["code"] == "invalid_request"
            same = sign_business_profile(shop.identity, first)
            r = await http.put(
                "/v1/business/profile", json={"signed_profile": base64.b64encode(same).decode()}
            )
            assert r.status_code == 409 and r.json()["error"]["code"] == "stale_version"
            r = await http.get(f"/v1/business/{other.info.account_id}")
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_a_business"
        # A person is not a business: sending needs no disclosure.
        await shop.send_text("other", "hello")
        await until([shop, other], lambda: "hello" in texts(other))
    finally:
        await shop.close()
        await other.close()


def _fields(p: object) -> dict[str, object]:
    import msgspec

    return msgspec.structs.asdict(p)  # type: ignore[arg-type]
