"""Shared test set-up: tools/ on the path and Hypothesis settings."""

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

# CI and the test command: the same examples every run, no per-example deadline (a shared
# 2-core machine has slow moments). HYPOTHESIS_PROFILE=dev explores new random examples.
settings.register_profile("ci", derandomize=True, deadline=None, database=None, print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    """40,000 characters of the shipped corpus as a plain text file (the trainer's --data)."""
    from course_lib import data as course_data

    path = tmp_path_factory.mktemp("data") / "input.txt"
    path.write_text(course_data.load_corpus("train", "small")[:40_000], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright (tests/browser.py), shared by the browser tests:
    skipped where it is missing, failed instead under COURSE_REQUIRE_BROWSER=1."""
    from browser import chromium

    with chromium() as b:
        yield b
