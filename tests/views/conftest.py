"""The views' fixtures: headless Chromium for the report's and the dashboard's pages."""
from __future__ import annotations

import os

import pytest
from helpers.browser import Chromium, chromium_binary


@pytest.fixture
def browser():
    binary = chromium_binary()
    if not binary:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run must install it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    pytest.importorskip("websockets.sync.client", reason="the DevTools client needs websockets>=12")
    with Chromium(binary) as b:
        yield b
