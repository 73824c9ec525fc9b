"""The outbox's pure rules: backoff, giving up, masking recipients."""

from __future__ import annotations

import pytest

from plugin.policies.outbox import is_dead, mask_email, mask_phone, retry_delay


@pytest.mark.parametrize(("attempts", "expected"), [
    (0, 30.0),  # treated as the first failure
    (1, 30.0),
    (2, 60.0),
    (3, 120.0),
    (7, 1920.0),
    (8, 3600.0),  # 3840 capped
    (500, 3600.0),  # no overflow however many tries
])
def test_retry_delay_doubles_up_to_the_maximum(attempts: int, expected: float) -> None:
    assert retry_delay(attempts, 30.0, 3600.0, 0.0) == expected


@pytest.mark.parametrize("attempts", [1, 3, 8, 40])
@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.5, 0.999])
def test_jitter_shortens_by_at_most_half_and_never_exceeds_the_cap(attempts: int, jitter: float) -> None:
    plain = retry_delay(attempts, 30.0, 3600.0, 0.0)
    jittered = retry_delay(attempts, 30.0, 3600.0, jitter)
    assert plain / 2 < jittered <= plain <= 3600.0


def test_jitter_spreads_messages_that_failed_together() -> None:
    delays = {retry_delay(8, 30.0, 3600.0, j / 10) for j in range(10)}
    assert len(delays) == 10


@pytest.mark.parametrize(("attempts", "max_attempts", "dead"), [
    (0, 8, False), (7, 8, False), (8, 8, True), (9, 8, True), (1, 1, True),
])
def test_dead_after_max_attempts(attempts: int, max_attempts: int, dead: bool) -> None:
    assert is_dead(attempts, max_attempts) is dead


@pytest.mark.parametrize(("address", "masked"), [
    ("doctor@example.com", "d***@example.com"),
    ("d@example.com", "d***@example.com"),
    ("not-an-address", "***"),
])
def test_mask_email(address: str, masked: str) -> None:
    assert mask_email(address) == masked


@pytest.mark.parametrize(("number", "masked"), [
    ("+27821234567", "+2782***4567"),
    ("+1234", "***"),
])
def test_mask_phone(number: str, masked: str) -> None:
    assert mask_phone(number) == masked
