"""Account use cases against a real store: validation, first admin, passwords, and their audit."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from plugin.errors import BadRequest, Conflict, NotFound, Unauthenticated
from plugin.identity.authenticate import Authenticator
from plugin.services import accounts, users
from plugin.store import accounts as account_rows
from plugin.store.models import ApiKey, Session
from tests.unit.accounts_support import add_api_key, add_user, disable

pytestmark = pytest.mark.usefixtures("cheap_argon2")

PASSWORD = "doctor password 123"
NEW_PASSWORD = "another password 456"
IP = "10.0.0.7"


@pytest.fixture
def events() -> list:
    return []


@pytest.fixture
def sink(events):
    def record(event) -> bool:
        events.append(event)
        return True

    return record


def create(store, sink, clock, username="drnkosi", roles=("referring_doctor",), password=PASSWORD, **kw):
    return add_user(store, clock(), username, list(roles), password, **kw, audit=sink, actor="root1")


def user_row_in(db, username):
    return account_rows.user_by_name(db, username)


def user_row(store, username):
    with store.read() as db:
        return account_rows.user_by_name(db, username)


def sign_in(store, sink, clock, username="drnkosi", password=PASSWORD):
    authenticator = Authenticator(store, 2.0, 60.0, 1800.0, clock=clock)
    return accounts.sign_in(store, sink, authenticator, clock(), username, password, IP, 1800, 3600)


def actions(events) -> list[tuple[str, str]]:
    return [(e.action, e.outcome) for e in events]


# -- create_user ----------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["", "-lead", ".dot", "has space", "a" * 129, "ünïcode", "a/b", "a:b",
                                      "alice\n", "bob\r\n", "x\x00"])
def test_create_user_refuses_bad_usernames(store, sink, clock, events, username):
    with pytest.raises(BadRequest, match="Usernames"):
        create(store, sink, clock, username=username)
    assert events == []


@pytest.mark.parametrize("username", ["a", "dr.nkosi", "n_dlamini@clinic.example", "x-ray-1", "A" * 128])
def test_create_user_accepts_good_usernames(store, sink, clock, username):
    assert create(store, sink, clock, username=username).username == username


def test_create_user_refuses_unknown_role_and_names_it(store, sink, clock, events):
    with pytest.raises(BadRequest, match="'superuser'"):
        create(store, sink, clock, roles=("radiologist", "superuser"))
    assert user_row(store, "drnkosi") is None and events == []


def test_create_user_needs_a_role(store, sink, clock):
    with pytest.raises(BadRequest, match="at least one role"):
        create(store, sink, clock, roles=())


def test_create_user_refuses_a_short_password(store, sink, clock):
    with pytest.raises(BadRequest, match="12 characters"):
        create(store, sink, clock, password="x" * 11)


def test_create_user_refuses_a_duplicate(store, sink, clock, events):
    create(store, sink, clock)
    with pytest.raises(Conflict):
        create(store, sink, clock, roles=("admin",))
    assert user_row(store, "drnkosi").role_set == {"referring_doctor"}
    assert actions(events) == [("user.create", "success")]


def test_create_user_stores_an_argon2id_hash_and_sorted_roles(store, sink, clock):
    create(store, sink, clock, roles=("radiologist", "billing", "radiologist"))
    row = user_row(store, "drnkosi")
    assert row.password_hash.startswith("$argon2id$") and PASSWORD not in row.password_hash
    assert row.roles == "billing,radiologist"


def test_create_user_without_password_has_no_hash(store, sink, clock):
    create(store, sink, clock, password=None)
    assert user_row(store, "drnkosi").password_hash is None


def test_create_user_is_audited_with_actor_and_roles(store, sink, clock, events):
    create(store, sink, clock, roles=("radiologist", "admin"))
    [event] = events
    assert (event.actor, event.action, event.outcome, event.route_class) == ("root1", "user.create", "success",
                                                                             "account")
    assert "drnkosi" in event.reason and "admin,radiologist" in event.reason


# -- ensure_first_admin -------------------------------------------------------------------------------


def test_first_admin_is_created_once_with_a_forced_password_change(store, sink, clock, events):
    created = users.ensure_first_admin(store, sink, clock())
    assert created is not None
    username, password = created
    row = user_row(store, username)
    assert username == "admin" and row.role_set == {"admin"} and row.must_change_password
    assert sign_in(store, sink, clock, username, password).principal.must_change_password
    assert users.ensure_first_admin(store, sink, clock()) is None
    assert [e.action for e in events].count("user.create") == 1


def test_first_admin_is_not_created_when_an_admin_exists(store, sink, clock):
    create(store, sink, clock, username="root1", roles=("admin",))
    assert users.ensure_first_admin(store, sink, clock()) is None


def test_first_admin_takes_another_name_when_admin_is_taken(store, sink, clock):
    create(store, sink, clock, username="admin", roles=("billing",))
    username, _password = users.ensure_first_admin(store, sink, clock())
    assert username.startswith("admin-") and user_row(store, username).role_set == {"admin"}


def test_a_disabled_admin_does_not_count(store, sink, clock):
    # The last admin cannot be disabled through the Gate (test_users.py); a store where it is
    # (restored from elsewhere, or edited by hand) still gets a first admin.
    create(store, sink, clock, username="root1", roles=("admin",))
    with store.transaction() as db:
        user_row_in(db, "root1").disabled = True
    assert users.ensure_first_admin(store, sink, clock()) is not None


# -- API keys --------------------------------------------------------------------------------------------


def test_api_key_is_stored_only_as_its_sha256(store, sink, clock, events):
    create(store, sink, clock)
    token = add_api_key(store, clock(), "viewer", "drnkosi", audit=sink, actor="root1")
    with store.read() as db:
        [key] = db.query(ApiKey).all()
    assert key.key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert len(token) >= 43  # 256 bits, URL-safe base64
    assert actions(events)[-1] == ("api_key.create", "success")
    assert token not in repr(dataclasses.asdict(events[-1]))


@pytest.mark.parametrize("name", ["", "n" * 129])
def test_api_key_needs_a_name(store, sink, clock, name):
    create(store, sink, clock)
    with pytest.raises(BadRequest):
        add_api_key(store, clock(), name, "drnkosi", audit=sink, actor="root1")


def test_api_key_for_unknown_user(store, sink, clock):
    with pytest.raises(NotFound):
        add_api_key(store, clock(), "k", "nobody", audit=sink, actor="root1")


def test_api_key_for_disabled_user(store, sink, clock):
    create(store, sink, clock)
    disable(store, clock(), "drnkosi", audit=sink, actor="root1")
    with pytest.raises(Conflict):
        add_api_key(store, clock(), "k", "drnkosi", audit=sink, actor="root1")


# -- disable_user ------------------------------------------------------------------------------------------


def test_disable_user_ends_their_sessions_and_is_audited(store, sink, clock, events):
    create(store, sink, clock)
    sign_in(store, sink, clock)
    sign_in(store, sink, clock)
    clock.advance(5)
    disable(store, clock(), "drnkosi", audit=sink, actor="root1")
    with store.read() as db:
        sessions = db.query(Session).all()
    assert len(sessions) == 2 and all(s.revoked_at == clock() for s in sessions)
    assert user_row(store, "drnkosi").disabled
    assert actions(events)[-1] == ("user.disable", "success") and events[-1].actor == "root1"


def test_disable_unknown_user(store, sink, clock):
    with pytest.raises(NotFound):
        disable(store, clock(), "nobody", audit=sink, actor="root1")


# -- sign_in and sign_out -----------------------------------------------------------------------------------


def test_sign_in_opens_a_new_session_every_time(store, sink, clock, events):
    create(store, sink, clock)
    first, second = sign_in(store, sink, clock), sign_in(store, sink, clock)
    assert first.token != second.token and first.csrf_token != second.csrf_token
    assert first.principal.session_id != second.principal.session_id
    assert actions(events)[-2:] == [("login", "success")] * 2
    assert events[-1].source_ip == IP and events[-1].roles == "referring_doctor"


def test_sign_in_session_expires_after_max_seconds(store, sink, clock):
    create(store, sink, clock)
    signed = sign_in(store, sink, clock)
    with store.read() as db:
        session = db.get(Session, signed.principal.session_id)
    assert (session.created_at, session.last_seen_at, session.expires_at) == (clock(), clock(), clock() + 3600)


@pytest.mark.parametrize(("username", "password"), [("drnkosi", "wrong password!"), ("nobody", PASSWORD), ("", "")])
def test_sign_in_failure_is_refused_and_audited(store, sink, clock, events, username, password):
    create(store, sink, clock)
    with pytest.raises(Unauthenticated):
        sign_in(store, sink, clock, username, password)
    assert actions(events)[-1] == ("login", "failure")
    assert password == "" or password not in repr(dataclasses.asdict(events[-1]))


def test_sign_in_of_a_disabled_user_is_refused_and_audited(store, sink, clock, events):
    create(store, sink, clock)
    disable(store, clock(), "drnkosi", audit=sink, actor="root1")
    with pytest.raises(Unauthenticated):
        sign_in(store, sink, clock)
    assert actions(events)[-1] == ("login", "failure") and events[-1].reason == "account disabled"


def test_sign_out_revokes_the_session_and_is_audited(store, sink, clock, events):
    create(store, sink, clock)
    signed = sign_in(store, sink, clock)
    accounts.sign_out(store, sink, clock(), signed.principal, IP)
    with store.read() as db:
        assert db.get(Session, signed.principal.session_id).revoked_at == clock()
    assert actions(events)[-1] == ("logout", "success") and events[-1].actor == "drnkosi"


def test_sign_out_without_a_session_does_nothing(store, sink, clock, events):
    create(store, sink, clock)
    principal = dataclasses.replace(sign_in(store, sink, clock).principal, session_id=None, via="basic")
    before = len(events)
    accounts.sign_out(store, sink, clock(), principal, IP)
    assert len(events) == before


# -- change_password --------------------------------------------------------------------------------------


def test_change_password_replaces_it_and_clears_the_forced_change(store, sink, clock, events):
    create(store, sink, clock, must_change_password=True)
    accounts.change_password(store, sink, clock(), "drnkosi", PASSWORD, NEW_PASSWORD, IP)
    assert not user_row(store, "drnkosi").must_change_password
    assert sign_in(store, sink, clock, password=NEW_PASSWORD).principal.username == "drnkosi"
    with pytest.raises(Unauthenticated):
        sign_in(store, sink, clock, password=PASSWORD)
    assert ("password.change", "success") in actions(events)
    assert all(NEW_PASSWORD not in repr(dataclasses.asdict(e)) for e in events)


def test_change_password_ends_every_other_session_of_the_account(store, sink, clock, events):
    create(store, sink, clock)
    create(store, sink, clock, username="drother")
    here, elsewhere = sign_in(store, sink, clock), sign_in(store, sink, clock)
    someone_else = sign_in(store, sink, clock, "drother")
    ended = accounts.change_password(store, sink, clock(), "drnkosi", PASSWORD, NEW_PASSWORD, IP,
                                     here.principal.session_id)
    assert ended == 1
    with store.read() as db:
        revoked = {s.id: s.revoked_at for s in db.query(Session).all()}
    assert revoked[here.principal.session_id] is None and revoked[someone_else.principal.session_id] is None
    assert revoked[elsewhere.principal.session_id] == clock()
    assert events[-1].reason == "password changed; 1 other session(s) ended"


def test_change_password_needs_the_current_one(store, sink, clock, events):
    create(store, sink, clock)
    with pytest.raises(Unauthenticated):
        accounts.change_password(store, sink, clock(), "drnkosi", "wrong password!", NEW_PASSWORD, IP)
    assert sign_in(store, sink, clock).principal.username == "drnkosi"
    assert ("password.change", "success") not in actions(events)


def test_change_password_of_unknown_user(store, sink, clock):
    with pytest.raises(Unauthenticated):
        accounts.change_password(store, sink, clock(), "nobody", PASSWORD, NEW_PASSWORD, IP)


def test_change_password_refuses_a_short_new_password(store, sink, clock):
    create(store, sink, clock)
    with pytest.raises(BadRequest, match="12 characters"):
        accounts.change_password(store, sink, clock(), "drnkosi", PASSWORD, "short", IP)


def test_change_password_refuses_the_same_password(store, sink, clock):
    create(store, sink, clock)
    with pytest.raises(BadRequest, match="different"):
        accounts.change_password(store, sink, clock(), "drnkosi", PASSWORD, PASSWORD, IP)


def test_change_password_follows_the_password_rules_with_the_username(store, sink, clock):
    create(store, sink, clock)
    for weak, said in (("aaaaaaaaaaaa", "repeats"), ("Password1234", "too common"),
                       ("drnkosi's new password", "contains your username")):
        with pytest.raises(BadRequest, match=said):
            accounts.change_password(store, sink, clock(), "drnkosi", PASSWORD, weak, IP)


def test_change_password_checks_the_confirmation_when_given(store, sink, clock, events):
    create(store, sink, clock)
    with pytest.raises(BadRequest, match="The two new passwords differ") as refused:
        accounts.change_password(store, sink, clock(), "drnkosi", PASSWORD, NEW_PASSWORD, IP,
                                 confirm=NEW_PASSWORD + "!")
    assert refused.value.field == "confirm"
    accounts.change_password(store, sink, clock(), "drnkosi", PASSWORD, NEW_PASSWORD, IP, confirm=NEW_PASSWORD)
    assert sign_in(store, sink, clock, password=NEW_PASSWORD).principal.username == "drnkosi"


def test_an_account_that_must_change_its_password_is_not_asked_for_the_current_one(store, sink, clock, events):
    create(store, sink, clock, must_change_password=True)
    ended = accounts.change_password(store, sink, clock(), "drnkosi", "", NEW_PASSWORD, IP, confirm=NEW_PASSWORD)
    assert ended == 0 and not user_row(store, "drnkosi").must_change_password
    assert sign_in(store, sink, clock, password=NEW_PASSWORD).principal.must_change_password is False
    assert events[-2].reason == ("password changed in place of the one to change at first sign-in (proved at "
                                 "sign-in); 0 other session(s) ended")
    # Once it is the account's own, the current password is asked again.
    with pytest.raises(Unauthenticated, match="The current password is wrong"):
        accounts.change_password(store, sink, clock(), "drnkosi", "", "yet another password 789", IP)


def test_the_password_given_cannot_be_chosen_again(store, sink, clock):
    create(store, sink, clock, must_change_password=True)
    with pytest.raises(BadRequest, match="different from the one you were given"):
        accounts.change_password(store, sink, clock(), "drnkosi", "", PASSWORD, IP)
    assert user_row(store, "drnkosi").must_change_password


def test_a_directory_account_changes_its_password_in_the_directory(store, sink, clock):
    with store.transaction() as db:
        account_rows.upsert_directory_account(db, "uuid:0001", "dlamini", "radiologist", "", "Dr Dlamini", clock())
    with pytest.raises(BadRequest, match="kept in the directory"):
        accounts.change_password(store, sink, clock(), "dlamini", "the directory one", NEW_PASSWORD, IP)


# -- every change is audited -------------------------------------------------------------------------------


def test_every_account_change_writes_an_audit_record(store, sink, clock, events):
    create(store, sink, clock)
    add_api_key(store, clock(), "viewer", "drnkosi", audit=sink, actor="root1")
    signed = sign_in(store, sink, clock)
    accounts.change_password(store, sink, clock(), "drnkosi", PASSWORD, NEW_PASSWORD, IP)
    accounts.sign_out(store, sink, clock(), signed.principal, IP)
    disable(store, clock(), "drnkosi", audit=sink, actor="root1")
    assert [e.action for e in events] == ["user.create", "api_key.create", "login", "password.change", "logout",
                                          "user.disable"]
    assert all(e.route_class == "account" and e.ts for e in events)
