"""Fixtures for the web app's end-to-end tests: real ``baat serve`` and ``baat app``
processes, and Debian's Chromium driven by Playwright.

The browser tests skip (with the reason) only when ``/usr/bin/chromium`` is missing. Every
page opened through ``pages`` records console errors and uncaught exceptions, and is
photographed into ``tests/e2e/screenshots/`` when its test fails.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.server import ROOT, ServerProcess, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"
URL_LINE = re.compile(r"^baat app: (http://127\.0\.0\.1:(\d+)/\?k=([A-Za-z0-9_-]+))$")
PASS = "correct horse battery staple"


class AppProcess:
    """One ``baat app`` process on its own profile and port; restartable on that port."""

    def __init__(
        self, profile: Path, server_url: str, *, passphrase: str | None, port: int = 0
    ) -> None:
        self.profile = profile
        self.server_url = server_url
        self.passphrase = passphrase
        self.port = port or free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.secret = ""
        self.log_path = profile.parent / f"{profile.name}-app.log"
        self.args: list[str] = []  # more options for the next start (``--new-secret``)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> AppProcess:
        env = {k: v for k, v in os.environ.items() if k != "BAAT_PASSPHRASE"}
        if self.passphrase is not None:
            env["BAAT_PASSPHRASE"] = self.passphrase
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [sys.executable, "-c", "from baat.cli.app import app; app()"]
        cmd += ["--profile", str(self.profile), "--port", str(self.port)]
        cmd += ["--server", self.server_url, "--no-browser", *self.args]
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=ROOT
            )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    break
                match = URL_LINE.match(line.strip())
                if match:
                    self.url, self.secret = match.group(1), match.group(3)
                    assert int(match.group(2)) == self.port
                    return self
            if self.proc.poll() is not None:
                break
        raise RuntimeError(f"baat app did not print its URL:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.proc = None

    def http(self) -> httpx.Client:
        """An httpx client holding this launch's cookie, as a browser would."""
        client = httpx.Client(base_url=self.base, timeout=20)
        client.cookies.set(f"baat_app_{self.port}", self.secret)
        return client

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One ``baat serve`` for a whole test module (the tests use distinct usernames)."""
    proc = ServerProcess(tmp_path_factory.mktemp("server")).start()
    try:
        yield proc
    finally:
        if proc.proc is not None:
            proc.stop()


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[Callable[..., AppProcess]]:
    """``apps(name, server_url, passphrase=...)`` starts an app; all stop at the end."""
    started: list[AppProcess] = []

    def make(name: str, server_url: str, *, passphrase: str | None = None) -> AppProcess:
        app = AppProcess(tmp_path / name, server_url, passphrase=passphrase).start()
        started.append(app)
        return app

    yield make
    for app in started:
        app.stop()


# -- the browser ---------------------------------------------------------------------------


@pytest.fixture
def browser() -> Iterator[Any]:
    """Chromium for one test. Function-scoped on purpose: Playwright's sync API keeps an
    event loop running in this thread while it is started, and pytest-asyncio's autouse
    fixtures (set up before this one, torn down after it) need the thread's loop free."""
    if not CHROMIUM.exists():
        pytest.skip("browser tests need Debian's chromium at /usr/bin/chromium (make system-deps)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="browser tests need playwright (pip install playwright)"
    )
    sync_api.expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


# Assertions wait up to 15 s (Playwright's default is 5): the tests share two cores with
# servers, apps and other test workers, and a loaded machine is slow, not wrong.
EXPECT_TIMEOUT_MS = 15_000


class Pages:
    """Browser contexts opened by one test, each with its console errors."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser
        self.opened: list[tuple[str, Any, list[str]]] = []

    def open(
        self,
        name: str,
        url: str,
        *,
        width: int = 1200,
        height: int = 800,
        before: Callable[[Any], object] | None = None,
    ) -> Any:
        """A new page at ``url``; ``before(page)`` runs first, for listeners that must see
        everything the page does from its start (its WebSocket opens while it loads)."""
        context = self.browser.new_context(
            viewport={"width": width, "height": height}, accept_downloads=True
        )
        page = context.new_page()
        if before is not None:
            before(page)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
        self.opened.append((name, page, errors))
        page.goto(url)
        return page

    def errors(self, page: Any) -> list[str]:
        return next(e for _, p, e in self.opened if p is page)

    def close(self, page: Any) -> None:
        for i, (_, p, _) in enumerate(self.opened):
            if p is page:
                self.opened.pop(i)
                p.context.close()
                return

    def screenshot_all(self, test_name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for name, page, _ in self.opened:
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{test_name}-{name}")
            try:
                page.screenshot(path=str(SCREENSHOTS / f"{safe}.png"), full_page=True)
            except Exception as exc:  # the page may be gone; the failure itself matters more
                print(f"no screenshot of {name}: {exc}")

    def close_all(self) -> None:
        while self.opened:
            self.opened.pop()[1].context.close()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def pages(browser: Any, request: pytest.FixtureRequest) -> Iterator[Pages]:
    p = Pages(browser)
    yield p
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        p.screenshot_all(request.node.name)
    p.close_all()
