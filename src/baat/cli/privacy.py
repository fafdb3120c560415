"""Privacy commands: ``policy``, ``consent``, ``me``, ``transparency``, ``admin``.

User commands (``consent``, ``me``) talk to the server over HTTP with the profile's device
credentials. Operator commands (``transparency legal-process``, ``admin``) open the
database directly with ``--db``. Every command that prints data takes ``--json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx

from baat.cli.defaults import default_db, profile_server
from baat.privacy import receipts
from baat.privacy.diff import diff as policy_diff
from baat.privacy.diff import reconsent_problems
from baat.privacy.errors import PrivacyError
from baat.privacy.policy import Policy, dump_document, load_document, published_versions
from baat.privacy.render import FORMATS, render

T = TypeVar("T")


class CliFailure(click.ClickException):
    """A clear message and exit status 1."""


def _emit(data: Any, as_json: bool, human: Callable[[Any], str]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo(human(data).rstrip("\n"))


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(f)


def profile_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--profile",
        type=click.Path(path_type=Path),
        envvar="BAAT_PROFILE",
        default=Path.home() / ".baat",
        show_default=True,
        help="Profile directory (or BAAT_PROFILE).",
    )(f)
    return json_option(f)


def db_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--db",
        default=default_db,
        show_default="the database 'baat serve' uses by default (./var/server)",
        help="sqlite:///PATH or postgresql://... (or BAAT_DB)",
    )(f)
    return json_option(f)


# -- policy --------------------------------------------------------------------------------


def _load(spec: str) -> dict[str, Any]:
    if spec == "current":
        return Policy.current().document()
    try:
        return load_document(Path(spec))
    except PrivacyError as exc:
        raise CliFailure(exc.message) from exc


@click.group()
def policy() -> None:
    """The privacy notice generated from the code, its versions and their differences."""


def _use_operator(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is None:
        return
    from baat.privacy import operator

    try:
        operator.install(operator.load(value))
    except PrivacyError as exc:
        raise click.BadParameter(exc.message, ctx=ctx, param=param) from exc


def operator_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--operator FILE``: "current" is the notice with the operator's own controller,
    recipients and regions (baat.privacy.operator), as ``baat serve --operator`` serves it."""
    return click.option(
        "--operator",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        envvar="BAAT_OPERATOR",
        is_eager=True,
        expose_value=False,
        callback=_use_operator,
        help="The operator's notice file (e.g. deploy/operator.example.toml): 'current' "
        "names its controller, recipients and regions.",
    )(f)


@policy.command("show")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="md", show_default=True)
@click.option("--jurisdiction", default=None, help="Word the notice for IN, EU, GB, US, ZZ.")
@click.option("--file", "spec", default="current", help="A published policies/vN.json.")
@operator_option
@json_option
def policy_show(fmt: str, jurisdiction: str | None, spec: str, as_json: bool) -> None:
    """Print the notice (default: the one this code produces)."""
    doc = _load(spec)
    try:
        click.echo(render(doc, "json" if as_json else fmt, jurisdiction), nl=False)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@policy.command("diff")
@click.argument("old")
@click.argument("new")
@operator_option
@json_option
@click.pass_context
def policy_diff_cmd(ctx: click.Context, old: str, new: str, as_json: bool) -> None:
    """List every change from OLD to NEW (files, or "current"); exit 1 unless every change
    is proven to narrow what Baat does with personal data."""
    result = policy_diff(_load(old), _load(new))
    _emit(result.to_json(), as_json, lambda _: result.to_text())
    if result.expands:
        ctx.exit(1)


@policy.command("publish")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("policies"),
    show_default=True,
)
@click.option(
    "--accept",
    is_flag=True,
    help="Publish although some changes are not proven to narrow (they are listed first).",
)
@operator_option
@json_option
def policy_publish(directory: Path, accept: bool, as_json: bool) -> None:
    """Write the code's notice as the next policies/vN.json."""
    current = Policy.current()
    doc = current.document()
    versions = published_versions(directory)
    result: dict[str, Any] = {"version": current.version, "sha256": doc["sha256"]}
    report = ""
    if versions:
        latest = max(versions)
        old = _load(str(versions[latest]))
        if old == doc:
            _emit({**result, "published": False}, as_json, lambda _: f"v{latest} is up to date")
            return
        # Numbers are assigned to changes developed side by side, so a gap is allowed;
        # going back or reusing a number is not.
        if current.version <= latest:
            raise CliFailure(
                f"the code's policy differs from v{latest}: set POLICY_VERSION = {latest + 1} "
                "in src/baat/privacy/policy.py (published versions are immutable)"
            )
        changes = policy_diff(old, doc)
        report = changes.to_text()
        problems = reconsent_problems(changes, doc)
        if problems:
            raise CliFailure(report + "; ".join(problems))
        if changes.expands and not accept:
            # Every expansion is shown and needs a deliberate decision: a new column under an
            # existing entry cannot slip into a published version as "layout".
            raise CliFailure(
                report + f"{len(changes.blocking)} change(s) are not proven to narrow; review "
                "them and publish with --accept"
            )
        result["diff"] = changes.to_json()
    path = directory / f"v{current.version}.json"
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_document(doc), encoding="utf-8")
    _emit(
        {**result, "published": True, "path": str(path)},
        as_json,
        lambda _: f"{report}wrote {path}",
    )


