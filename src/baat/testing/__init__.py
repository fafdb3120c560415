"""Fakes for tests and bots: paired in-memory connections, a fake clock, an in-memory store.

They are public API (as trio's ``testing`` and httpx's ``MockTransport``): Baat's own tests
use them, and so can anyone writing a bot against ``baat.proto``.
"""

from baat.testing._clock import FakeClock
from baat.testing._pair import ConnectionPair
from baat.testing._store import memory_store

__all__ = ["ConnectionPair", "FakeClock", "memory_store"]
