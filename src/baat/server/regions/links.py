"""Storage regions: which region an account lives in, and the calls to the other regions.

Each region is its own deployment (nodes, database, bus). An account's data is stored only
in its home region's database, and its id says which region that is (``in-3f9c…``), the
way an e-mail address names its domain: a node routes by the id alone, with no shared
directory to consult or to leak. Ids without a region prefix (made before regions existed)
belong to the region that holds them.

A node reaches another region through ``Regions``: lookups of a username, prekey bundles of
an account stored there, and sends to its accounts. Each call passes the transfer gate of
``baat.server.privacy.regions`` first on the side the data leaves from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx
import msgspec

from baat.privacy.errors import UndeclaredRegion, UndeclaredTransfer
from baat.proto import DeviceBundleRecord, ErrorCode, OutgoingEnvelope, RecipientResult
from baat.server.errors import SendRefused
from baat.server.privacy.regions import RegionGate
from baat.server.regions import wire
from baat.server.regions.ids import new_account_id, region_of
from baat.server.regions.nonces import SharedNonces
from baat.server.regions.signing import SIGNATURE_HEADER, RegionSigner, RegionVerifier

__all__ = ["RegionRefused", "RegionUnavailable", "Regions", "new_account_id", "region_of"]


class RegionUnavailable(Exception):
    """Another region could not be reached or refused for a reason of its own."""


class RegionRefused(Exception):
    """Another region answered with a typed refusal (``code`` is an ``ErrorCode`` value)."""

    def __init__(self, code: str, message: str, retry_after_ms: int = 0) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms


class Regions:
    """This node's view of the other regions: ``peers`` maps region id to base URL and
    ``peer_keys`` region id to its public key; ``signer`` holds this region's private key
    (``baat.server.regions.signing``)."""

    def __init__(
        self,
        local: str,
        peers: Mapping[str, str],
        signer: RegionSigner | None,
        peer_keys: Mapping[str, bytes],
        gate: RegionGate,
        *,
        timeout: float = 10.0,
        nonces: SharedNonces | None = None,
    ) -> None:
        if peers and signer is None:
            raise ValueError("linking regions needs this region's key (--region-key-file)")
        if set(peers) != set(peer_keys):
            raise ValueError(
                "every linked region needs its public key (--peer-key), and only those"
            )
        if local in peers:
            raise ValueError(f"region {local!r} cannot be its own peer")
        for region in (local, *peers):
            new_account_id(region)  # validates the id's shape
        self.local = local
        self.peers = {r: url.rstrip("/") for r, url in peers.items()}
        self.signer = signer
        self.verifier = RegionVerifier(local, peer_keys)
        # With several nodes (a Redis bus), the nonces seen are shared between them.
        self.nonces = nonces
        self.gate = gate
        self.timeout = timeout
        self._http: httpx.AsyncClient | None = None

    # -- routing -----------------------------------------------------------------------------

    def home(self, account_id: str) -> str | None:
        """The other region ``account_id`` lives in; None when it is stored here."""
        region = region_of(account_id)
        return None if region is None or region == self.local else region

    def url(self, region: str) -> str | None:
        return self.peers.get(region)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self.peers and self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self.timeout,
                headers={"content-type": wire.MEDIA_TYPE},
            )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self.nonces is not None:
            await self.nonces.close()

    # -- calls -------------------------------------------------------------------------------

    async def _call(
        self, region: str, method: str, path: str, body: bytes | None = None
    ) -> httpx.Response:
        base = self.peers.get(region)
        if base is None or self._http is None:
            raise RegionRefused(ErrorCode.UNKNOWN_ACCOUNT, f"region {region!r} is not linked here")
        headers = {SIGNATURE_HEADER: self._sign(region, method, path, body or b"")}
        try:
            return await self._http.request(method, base + path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise RegionUnavailable(f"region {region!r} is unreachable: {exc}") from exc

    def _sign(self, region: str, method: str, path: str, body: bytes, fetcher: str = "") -> str:
        assert self.signer is not None
        return self.signer.header(region, method, path, body, fetcher)

    @staticmethod
    def _refusal(region: str, r: httpx.Response) -> RegionRefused | RegionUnavailable:
        try:
            refusal = wire.decode(r.content, wire.Refusal)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return RegionUnavailable(f"region {region!r} answered HTTP {r.status_code}")
        return RegionRefused(refusal.code, refusal.message, refusal.retry_after_ms)

    async def lookup(self, username: str) -> dict[str, Any] | None:
        """Ask every linked region for ``username``; its public details, or None.

        Raises:
            RegionUnavailable: no region had it and at least one could not be asked, so the
                name may exist there.
        """
        if not self.peers:
            return None
        regions = sorted(self.peers)
        answers = await asyncio.gather(
            *(self._call(r, "GET", f"/v1/regions/accounts/{username}") for r in regions),
            return_exceptions=True,
        )
        missing: list[str] = []
        for region, answer in zip(regions, answers, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, RegionUnavailable | RegionRefused):
                    raise answer
                missing.append(region)
                continue
            if answer.status_code == 200:
                found: dict[str, Any] = answer.json()
                # A region answers only for its own accounts.
                if region_of(str(found.get("account_id"))) == region:
                    return found
                missing.append(region)
            elif answer.status_code != 404:
                missing.append(region)
        if missing:
            raise RegionUnavailable(f"cannot ask region(s) {', '.join(missing)}; retry")
        return None

    async def username_taken(self, username: str) -> bool:
        """Whether another region holds ``username`` (names are unique across regions).

        Raises:
            RegionUnavailable: a region could not be asked.
        """
        return await self.lookup(username) is not None

    async def open_blob(
        self, region: str, blob_id: str, fetcher: tuple[str, int], range_header: str | None
    ) -> httpx.Response:
        """Start streaming a blob stored in ``region`` for a device of this region; the
        caller reads the body and closes the response.

        Raises:
            RegionUnavailable: the region cannot be reached, or the transfer is undeclared.
        """
        try:
            self.gate.check("blob_fetch", region)
        except (UndeclaredTransfer, UndeclaredRegion) as exc:
            raise RegionUnavailable(str(exc)) from exc
        base = self.peers.get(region)
        if base is None or self._http is None:
            raise RegionUnavailable(f"region {region!r} is not linked here")
        path = f"/v1/regions/blobs/{blob_id}"
        who = f"{fetcher[0]}.{fetcher[1]}"
        headers = {
            wire.FETCHER_HEADER: who,
            SIGNATURE_HEADER: self._sign(region, "GET", path, b"", who),
        }
        if range_header:
            headers["range"] = range_header
        request = self._http.build_request("GET", base + path, headers=headers)
        try:
            return await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise RegionUnavailable(f"region {region!r} is unreachable: {exc}") from exc

    async def fetch_bundle(
        self, region: str, account_id: str, device_id: int
    ) -> list[DeviceBundleRecord]:
        """Claim prekey bundles of an account stored in ``region``.

        Raises:
            RegionRefused: unknown account or device there.
            RegionUnavailable: the region cannot be reached.
        """
        r = await self._call(
            region,
            "POST",
            "/v1/regions/bundles",
            wire.encode(wire.BundleRequest(account_id, device_id)),
        )
        if r.status_code != 200:
            raise self._refusal(region, r)
        try:
            return wire.decode(r.content, wire.BundleAnswer).devices
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise RegionUnavailable(f"region {region!r} sent a malformed bundle") from exc

    async def forward_send(
        self,
        region: str,
        sender: tuple[str, int],
        message_id: str,
        envelopes: list[OutgoingEnvelope],
    ) -> list[RecipientResult]:
        """Hand a send's envelopes to their home region; returns once each is final there
        (acknowledged by its device or durably stored).

        Raises:
            SendRefused: the gate or the other region refused, or it cannot be reached; the
                sender keeps the message and retries (duplicates are dropped there).
        """
        try:
            self.gate.allow("envelope", region)
        except (UndeclaredTransfer, UndeclaredRegion) as exc:
            raise SendRefused(ErrorCode.REGION_UNAVAILABLE, str(exc)) from exc
        body = wire.encode(wire.RegionSend(sender[0], sender[1], message_id, envelopes))
        try:
            r = await self._call(region, "POST", "/v1/regions/send", body)
        except RegionRefused as exc:
            return [
                RecipientResult(e.recipient_account, e.recipient_device, exc.code)
                for e in envelopes
            ]
        except RegionUnavailable as exc:
            raise SendRefused(ErrorCode.REGION_UNAVAILABLE, str(exc), 1000) from exc
        if r.status_code != 200:
            refusal = self._refusal(region, r)
            if isinstance(refusal, RegionUnavailable):
                raise SendRefused(ErrorCode.REGION_UNAVAILABLE, str(refusal), 1000)
            raise SendRefused(_code(refusal.code), refusal.message, refusal.retry_after_ms)
        # Counted once the other region has them: a send that failed moved nothing.
        self.gate.count("envelope", region, len(envelopes))
        try:
            return wire.decode(r.content, wire.RegionSendResult).results
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise SendRefused(
                ErrorCode.REGION_UNAVAILABLE, f"region {region!r} sent a malformed result", 1000
            ) from exc


def _code(value: str) -> ErrorCode:
    try:
        return ErrorCode(value)
    except ValueError:
        return ErrorCode.REGION_UNAVAILABLE
