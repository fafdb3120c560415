"""``baat serve --config FILE``: every serve option from a TOML file or the environment.

Where a value comes from, strongest first (docs/DEPLOY.md, "Configuration"):

1. a command-line flag (``--db URL``);
2. its environment variable: ``BAAT_`` and the flag's name in capitals, dashes as
   underscores (``BAAT_DB``, ``BAAT_REGION``, ``BAAT_MAX_QUEUED_ENVELOPES``); a repeatable
   option takes several values separated by spaces;
3. the config file (``--config FILE`` or ``BAAT_CONFIG``), whose keys are the flags' names
   with underscores (``db = "postgresql://..."``, ``peer = ["eu=https://..."]``);
4. the option's default.

A secret need not appear in the file, the environment or ``ps``: each key of ``SECRETS``
may be given as ``KEY_file`` (``db_file = "/etc/baat/db-url"``) or ``BAAT_KEY_FILE``, a
file whose content (without the final newline) is the value. ``BAAT_DB_FILE`` counts as the
environment, ``db_file`` as the file. A key the file does not know is an error, so that a
typo is not silently ignored.

Click does the precedence: the file's values become the context's ``default_map`` (which
click consults after the flag and the environment variable), set by the eager ``--config``
option before any other option is read.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

ENV_PREFIX = "BAAT_"
# Values that may be read from a file instead (KEY_file / BAAT_KEY_FILE).
SECRETS = ("db", "bus")


def key_of(param: click.Parameter) -> str:
    """The config key of an option: its longest flag without dashes, ``-`` as ``_``."""
    flags: list[str] = [o for o in getattr(param, "opts", []) if o.startswith("--")]
    if not flags:
        return param.name or ""
    return max(flags, key=len)[2:].replace("-", "_")


def env_of(key: str) -> str:
    return ENV_PREFIX + key.upper()


def _read_secret(path: str, where: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint=where) from exc
    value = text.rstrip("\r\n")
    if not value.strip():
        raise click.BadParameter(f"{path} is empty", param_hint=where)
    return value


def _load(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Eager callback of ``--config``: fill ``ctx.default_map`` from the file and the
    secret files before the other options are read.

    Raises:
        click.BadParameter: unreadable or invalid TOML, an unknown key, a wrong type, a
            secret given both directly and as a file.
    """
    command = ctx.command
    by_key = {key_of(p): p for p in command.params if p.name != "config"}
    defaults: dict[str, Any] = {}
    if value is not None:
        try:
            doc = tomllib.loads(value.read_text(encoding="utf-8"))
        except OSError as exc:
            raise click.BadParameter(f"cannot read {value}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise click.BadParameter(f"{value}: not valid TOML: {exc}") from exc
        for key, item in doc.items():
            if key.endswith("_file") and key[: -len("_file")] in SECRETS:
                name = key[: -len("_file")]
                if name in doc:
                    raise click.BadParameter(f"{value}: give {name!r} or {key!r}, not both")
                if not isinstance(item, str):
                    raise click.BadParameter(f"{value}: {key!r} must be a path")
                defaults[name] = _read_secret(item, f"{key} in {value}")
                continue
            target = by_key.get(key)
            if target is None:
                known = ", ".join(sorted(by_key))
                raise click.BadParameter(f"{value}: unknown key {key!r}; keys are: {known}")
            multiple = getattr(target, "multiple", False)
            if multiple and not isinstance(item, list):
                raise click.BadParameter(f"{value}: {key!r} must be a list")
            if not multiple and isinstance(item, list | dict):
                raise click.BadParameter(f"{value}: {key!r} must be a single value")
            defaults[key] = item
    # BAAT_DB_FILE is the environment's level: above the file, below BAAT_DB (which click
    # reads itself as the option's envvar).
    for name in SECRETS:
        path = os.environ.get(env_of(name) + "_FILE")
        if path:
            defaults[name] = _read_secret(path, env_of(name) + "_FILE")
    # default_map is keyed by parameter name, the file by flag name (--data is data_dir).
    ctx.default_map = {
        **(ctx.default_map or {}),
        **{(by_key[k].name or k): v for k, v in defaults.items()},
    }
    return value


def config_option(command: F) -> F:
    """Add ``--config`` (eager) and give every other option of ``command`` its
    environment variable. Apply it last (outermost), after every other option."""
    assert isinstance(command, click.Command)
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar is None:
            param.envvar = env_of(key_of(param))
            param.show_envvar = True
    option = click.Option(
        ["--config", "config"],
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        envvar=ENV_PREFIX + "CONFIG",
        show_envvar=True,
        is_eager=True,
        expose_value=False,
        callback=_load,
        help="TOML file with any of these options (keys: the flags' names with underscores; "
        "db_file/bus_file read a secret from a file). Flags override environment variables, "
        "which override the file.",
    )
    command.params.insert(0, option)
    return command


def keys(command: click.Command) -> dict[str, click.Parameter]:
    """Every config key of ``command`` and its option (for the documentation test)."""
    return {key_of(p): p for p in command.params if p.name != "config"}
