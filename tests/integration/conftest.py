"""Fixtures the integration tests share beyond tests/conftest.py's servers: Debian's Chromium, and
the mail server and SMS gateway stand-ins messages go to (one each per module that asks)."""

from __future__ import annotations

import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import sync_playwright

from tests.harness import free_port
from tests.integration.message_sinks import Mailbox, SmsSink


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright (no browser of its own downloaded)."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def mailbox():
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def sms():
    sink = SmsSink(free_port())
    sink.start()
    yield sink
    sink.stop()
