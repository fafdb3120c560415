"""Node-to-node presence and delivery (in-process and Redis)."""

from baat.server.bus.base import PRESENCE_REFRESH_S, PRESENCE_TTL_S, Bus, BusUnavailable
from baat.server.bus.local import LocalBus, LocalHub
from baat.server.bus.messages import (
    AccountErased,
    CatchUp,
    DevicesChanged,
    Forward,
    Kick,
    NodeMessage,
)

__all__ = [
    "PRESENCE_REFRESH_S",
    "PRESENCE_TTL_S",
    "AccountErased",
    "Bus",
    "BusUnavailable",
    "CatchUp",
    "DevicesChanged",
    "Forward",
    "Kick",
    "LocalBus",
    "LocalHub",
    "NodeMessage",
]