# -- user commands over HTTP ---------------------------------------------------------------


def _passphrase() -> str:
    value = os.environ.get("BAAT_PASSPHRASE")
    if value is not None:
        return value
    return str(click.prompt("Passphrase for the local store", hide_input=True))


def _call(
    profile: Path, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[str, Any]:
    """One authenticated request; returns the server's address and the JSON answer."""
    from baat.client.profile import load_credentials

    try:
        server, creds = load_credentials(profile, _passphrase())
    except Exception as exc:  # the store's own errors; shown as they are
        raise CliFailure(f"cannot load profile {profile}: {exc}") from exc
    headers = {"Authorization": creds.header(), "Baat-Collection-Method": "cli"}
    try:
        with httpx.Client(base_url=server, timeout=30.0) as client:
            response = client.request(method, path, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise CliFailure(f"cannot reach {server}: {exc}") from exc
    try:
        data = response.json()
    except ValueError as exc:
        raise CliFailure(f"{server} answered {response.status_code} without JSON") from exc
    if response.is_error:
        err = data.get("error", {}) if isinstance(data, dict) else {}
        raise CliFailure(f"{err.get('code', response.status_code)}: {err.get('message', '')}")
    return server, data


def _request(profile: Path, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    return _call(profile, method, path, body)[1]


def _watched(profile: Path, method: str, path: str) -> Any:
    """A consent request whose ledger head and receipt the profile remembers; warnings about
    an older head or a missing record go to stderr (``baat.client.ledger_watch``)."""
    from baat.client.ledger_watch import LedgerWatch

    server, data = _call(profile, method, path)
    try:
        response = httpx.get(server.rstrip("/") + "/.well-known/baat/keys", timeout=30.0)
        response.raise_for_status()
        jwks = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise CliFailure(f"cannot fetch keys from {server}: {exc}") from exc
    watch = LedgerWatch.for_profile(profile, server)
    if "receipt" in data:
        warnings = watch.observe_receipt(data, jwks)
    else:
        warnings = watch.check_listing(data.get("consents", []), data.get("ledger_head"), jwks)
    watch.save()
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    return {**data, "warnings": warnings}


def _receipt_text(data: dict[str, Any]) -> str:
    record = data["record"]
    state = record["state"].rsplit("#", 1)[-1]
    return (
        f"{state}: {record['purpose']['id']} at {record['event_time']}\n"
        f"record {data['record_id']}, signed by key {data['kid']}\n{data['receipt']}"
    )


@click.group()
def consent() -> None:
    """Your optional consents: all off until you turn them on."""


@consent.command("list")
@profile_options
def consent_list(profile: Path, as_json: bool) -> None:
    """Show every optional purpose and whether you allow it."""
    data = _watched(profile, "GET", "/v1/consents")

    def human(d: dict[str, Any]) -> str:
        rows = [f"policy v{d['policy']['version']}"]
        for c in d["consents"]:
            mark = "on " if c["effective"] else "off"
            note = " (policy changed: grant again to turn on)" if c["needs_reconsent"] else ""
            rows.append(f"  {mark} {c['purpose']:<16} {c['title']}{note}")
        return "\n".join(rows)

    _emit(data, as_json, human)


@consent.command("grant")
@click.argument("purpose")
@profile_options
def consent_grant(purpose: str, profile: Path, as_json: bool) -> None:
    """Allow an optional PURPOSE; prints the signed receipt."""
    _emit(_watched(profile, "POST", f"/v1/consents/{purpose}"), as_json, _receipt_text)


@consent.command("withdraw")
@click.argument("purpose")
@profile_options
def consent_withdraw(purpose: str, profile: Path, as_json: bool) -> None:
    """Withdraw consent to PURPOSE; applies to the next run of every job."""
    _emit(_watched(profile, "DELETE", f"/v1/consents/{purpose}"), as_json, _receipt_text)


def _read_receipt(spec: str) -> str:
    if spec == "-":
        text = sys.stdin.read()
    elif spec.count(".") == 2 and "/" not in spec and len(spec) > 64:
        text = spec  # a compact JWS itself
    else:
        try:
            text = Path(spec).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliFailure(f"{spec}: neither a receipt nor a readable file ({exc})") from exc
    text = text.strip()
    if text.startswith("{"):
        try:
            return str(json.loads(text)["receipt"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CliFailure("the JSON file holds no 'receipt'") from exc
    return text


@consent.command("verify")
@click.argument("receipt")
@click.option("--server", default=None, envvar="BAAT_SERVER", help="Fetch its published keys.")
@click.option("--keys", "keys_file", type=click.Path(path_type=Path, dir_okay=False))
@json_option
def consent_verify(receipt: str, server: str | None, keys_file: Path | None, as_json: bool) -> None:
    """Check a RECEIPT (a JWS, a file, or - for stdin) offline against published keys
    (by default those of the server your profile is registered with)."""
    if keys_file is None and server is None:
        server = profile_server()
    if keys_file is not None:
        try:
            jwks = json.loads(keys_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CliFailure(f"cannot read key set {keys_file}: {exc}") from exc
    elif server is not None:
        try:
            response = httpx.get(server.rstrip("/") + "/.well-known/baat/keys", timeout=30.0)
            response.raise_for_status()
            jwks = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise CliFailure(f"cannot fetch keys from {server}: {exc}") from exc
    else:
        raise click.UsageError("give --server URL or --keys FILE (no registered profile found)")
    try:
        checked = receipts.verify(_read_receipt(receipt), jwks)
    except PrivacyError as exc:
        raise CliFailure(f"{exc.code}: {exc.message}") from exc
    _emit(checked.to_json(), as_json, lambda d: "valid receipt\n" + _receipt_text(d))


@click.group()
def me() -> None:
    """Your rights: a copy of your data, correction, erasure."""


@me.command("export")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None)
@profile_options
def me_export(out: Path | None, profile: Path, as_json: bool) -> None:
    """Everything the server holds about you, as JSON."""
    data = _request(profile, "GET", "/v1/me/export")
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if out is None:
        click.echo(text)
        return
    out.write_text(text + "\n", encoding="utf-8")
    _emit({"path": str(out)}, as_json, lambda d: f"wrote {d['path']}")


@me.command("delete")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@profile_options
def me_delete(yes: bool, profile: Path, as_json: bool) -> None:
    """Delete your account and everything the server holds about it."""
    if not yes:
        click.confirm("Delete your account on the server? This cannot be undone", abort=True)
    data = _request(profile, "DELETE", "/v1/me")
    _emit(data, as_json, lambda d: "account deleted; rows removed: " + json.dumps(d["deleted"]))


@me.command("correct")
@click.option("--username", default=None)
@click.option(
    "--jurisdiction",
    default=None,
    help="IN, EU, GB, US or ZZ: the law the notice cites (data stays in its home region).",
)
@click.option("--region", default=None)
@profile_options
def me_correct(
    username: str | None,
    jurisdiction: str | None,
    region: str | None,
    profile: Path,
    as_json: bool,
) -> None:
    """Correct your username, jurisdiction or storage region."""
    body = {
        k: v
        for k, v in (("username", username), ("jurisdiction", jurisdiction), ("region", region))
        if v is not None
    }
    if not body:
        raise click.UsageError("give at least one of --username, --jurisdiction, --region")
    data = _request(profile, "PATCH", "/v1/me", body)
    _emit(data, as_json, lambda d: "\n".join(f"{k}: {v}" for k, v in d.items()))


# -- operator commands on the database -----------------------------------------------------


def _with_service(
    db: str,
    fn: Callable[[Any], Awaitable[T]],
    *,
    data_dir: Path = Path("."),
    region: str = "in",
    affiliate_url: str | None = None,
    sign: bool = False,
) -> T:
    from baat.server.privacy.service import PrivacyService
    from baat.server.storage.sql import SqlStore
    from baat.server.upgrade import SchemaError, require_current

    async def go() -> T:
        # Never migrates: only `baat admin migrate` changes the schema (docs/UPGRADE.md).
        store = await SqlStore.open(db, migrate=False)
        try:
            try:
                await require_current(store)
            except SchemaError as exc:
                raise CliFailure(f"{exc.code}: {exc}") from exc
            service = await PrivacyService.open(
                store, data_dir=data_dir, region=region, affiliate_url=affiliate_url, sign=sign
            )
            return await fn(service)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except PrivacyError as exc:
        raise CliFailure(f"{exc.code}: {exc.message}") from exc
    except ValueError as exc:
        raise CliFailure(str(exc)) from exc


@click.group()
def transparency() -> None:
    """What Baat collects and shares, with live counts; what legal process could obtain."""


@transparency.command("report")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md")
@click.option("--db", default=None, envvar="BAAT_DB", help="Read the database directly.")
@click.option("--server", default=None, help="Or fetch GET /v1/transparency from a server.")
@json_option
def transparency_report(fmt: str, db: str | None, server: str | None, as_json: bool) -> None:
    """Answer the regulator's questions from the inventory and live counts."""
    from baat.server.privacy.transparency import markdown

    if db is not None:
        data = _with_service(db, lambda s: s.transparency_report())
    elif server is not None:
        try:
            response = httpx.get(server.rstrip("/") + "/v1/transparency", timeout=30.0)
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise CliFailure(f"cannot fetch the report from {server}: {exc}") from exc
    else:
        raise click.UsageError("give --db URL or --server URL")
    _emit(data, as_json or fmt == "json", markdown)


@transparency.command("legal-process")
@click.argument("username")
@db_options
def transparency_legal_process(username: str, db: str, as_json: bool) -> None:
    """Exactly what the operator could hand over about USERNAME."""
    data = _with_service(db, lambda s: s.legal_process(username))
    _emit(data, as_json, _legal_process_text)


def _legal_process_text(d: dict[str, Any]) -> str:
    seized = d["seized_database"]
    lines = [f"{k}: {v}" for k, v in d["produced"].items()]
    lines += [
        "",
        f"A copy of the database shows {seized['undelivered_envelopes']} undelivered "
        f"envelope(s) for this account, {seized['of_which_sealed']} of them sealed (no sender).",
        "It links:",
        *(f"  - {x}" for x in seized["links"]),
        "It cannot link:",
        *(f"  - {x}" for x in seized["cannot_link"]),
    ]
    return "\n".join(lines)


@click.group()
def admin() -> None:
    """Operator tasks: ledger checks, retention, optional-purpose jobs."""


@admin.command("verify-ledger")
@db_options
def admin_verify_ledger(db: str, as_json: bool) -> None:
    """Walk the consent ledger's hash chain and check every receipt; exit 1 on tampering."""
    report = _with_service(db, lambda s: s.verify_ledger())

    def human(d: dict[str, Any]) -> str:
        head = f"{d['events']} events, head {d['head']}: " + ("intact" if d["ok"] else "TAMPERED")
        return "\n".join([head, *d["problems"]])

    _emit(report.to_json(), as_json, human)
    if not report.ok:
        raise CliFailure(f"ledger verification failed: {len(report.problems)} problem(s)")


@admin.command("seal-ledger")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="The server's data directory (holds the key that unlocks the signing key).",
)
@db_options
def admin_seal_ledger(data_dir: Path, db: str, as_json: bool) -> None:
    """Sign the head of a consent ledger written before heads existed (run verify-ledger
    first: this vouches for the chain as it is now)."""
    head = _with_service(db, lambda s: s.seal_ledger(), data_dir=data_dir, sign=True)

    def human(d: dict[str, Any] | None) -> str:
        return "a signed head already exists" if d is None else f"sealed at event {d['seq']}"

    _emit(head, as_json, human)


@admin.command("retention")
@click.option("--now", type=float, default=None, help="Unix time to run as (default: now).")
@db_options
def admin_retention(now: float | None, db: str, as_json: bool) -> None:
    """Delete what is past its retention period."""
    import time

    at = time.time() if now is None else now
    data = _with_service(db, lambda s: s.run_retention(at))
    _emit(data, as_json, lambda d: ", ".join(f"{k}: {v} deleted" for k, v in d.items()))


@admin.command("run-job")
@click.argument("name")
@click.option("--region", default="in", envvar="BAAT_REGION", show_default=True)
@click.option("--affiliate-url", default=None, envvar="BAAT_AFFILIATE_URL")
@db_options
def admin_run_job(
    name: str, region: str, affiliate_url: str | None, db: str, as_json: bool
) -> None:
    """Run an optional-purpose job (improve, understand, customize, market, share_affiliate)."""
    data = _with_service(db, lambda s: s.run_job(name), region=region, affiliate_url=affiliate_url)
    # Job results are data either way.
    _emit(data, True, str)


@admin.command("support-lookup")
@click.argument("username")
@db_options
def admin_support_lookup(username: str, db: str, as_json: bool) -> None:
    """What support staff may see about USERNAME, if that account allows it."""
    data = _with_service(db, lambda s: s.support_lookup(username))
    _emit(data, as_json, lambda d: "\n".join(f"{k}: {v}" for k, v in d.items()))
