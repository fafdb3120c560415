"""``baat serve`` as an operator starts it: from a TOML file, from ``BAAT_*`` variables and
flags (flags win over the environment, which wins over the file), secrets read from files,
start-up and shutdown logged (JSON too) without credentials, and a taken port ending the
process at once with a non-zero status, before anything is announced."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from support.server import ROOT, free_port

pytestmark = pytest.mark.e2e

PG_BASE = os.environ.get("BAAT_TEST_POSTGRES")
SERVE = [sys.executable, "-m", "baat", "serve"]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any BAAT_ setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAAT_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "baat", "serve", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )


def wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}:\n{log.read_text()}")
        try:
            r = httpx.get(url + "/healthz", timeout=1)
            if r.status_code == 200:
                body: dict[str, object] = r.json()
                return body
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"server did not start:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(20)


def json_lines(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def test_taken_port_exits_non_zero_within_a_second(tmp_path: Path) -> None:
    # The interpreter's own start-up is not the server's: measure it, then allow one second.
    began = time.monotonic()
    subprocess.run([sys.executable, "-m", "baat", "--version"], check=True, cwd=ROOT)
    interpreter = time.monotonic() - began
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        began = time.monotonic()
        out = subprocess.run(
            [*SERVE, "--data", str(tmp_path / "d"), "--port", str(port), "--region", "in"],
            capture_output=True,
            text=True,
            env=clean_env(),
            cwd=ROOT,
            timeout=30,
        )
        took = time.monotonic() - began
    assert out.returncode == 1, out
    assert took < interpreter + 1.0, (took, interpreter)
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr
    assert "listening" not in out.stderr + out.stdout and "Traceback" not in out.stderr
    # Nothing was done before the bind: no database was created or migrated.
    assert not (tmp_path / "d" / "baat.sqlite3").exists()


def test_taken_metrics_port_exits_non_zero(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        metrics = taken.getsockname()[1]
        args = ["--data", str(tmp_path / "d"), "--port", str(free_port()), "--region", "in"]
        out = subprocess.run(
            [*SERVE, *args, "--metrics", f"127.0.0.1:{metrics}"],
            capture_output=True,
            text=True,
            env=clean_env(),
            cwd=ROOT,
            timeout=30,
        )
    assert out.returncode == 1 and "for the metrics" in out.stderr, out


def test_starts_from_a_config_file_with_secret_files_and_json_logs(tmp_path: Path) -> None:
    port, metrics = free_port(), free_port()
    db_file = tmp_path / "db-url"
    db_file.write_text(f"sqlite:///{tmp_path / 'secret-place.sqlite3'}\n")
    config = tmp_path / "baat.toml"
    config.write_text(
        f'data = "{tmp_path / "data"}"\n'
        f"port = {port}\n"
        'region = "eu"\n'
        'node_id = "from-file"\n'
        f'db_file = "{db_file}"\n'
        'log_format = "json"\n'
        f'metrics = "127.0.0.1:{metrics}"\n'
        "max_queued_envelopes = 1234\n"
    )
    log = tmp_path / "server.log"
    proc = start(["--config", str(config)], clean_env(), log)
    try:
        health = wait_healthy(proc, f"http://127.0.0.1:{port}", log)
        assert health["node"] == "from-file" and health["region"] == "eu"
        assert (tmp_path / "secret-place.sqlite3").exists()
        assert httpx.get(f"http://127.0.0.1:{metrics}/metrics", timeout=5).status_code == 200
    finally:
        stop(proc)
    records = json_lines(log)
    events = [r.get("event") for r in records]
    assert events.index("starting") < events.index("migrated") < events.index("listening")
    assert events.index("listening") < events.index("shutting_down") < events.index("stopped")
    starting = next(r for r in records if r.get("event") == "starting")
    assert starting["node"] == "from-file" and starting["region"] == "eu"
    assert starting["database"] == "sqlite" and starting["version"]
    listening = next(r for r in records if r.get("event") == "listening")
    assert listening["port"] == port and isinstance(listening["schema_version"], int)
    assert all({"ts", "level", "logger", "message"} <= set(r) for r in records)


def test_environment_overrides_the_file_and_flags_override_both(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "baat.toml"
    config.write_text(
        f'data = "{tmp_path / "data"}"\nport = 1\nregion = "in"\nnode_id = "from-file"\n'
    )
    env = clean_env(
        BAAT_CONFIG=str(config),
        BAAT_PORT=str(port),
        BAAT_REGION="us",
        BAAT_NODE_ID="from-env",
        BAAT_LOG_LEVEL="warning",
    )
    log = tmp_path / "server.log"
    proc = start(["--node-id", "from-flag"], env, log)
    try:
        health = wait_healthy(proc, f"http://127.0.0.1:{port}", log)
    finally:
        stop(proc)
    assert health["node"] == "from-flag"  # flag over environment
    assert health["region"] == "us"  # environment over file
    assert (tmp_path / "data" / "baat.sqlite3").exists()  # file over default
    assert "INFO" not in log.read_text()  # BAAT_LOG_LEVEL=warning


@pytest.mark.postgres
def test_database_password_never_logged(tmp_path: Path, pg_url: str) -> None:
    # The test server trusts local connections: the password is carried, not checked.
    scheme, rest = pg_url.split("://", 1)
    user, host = rest.split("@", 1)
    with_password = f"{scheme}://{user}:hunter2-s3cret@{host}"
    secret = tmp_path / "db"
    secret.write_text(with_password)
    port = free_port()
    log = tmp_path / "server.log"
    env = clean_env(BAAT_DB_FILE=str(secret), BAAT_REGION="in")
    proc = start(["--data", str(tmp_path / "d"), "--port", str(port)], env, log)
    try:
        wait_healthy(proc, f"http://127.0.0.1:{port}", log)
    finally:
        stop(proc)
    text = log.read_text()
    assert "database postgresql" in text and f"{user}@{host}" in text
    assert "hunter2" not in text


def bad_config(tmp_path: Path, body: str, *extra: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "bad.toml"
    config.write_text(body)
    return subprocess.run(
        [sys.executable, "-m", "baat", "serve", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=ROOT,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('regoin = "in"\n', "unknown key 'regoin'"),
        ('db = "sqlite:///x"\ndb_file = "/etc/hostname"\n', "not both"),
        ("peer = 'eu=https://eu.example'\n", "'peer' must be a list"),
        ("port = [1, 2]\n", "'port' must be a single value"),
        ("port = \n", "not valid TOML"),
        ('db_file = "/nonexistent/db"\n', "cannot read /nonexistent/db"),
        ('port = "many"\n', "'many' is not a valid integer"),
    ],
)
def test_a_bad_config_file_is_refused_with_its_reason(tmp_path: Path, body: str, says: str) -> None:
    out = bad_config(tmp_path, body)
    assert out.returncode == 2, out
    assert says in out.stderr and "Traceback" not in out.stderr
