"""Browser tests: Playwright for Python driving Debian's ``chromium`` (never a browser Playwright downloads).

The browser is ``TAHSEEL_CHROMIUM`` if set (it must then be an executable file), else ``chromium`` or
``chromium-browser`` on the PATH; with none, every test here is skipped with the reason. One headless
browser serves the whole session (closed at its end, whatever happens); each test gets a fresh context
(no cookies from another test), closed after it.

Loopback only: every server is on 127.0.0.1, the flags below switch off Chromium's own traffic (updates,
sync, field trials, metrics, safe browsing, DNS prefetch) and resolve no host name but loopback, and a
test fails if its pages asked for anything outside 127.0.0.1. The sandbox stays on unless we run as root
(Chromium refuses to start as root with it); ``/dev/shm`` is not used (a container's is small).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

NO_CHROMIUM = "no Chromium: apt-get install chromium, or set TAHSEEL_CHROMIUM"
NO_PLAYWRIGHT = "no Playwright for Python: pip install -e '.[dev]'"
TIMEOUT_MS = 15_000  # Playwright's auto-waiting limit (actions, navigations, expect); two slow cores

CHROMIUM_FLAGS = [
    "--disable-dev-shm-usage",          # a container's /dev/shm is small: Chromium would crash on it
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",  # no phoning home: updates, variations, safe browsing lists...
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--dns-prefetch-disable",
    "--metrics-recording-only",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no name resolves but loopback
]


def chromium_executable() -> str | None:
    """Debian's chromium (or whatever ``TAHSEEL_CHROMIUM`` names); ``None`` when there is none."""
    configured = os.environ.get("TAHSEEL_CHROMIUM")
    if configured:
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            pytest.fail(f"TAHSEEL_CHROMIUM={configured!r} is not an executable file", pytrace=False)
        return configured
    return shutil.which("chromium") or shutil.which("chromium-browser")


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session (skipped, with the reason, when there is none)."""
    executable = chromium_executable()
    if executable is None:
        pytest.skip(NO_CHROMIUM)
    sync_api = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT)
    with sync_api.sync_playwright() as playwright:
        # chromium_sandbox=False is what makes Playwright pass --no-sandbox: only as root.
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS,
                                              chromium_sandbox=not running_as_root(), timeout=60_000)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """``new_page(locale=..., java_script_enabled=...)``: a page in a fresh context; all closed after the test.

    Every request a page makes is looked at: one for a host other than 127.0.0.1 fails the test.
    """
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    contexts: list[Any] = []
    outside: list[str] = []

    def note(request: Any) -> None:
        if urlsplit(request.url).hostname not in ("127.0.0.1", None):
            outside.append(request.url)

    def make(locale: str = "ar-EG", **options: Any) -> Any:
        context = browser.new_context(locale=locale, **options)
        contexts.append(context)
        context.set_default_timeout(TIMEOUT_MS)
        context.on("request", note)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
    assert outside == [], f"the browser asked for something outside loopback: {outside}"
