"""policies/console.py: who may open the admin console."""

from __future__ import annotations

import pytest

from plugin.policies.console import NO_SECOND_STEP, NOT_A_BROWSER, NOT_AN_ADMIN, console_refusal
from plugin.policies.types import Principal

ADMIN = frozenset({"admin"})


@pytest.mark.parametrize("principal, refusal", [
    (Principal("root", ADMIN, "session", mfa_done=True), None),
    (Principal("root", ADMIN, "session", mfa_done=False), NO_SECOND_STEP),
    (Principal("root", ADMIN, "api_key", mfa_done=True), NOT_A_BROWSER),
    (Principal("root", ADMIN, "basic"), NOT_A_BROWSER),
    (Principal("drnkosi", frozenset({"referring_doctor"}), "session", mfa_done=True), NOT_AN_ADMIN),
    (Principal("rad", frozenset({"radiologist", "billing"}), "session", mfa_done=True), NOT_AN_ADMIN),
])
def test_only_an_admin_session_that_proved_a_code_opens_the_console(principal, refusal):
    assert console_refusal(principal) == refusal
