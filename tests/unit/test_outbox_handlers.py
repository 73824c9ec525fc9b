"""handlers/outbox.py: admins only, a cross-site retry refused, and a retry wakes the worker."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from cryptography.fernet import Fernet

from plugin.errors import Forbidden
from plugin.handlers import outbox as handlers
from plugin.handlers.http import Request
from plugin.identity.authenticate import Identification
from plugin.notify.cipher import contact_cipher
from plugin.policies.types import Principal
from plugin.store import outbox
from plugin.store.db import Store
from plugin.store.outbox import NewMessage
from tests.unit.conftest import T0

ADMIN = Principal("alice", frozenset({"admin"}), "session", session_id="s1")
DOCTOR = Principal("drnkosi", frozenset({"referring_doctor"}), "session", session_id="s2")
CIPHER = contact_cipher(Fernet.generate_key())


class Worker:
    cipher = CIPHER

    def __init__(self) -> None:
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


def runtime_for(store: Store, principal: Principal) -> SimpleNamespace:
    identify = lambda headers, ip: Identification(principal, csrf_token="csrf-1")  # noqa: E731
    return SimpleNamespace(store=store, outbox=Worker(), clock=lambda: T0 + 10, audit_now=lambda record: True,
                           authenticator=SimpleNamespace(identify=identify))


@pytest.fixture
def queued(store: Store) -> Store:
    with store.transaction() as db:
        outbox.enqueue(db, NewMessage("k:1", "email", "welcome", "doctor@example.com", "s", "t", "h"), CIPHER, T0)
    return store


def test_an_admin_lists_the_outbox(queued: Store) -> None:
    answer = handlers.list_messages(runtime_for(queued, ADMIN), Request("GET", "/gate/api/outbox",
                                                                        query={"status": "pending"}))
    [message] = json.loads(answer.body)["messages"]
    assert (answer.status, message["recipient"], message["status"]) == (200, "d***@example.com", "pending")


def test_an_admin_retries_and_the_worker_is_woken(queued: Store) -> None:
    runtime = runtime_for(queued, ADMIN)
    answer = handlers.retry(runtime, Request("POST", "/gate/api/outbox/1/retry", headers={"x-csrf-token": "csrf-1"}),
                            "1")
    assert json.loads(answer.body)["retried"] is True and runtime.outbox.woken == 1


def test_a_cross_site_retry_is_refused(queued: Store) -> None:
    runtime = runtime_for(queued, ADMIN)
    with pytest.raises(Forbidden, match="Cross-site"):
        handlers.retry(runtime, Request("POST", "/gate/api/outbox/1/retry"), "1")
    assert runtime.outbox.woken == 0


def test_others_may_not_see_or_retry(queued: Store) -> None:
    runtime = runtime_for(queued, DOCTOR)
    with pytest.raises(Forbidden):
        handlers.list_messages(runtime, Request("GET", "/gate/api/outbox"))
    with pytest.raises(Forbidden):
        handlers.retry(runtime, Request("POST", "/gate/api/outbox/1/retry", headers={"x-csrf-token": "csrf-1"}), "1")
