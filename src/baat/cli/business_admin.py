"""``baat admin verify-business NAME``: the operator's signed statement that it checked a
business (docs/BUSINESS.md §2), added to ``baat admin``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from baat.cli.operator import admin
from baat.cli.privacy import CliFailure, _emit, _with_service, db_options

__all__ = ["admin"]


@admin.command("verify-business")
@click.argument("name")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="The server's data directory (holds the key that unlocks the signing key).",
)
@db_options
def admin_verify_business(name: str, data_dir: Path, db: str, as_json: bool) -> None:
    """Sign a verification statement for the business account NAME, after your own checks
    of its legal entity and country: clients then show it as verified."""
    from baat.server.accounts import RegistrationError, normalize_username
    from baat.server.business import BusinessError, verify_business

    try:
        username = normalize_username(name)
    except RegistrationError as exc:
        raise CliFailure(f"{exc.code}: {exc.message}") from exc

    async def go(service: Any) -> dict[str, Any]:
        key = service.key
        assert key is not None  # opened with sign=True
        try:
            return await verify_business(service.store.engine, key, username, int(time.time()))
        except BusinessError as exc:
            raise CliFailure(f"{exc.code}: {exc.message}") from exc

    data = _with_service(db, go, data_dir=data_dir, sign=True)

    def human(d: dict[str, Any]) -> str:
        return f"verified {d['username']}: {d['entity']} ({d['country']})"

    _emit(data, as_json, human)
