"""Server configuration, built by the CLI and by tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from baat.proto import Limits
from baat.server.transport.guard import TransportSettings


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8780
    data_dir: Path = Path("./var/server")
    # None: SQLite at data_dir/baat.sqlite3.
    db: str | None = None
    region: str = "in"
    # The other regions of this deployment: region id -> base URL (any node of it, or its
    # load balancer). Empty: this deployment stores every account it registers.
    peers: Mapping[str, str] = field(default_factory=dict)
    # Shared by all regions of one operator; authenticates the calls between them.
    region_secret: str | None = None
    node_id: str = "node-1"
    # None: a single node (in-process bus). redis://... for several nodes.
    bus: str | None = None
    limits: Limits = field(default_factory=Limits)
    envelopes_per_second: float = 5000.0
    envelope_burst: float = 10_000.0
    registrations_per_minute: int = 60
    ack_grace: float = 0.005
    affiliate_url: str | None = None
    # Largest attachment blob accepted (ciphertext bytes).
    max_blob_bytes: int = 100 * 1024 * 1024
    # Timeouts, connection caps and body limits (docs/DEPLOY.md, "Limits").
    transport: TransportSettings = field(default_factory=TransportSettings)

    @property
    def db_url(self) -> str:
        if self.db:
            return self.db
        return f"sqlite:///{(self.data_dir / 'baat.sqlite3').resolve()}"
