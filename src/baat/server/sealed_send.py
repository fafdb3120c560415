"""The ``SealedSend`` handler (docs/PROTOCOL.md, "Sealed sender"): the access check of
``server/sealed.py``, then the router with the empty sender. Nothing here knows, logs or
stores who sends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from baat.proto import ErrorCode, OutgoingEnvelope, SealedSend, TokenBucket
from baat.server.errors import SendRefused
from baat.server.sealed import SealedRefused

if TYPE_CHECKING:
    from baat.server.state import ServerState


async def sealed_send(
    state: ServerState,
    frame: SealedSend,
    connection: TokenBucket,
    reply: Any,
    settle: Any,
) -> None:
    """Admit and accept one ``SealedSend``; ``reply`` gets an ``Error`` frame's fields on a
    refusal, ``settle`` the ``SendResult``. Nothing here knows, logs or stores a sender."""
    gate = state.sealed
    if gate is None:
        reply(ErrorCode.SEALED_ACCESS_DENIED, "this server takes no sealed sends", 0)
        return
    regions = state.regions
    if regions is not None and regions.home(frame.recipient_account) is not None:
        # Between regions a send names its sender's region (docs/DEPLOY.md): not sealed.
        reply(ErrorCode.SEALED_ACCESS_DENIED, "sealed sends do not cross regions", 0)
        return
    try:
        rate_key = await gate.admit(frame, connection)
        envelopes = [
            OutgoingEnvelope(frame.recipient_account, e.recipient_device, e.content)
            for e in frame.envelopes
        ]
        await state.router.accept_send(
            ("", 0), frame.message_id, envelopes, settle, rate_key=rate_key
        )
    except (SealedRefused, SendRefused) as exc:
        reply(exc.code, exc.message, exc.retry_after_ms)


# -- HTTP --------------------------------------------------------------------------------
