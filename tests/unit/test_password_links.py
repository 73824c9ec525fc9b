"""services/password_links.py: a set-password link is a 256-bit secret stored only as its SHA-256, works
once, expires, ends the account's earlier links, sets the password by the one password rule, and a
used, expired or unknown link all fail alike (410, 410, 404, one message)."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from plugin.audit.record import AuditRecord
from plugin.errors import BadRequest
from plugin.identity.secrets import hash_password, token_hash, verify_password
from plugin.services import password_links
from plugin.services.accounts import MIN_PASSWORD_LENGTH
from plugin.services.password_links import EXPIRED_MESSAGE, LinkUnusable, check, issue, redeem
from plugin.store import accounts
from plugin.store.db import Store
from plugin.store.models import PasswordToken, Session, User
from tests.unit.conftest import T0

NEW_PASSWORD = "a brand new long password"


@pytest.fixture(autouse=True)
def _cheap(cheap_argon2) -> None:
    """argon2 with tiny costs: these tests hash many passwords."""


@pytest.fixture
def audit() -> list[AuditRecord]:
    return []


def sink(records: list[AuditRecord]):  # noqa: ANN201 - an AuditSink
    return lambda record: records.append(record) or True


def make_user(store: Store, username: str = "drnkosi", source: str = "local", disabled: bool = False,
              password: str | None = None) -> None:
    with store.transaction() as db:
        accounts.add_user(db, User(username=username, roles="referring_doctor", source=source, disabled=disabled,
                                   must_change_password=True, created_at=T0, updated_at=T0,
                                   password_hash=hash_password(password) if password else None,
                                   directory_id=f"uid={username}" if source != "local" else None))


def issued(store: Store, username: str = "drnkosi", now: float = T0, hours: float = 72) -> str:
    with store.transaction() as db:
        return issue(db, username, now, hours)


def user(store: Store, username: str = "drnkosi") -> User:
    with store.read() as db:
        return accounts.user_by_name(db, username)


def tokens(store: Store) -> list[PasswordToken]:
    with store.read() as db:
        return list(db.execute(select(PasswordToken).order_by(PasswordToken.id)).scalars())


def test_a_link_is_256_bits_and_only_its_hash_is_stored(store):
    make_user(store)
    token = issued(store)
    assert len(token) == 43  # secrets.token_urlsafe(32)
    [row] = tokens(store)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() != token
    assert (row.username, row.created_at, row.expires_at, row.used_at) == ("drnkosi", T0, T0 + 72 * 3600, None)
    assert check(store, token, T0) == password_links.PasswordLink("drnkosi", T0 + 72 * 3600)


def test_issue_works_inside_the_transaction_that_made_the_account(store):
    with store.transaction() as db:
        accounts.add_user(db, User(username="newdoc", roles="referring_doctor", created_at=T0, updated_at=T0))
        token = issue(db, "newdoc", T0, 24)
    assert check(store, token, T0).username == "newdoc"


@pytest.mark.parametrize(("name", "source"), [("ghost", None), ("ldapdoc", "ldap")])
def test_links_are_only_for_local_accounts(store, name, source):
    if source:
        make_user(store, name, source=source)
    with pytest.raises(BadRequest, match="not a local account"):
        issued(store, name)
    assert tokens(store) == []


def test_a_new_link_ends_the_earlier_unused_ones(store, audit):
    make_user(store)
    first = issued(store, now=T0)
    second = issued(store, now=T0 + 60)
    with pytest.raises(LinkUnusable) as gone:
        check(store, first, T0 + 120)
    assert gone.value.status == 410
    assert check(store, second, T0 + 120).username == "drnkosi"


def test_redeeming_sets_the_password_once_and_is_audited(store, audit):
    make_user(store, password="the old password 123")
    token = issued(store)
    with store.transaction() as db:
        accounts.add_session(db, Session(id="s" * 64, user_id=user(store).id, csrf_token="c", created_at=T0,
                                         last_seen_at=T0, expires_at=T0 + 3600))
    assert redeem(store, sink(audit), token, NEW_PASSWORD, T0 + 10, "10.0.0.9") == "drnkosi"
    account = user(store)
    assert verify_password(account.password_hash, NEW_PASSWORD)
    assert not verify_password(account.password_hash, "the old password 123")
    assert account.must_change_password is False and account.updated_at == T0 + 10
    with store.read() as db:
        assert db.get(Session, "s" * 64).revoked_at == T0 + 10  # a set password ends the sessions
    assert tokens(store)[0].used_at == T0 + 10
    [record] = audit
    assert (record.actor, record.action, record.outcome, record.source_ip) == \
        ("drnkosi", "password.link", "success", "10.0.0.9")
    assert token not in repr(record) and token_hash(token) not in repr(record)
    with pytest.raises(LinkUnusable) as again:
        redeem(store, sink(audit), token, "yet another long password", T0 + 20, "10.0.0.9")
    assert again.value.status == 410 and verify_password(user(store).password_hash, NEW_PASSWORD)
    assert audit[-1].outcome == "failure" and audit[-1].actor == "drnkosi"


@pytest.mark.parametrize(("case", "status"), [("used", 410), ("expired", 410), ("unknown", 404), ("malformed", 404),
                                              ("superseded", 410), ("disabled", 410), ("empty", 404)])
def test_unusable_links_all_say_the_same(store, audit, case, status):
    make_user(store, disabled=case == "disabled")
    token = issued(store, hours=1)
    now = T0 + 10
    if case == "used":
        redeem(store, sink(audit), token, NEW_PASSWORD, now, "")
    elif case == "expired":
        now = T0 + 3600
    elif case == "unknown":
        token = password_links.new_token()
    elif case == "malformed":
        token = token + "/../x"
    elif case == "superseded":
        issued(store, now=T0 + 5)
    elif case == "empty":
        token = ""
    before = user(store).password_hash
    for attempt in (lambda: check(store, token, now),
                    lambda: redeem(store, sink(audit), token, "some other long password", now, "")):
        with pytest.raises(LinkUnusable) as refused:
            attempt()
        assert (refused.value.status, refused.value.message, refused.value.code) == \
            (status, EXPIRED_MESSAGE, "link_expired")
    assert user(store).password_hash == before
    assert audit[-1].outcome == "failure"


@pytest.mark.parametrize(("password", "said"), [("short", f"at least {MIN_PASSWORD_LENGTH} characters"),
                                              ("aaaaaaaaaaaaaaaa", "repeats a character"),
                                              ("Password1234", "too common"),
                                              ("drnkosi's long password", "contains your username")])
def test_the_password_rules_are_the_ones_of_every_password(store, audit, password, said):
    make_user(store)
    token = issued(store)
    with pytest.raises(BadRequest, match=said):
        redeem(store, sink(audit), token, password, T0, "")
    assert check(store, token, T0).username == "drnkosi"  # a refused password leaves the link usable
    assert tokens(store)[0].used_at is None and audit == []


def test_a_link_expires_at_its_end(store):
    make_user(store)
    token = issued(store, hours=2)
    assert check(store, token, T0 + 2 * 3600 - 1).username == "drnkosi"
    with pytest.raises(LinkUnusable):
        check(store, token, T0 + 2 * 3600)


def test_a_link_must_last_some_time(store):
    make_user(store)
    with pytest.raises(BadRequest):
        issued(store, hours=0)
