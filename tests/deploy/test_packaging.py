"""The files under ``deploy/`` say what they run, and what they run exists: each command
line of the systemd units, the Dockerfile and compose.yaml names a real ``baat`` command
(as ``baat --help`` lists it) and options that command accepts, with values it parses."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import click
import pytest
import yaml

from baat.cli._root import root

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


@cache
def help_text(*path: str) -> str:
    """``baat PATH --help`` from the real command."""
    out = subprocess.run(
        [sys.executable, "-m", "baat", *path, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def listed_commands(text: str) -> set[str]:
    """The sub-commands in the ``Commands:`` section of a help text."""
    section = text.split("Commands:", 1)[1] if "Commands:" in text else ""
    return {m.group(1) for m in re.finditer(r"^  ([a-z][a-z0-9-]*)", section, re.M)}


def check_baat_command(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """``argv`` (without the program) is a command ``baat --help`` lists, every option is
    one it documents, and click parses the whole line (types, choices) without running
    it."""
    path: list[str] = []
    while argv[len(path) :] and not argv[len(path)].startswith("-"):
        word = argv[len(path)]
        commands = listed_commands(help_text(*path))
        if not commands:
            break  # a leaf command: the rest are its arguments
        assert word in commands, f"`baat {' '.join(path)}` has no command {word!r}"
        path.append(word)
    text = help_text(*path)
    for word in argv[len(path) :]:
        if word.startswith("--"):
            option = word.split("=", 1)[0]
            assert re.search(rf"(^|[\s,]){re.escape(option)}\b", text, re.M), (
                f"`baat {' '.join(path)}` has no option {option}"
            )
    ctx = click.Context(root, info_name="baat")
    command: click.Command = root
    for word in path:
        assert isinstance(command, click.Group)
        sub = command.get_command(ctx, word)
        assert sub is not None, word
        command = sub
        ctx = click.Context(command, info_name=word, parent=ctx)
    # Parses (and type-checks) every option and argument; extra words are a usage error.
    assert ctx.parent is not None
    with mock.patch.dict(os.environ, env or {}):
        parsed = command.make_context(path[-1], list(argv[len(path) :]), parent=ctx.parent)
    return parsed.params


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / name)
    return parser


def exec_argv(line: str) -> list[str]:
    """An ExecStart line as the baat command it runs: systemd's %H is a host name, and an
    unset ``$VAR`` expands to nothing."""
    words = [w for w in shlex.split(line.replace("%H", "node-a")) if not w.startswith("$")]
    assert Path(words[0]).name == "baat", words[0]
    return words[1:]


def test_server_unit_runs_baat_serve_and_stops_gracefully() -> None:
    u = unit("baat.service")
    assert set(u.sections()) == {"Unit", "Service", "Install"}
    service = u["Service"]
    argv = exec_argv(service["ExecStart"])
    assert argv[0] == "serve"
    check_baat_command(argv)
    assert argv[argv.index("--migrate") + 1] == "off"  # upgrades migrate explicitly
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) > 10  # more than the server's graceful shutdown
    assert service["RestartPreventExitStatus"] == "2"  # a schema that does not fit
    assert service["User"] != "root" and service["StateDirectory"] == "baat"
    assert u["Install"]["WantedBy"] == "multi-user.target"


def test_retention_timer_starts_the_retention_service() -> None:
    timer = unit("baat-retention.timer")
    assert timer["Timer"]["Unit"] == "baat-retention.service"
    assert timer["Timer"]["OnCalendar"] == "daily" and timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"
    service = unit("baat-retention.service")["Service"]
    assert service["Type"] == "oneshot"
    argv = exec_argv(service["ExecStart"])
    assert argv[:2] == ["admin", "retention"]
    # The unit passes no --db: the command reads BAAT_DB from the environment file.
    db = "sqlite:////var/lib/baat/baat.sqlite3"
    assert check_baat_command(argv, {"BAAT_DB": db})["db"] == db
    assert service["EnvironmentFile"].lstrip("-") == "/etc/baat/baat.env"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    env = tmp_path / "baat.env"
    env.write_text("BAAT_DB=sqlite:////var/lib/baat/baat.sqlite3\n")
    baat = Path(sys.executable).with_name("baat")
    for path in (DEPLOY / "systemd").iterdir():
        text = path.read_text().replace("/opt/baat/bin/baat", str(baat))
        (tmp_path / path.name).write_text(text.replace("/etc/baat/baat.env", str(env)))
    names = sorted(p.name for p in (DEPLOY / "systemd").iterdir())
    out = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / n) for n in names)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # verify exits 0 on unknown keys too, so its complaints about our files are the test.
    complaints = [line for line in out.stderr.splitlines() if str(tmp_path) in line]
    assert out.returncode == 0 and complaints == [], out.stderr


def dockerfile() -> dict[str, str]:
    """Instructions of the final stage (continuation lines joined)."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    stages = re.split(r"^FROM ", text, flags=re.M)
    found: dict[str, str] = {"FROM": stages[-1].splitlines()[0]}
    for line in stages[-1].splitlines()[1:]:
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            found[key] = value.strip()
    return found


