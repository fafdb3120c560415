"""Liveness, readiness and health of a real server while its PostgreSQL and Redis fail."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from baat import __version__
from support.server import ServerProcess
from support.services import PrivatePostgres, PrivateRedis

pytestmark = pytest.mark.e2e


def status(url: str) -> tuple[int, dict[str, object]]:
    r = httpx.get(url, timeout=15)
    return r.status_code, r.json()


def wait_for(url: str, code: int, timeout: float = 60.0) -> dict[str, object]:
    """Poll until ``url`` answers ``code`` (a loaded machine may take a while)."""
    deadline = time.monotonic() + timeout
    last: tuple[int, dict[str, object]] | None = None
    while time.monotonic() < deadline:
        last = status(url)
        if last[0] == code:
            return last[1]
        time.sleep(0.2)
    raise AssertionError(f"{url} still answers {last} after {timeout} s")


def test_sqlite_node_is_live_ready_and_healthy(server: ServerProcess) -> None:
    assert status(server.url + "/livez") == (200, {"status": "ok"})
    code, ready = status(server.url + "/readyz")
    assert code == 200
    assert ready == {
        "ready": True,
        "checks": {"database": "ok", "schema": "ok", "bus": "ok", "writer": "ok"},
    }
    code, health = status(server.url + "/healthz")
    assert code == 200 and health["status"] == "ok"
    assert health["version"] == __version__ == "0.2.0"


def test_readyz_and_healthz_follow_postgres_and_redis(tmp_path: Path) -> None:
    pg, redis = PrivatePostgres(), PrivateRedis()
    pg.start()
    redis.start()
    node = ServerProcess(tmp_path / "n", pg.url, "--bus", redis.url, "--node-id", "h1")
    try:
        node.start()
        wait_for(node.url + "/readyz", 200)

        pg.stop()
        ready = wait_for(node.url + "/readyz", 503)
        checks = ready["checks"]
        assert isinstance(checks, dict)
        assert ready["ready"] is False and checks["database"] != "ok"
        assert checks["bus"] == "ok"
        health = wait_for(node.url + "/healthz", 503)
        assert health["status"] == "degraded" and health["storage_error"]
        assert {"version", "protocol", "node", "region", "bus"} <= set(health)
        # The process itself is fine: a supervisor must not restart it.
        assert status(node.url + "/livez")[0] == 200

        pg.start()
        assert wait_for(node.url + "/readyz", 200)["ready"] is True
        assert wait_for(node.url + "/healthz", 200)["status"] == "ok"

        redis.stop()
        ready = wait_for(node.url + "/readyz", 503)
        assert ready["checks"] == {
            "database": "ok",
            "schema": "ok",
            "bus": "down",
            "writer": "ok",
        }
        assert wait_for(node.url + "/healthz", 503)["bus"] == "down"
        redis.start()
        wait_for(node.url + "/readyz", 200)
        wait_for(node.url + "/healthz", 200)
    finally:
        if node.proc is not None:
            node.kill()
        redis.stop()
        pg.destroy()
