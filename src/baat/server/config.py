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
    # This region's own private key (``baat admin region-key``), and each linked region's
    # public key: calls between regions are signed with the caller's key and the callee
    # knows the caller by it (baat.server.regions.signing).
    region_key: str | None = None
    peer_keys: Mapping[str, bytes] = field(default_factory=dict)
    node_id: str = "node-1"
    # None: a single node (in-process bus). redis://... for several nodes.
    bus: str | None = None
    limits: Limits = field(default_factory=Limits)
    envelopes_per_second: float = 5000.0
    envelope_burst: float = 10_000.0
    # Server-wide ceiling on new accounts a minute, and each client address's share of it
    # (baat.server.admission); "invite" admits only holders of a ``baat admin invite`` code.
    registrations_per_minute: int = 60
    registrations_per_address: int = 10
    registration: str = "open"
    # The same for linking new devices, counted apart from registrations.
    links_per_minute: int = 60
    links_per_address: int = 10
    ack_grace: float = 0.005
    # Online members of a fan-out get this long to acknowledge (server/fanout.py).
    fanout_hold: float = 2.0
    affiliate_url: str | None = None
    # Told of erasures of accounts the support desk looked up (server/privacy/service.py).
    support_url: str | None = None
    # Registrations of a jurisdiction whose region this deployment neither runs nor links:
    # "store-here" (declared in the served notice) or "refuse" (privacy/residency.py).
    unserved_jurisdictions: str = "store-here"
    # Largest attachment blob accepted (ciphertext bytes).
    max_blob_bytes: int = 100 * 1024 * 1024
    # Quotas (docs/PROTOCOL.md, "Quotas"; baat.server.quotas): per offline device, what may
    # wait in its queue; per sending account, envelopes a second to one device and the
    # attachment blobs it may have stored at once.
    max_queued_envelopes: int = 10_000
    max_queued_bytes: int = 256 * 1024 * 1024
    recipient_envelopes_per_second: float = 50.0
    max_blobs_per_account: int = 1000
    max_blob_bytes_per_account: int = 2048 * 1024 * 1024
    # Apply pending schema migrations at start (False: refuse a database that is behind;
    # ``baat admin migrate`` applies them). Never applied to a newer schema (docs/UPGRADE.md).
    migrate: bool = True
    # Timeouts, connection caps and body limits (docs/DEPLOY.md, "Limits").
    transport: TransportSettings = field(default_factory=TransportSettings)
    # PostgreSQL connections kept open per node, and how many more a burst may open
    # (SQLite always uses one connection: one writer anyway).
    db_pool_size: int = 10
    db_max_overflow: int = 10
    # Logs (baat.server.logs): level, "text" or "json", and the interval within which a
    # repeated warning is written once.
    log_level: str = "info"
    log_format: str = "text"
    log_interval: float = 10.0
    # Prometheus metrics on their own address, ("127.0.0.1", 9780); None: off
    # (baat.server.metrics).
    metrics: tuple[str, int] | None = None

    @property
    def db_url(self) -> str:
        if self.db:
            return self.db
        return f"sqlite:///{(self.data_dir / 'baat.sqlite3').resolve()}"