def test_dockerfile_runs_baat_serve_as_a_user_and_checks_readiness() -> None:
    d = dockerfile()
    argv = json.loads(d["ENTRYPOINT"]) + json.loads(d["CMD"])
    assert argv[0] == "baat"
    check_baat_command(argv[1:])
    assert d["EXPOSE"] == argv[argv.index("--port") + 1]
    assert d["USER"] not in ("root", "0")
    assert "/readyz" in d["HEALTHCHECK"]
    assert d["VOLUME"] == argv[argv.index("--data") + 1]
    text = (DEPLOY / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert (ROOT / source).exists(), source


def compose() -> dict[str, object]:
    # What docker compose would do with BAAT_DB_PASSWORD set in deploy/.env.
    text = (DEPLOY / "compose.yaml").read_text()
    text = re.sub(r"\$\{BAAT_DB_PASSWORD:\?[^}]*\}", "secret", text)
    assert "${" not in text, "an environment variable this test does not know"
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


def test_compose_runs_the_server_with_postgres_and_redis() -> None:
    c = compose()
    services = c["services"]
    assert isinstance(services, dict)
    assert {"postgres", "redis", "baat", "migrate", "retention"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    ours = {n: s for n, s in services.items() if str(s.get("image", "")).startswith("baat:")}
    assert set(ours) == {"baat", "migrate", "retention"}
    for name, service in ours.items():
        # The image is tagged with the version it carries.
        assert service["image"] == f"baat:{VERSION}", name
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        argv = [str(w) for w in service["command"]]
        params = check_baat_command(argv, service["environment"])
        if "db" in params and "--db" not in argv:
            assert params["db"] == service["environment"]["BAAT_DB"], name
        for dep in service.get("depends_on", {}):
            assert dep in services, (name, dep)
    serve = [str(w) for w in ours["baat"]["command"]]
    assert serve[0] == "serve"
    db = serve[serve.index("--db") + 1]
    bus = serve[serve.index("--bus") + 1]
    assert db.split("@")[1].startswith("postgres:5432/") and bus.startswith("redis://redis:")
    assert serve[serve.index("--migrate") + 1] == "off"
    assert ours["migrate"]["command"][:2] == ["admin", "migrate"]
    assert ours["baat"]["depends_on"]["migrate"]["condition"] == ("service_completed_successfully")
    assert ours["migrate"]["environment"]["BAAT_DB"] == db
    port = serve[serve.index("--port") + 1]
    assert any(str(p).endswith(f":{port}") for p in ours["baat"]["ports"])


def test_check_docker_script_is_runnable() -> None:
    script = DEPLOY / "check-docker.sh"
    assert os.access(script, os.X_OK)
    assert subprocess.run(["bash", "-n", str(script)], timeout=30).returncode == 0


def test_version_comes_from_the_package_metadata() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "baat", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.stdout.strip() == f"baat, version {VERSION}"
    assert VERSION == "0.2.0"
