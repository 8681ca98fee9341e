"""One headless Debian Chromium page (Playwright, ``executable_path``) that fails the test on an
uncaught error in the page. For new browser tests; the flags are those of chromium_args."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chromium_args import CHROMIUM_ARGS

CHROMIUM = Path(os.environ.get("LABCAM_CHROMIUM", "/usr/bin/chromium"))


@contextmanager
def chromium_page() -> Iterator[Any]:
    """Yield a Playwright ``Page``; on exit, close the browser and assert that the page raised nothing."""
    if not CHROMIUM.exists():  # the browser is part of the test environment (scripts/setup.sh --test)
        raise RuntimeError(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            yield page
        finally:
            browser.close()
        assert not errors, f"uncaught errors in the page: {errors}"
