"""Fixtures shared by the browser tests (tests/browser.py holds the helpers)."""

import pytest


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright (tests/browser.py): skipped where it is missing,
    failed instead under COURSE_REQUIRE_BROWSER=1."""
    from browser import chromium

    with chromium() as b:
        yield b
