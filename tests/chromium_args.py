"""The flags the browser tests launch headless Chromium with (Debian's chromium, via Playwright).

The same list is in frontend/playwright.config.ts and benchmarks/bench_widget.py, which cannot
import this module.
"""

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
