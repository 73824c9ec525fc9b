"""services/users.py against a real store: admin-only, fresh MFA for privileged changes, audit with
before and after, directory accounts, the last admin, API keys."""

from __future__ import annotations

import json

import pyotp
import pytest
from cryptography.fernet import Fernet

from plugin.errors import BadRequest, Conflict, Forbidden, MfaRequired, NotFound
from plugin.identity.mfa import Mfa
from plugin.identity.secrets import token_hash
from plugin.policies.types import Principal
from plugin.services import users
from plugin.store import accounts as account_rows
from plugin.store.models import Session

pytestmark = pytest.mark.usefixtures("cheap_argon2")

IP = "10.0.0.7"
SESSION_ID = "s" * 64
PASSWORD = "a long password 123"


@pytest.fixture
def events() -> list:
    return []


@pytest.fixture
def sink(events):
    return lambda event: events.append(event) or True


@pytest.fixture
def mfa(store) -> Mfa:
    return Mfa(store, Fernet.generate_key(), "Orthanc Gate tests")


@pytest.fixture
def admin_id(store, sink, clock) -> int:
    """root1, an admin with a session SESSION_ID that proved no code yet; nkosi, a radiologist."""
    users.create_user(store, sink, None, users.GATECTL, clock(), {"username": "root1", "roles": ["admin"],
                                                                  "password": PASSWORD})
    users.create_user(store, sink, None, users.GATECTL, clock(), {"username": "nkosi", "roles": ["radiologist"],
                                                                  "email": "nkosi@clinic.example"})
    with store.transaction() as db:
        admin = account_rows.user_by_name(db, "root1")
        account_rows.add_session(db, Session(id=SESSION_ID, user_id=admin.id, csrf_token="c", created_at=clock(),
                                             last_seen_at=clock(), expires_at=clock() + 3600))
    return admin.id


@pytest.fixture
def events_after_setup(admin_id, events) -> list:
    events.clear()
    return events


def actor(via: str = "session", otp: str = "") -> users.Actor:
    return users.Actor("root1", frozenset({"admin"}), via, SESSION_ID if via == "session" else None, IP, otp)


def proved_at(store, when: float | None) -> None:
    with store.transaction() as db:
        account_rows.mark_session_mfa(db, SESSION_ID, when)


def session_mfa_at(store) -> float | None:
    with store.read() as db:
        return account_rows.session_mfa_at(db, SESSION_ID)


def enrol(mfa: Mfa, user_id: int, now: float) -> str:
    """Turn MFA on with a code of two steps ago, so the codes of now are still unused."""
    secret, _ = mfa.pending_secret(user_id)
    assert mfa.confirm(user_id, pyotp.TOTP(secret).at(now - 60), now - 60) is not None
    return secret


def row(store, username):
    with store.read() as db:
        return account_rows.user_by_name(db, username)


def update(store, sink, mfa, clock, data, who=None, username="nkosi"):
    return users.update_user(store, sink, mfa, who or actor(), clock(), username, data)


# -- who may ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("principal", [
    Principal("nkosi", frozenset({"radiologist"}), "session"),
    Principal("root1", frozenset({"admin"}), "session", must_change_password=True),
    Principal("root1", frozenset({"admin"}), "session", mfa_pending=True),
])
def test_only_admins_who_owe_nothing_administer(principal):
    with pytest.raises(Forbidden):
        users.require_admin(principal)


def test_an_admin_may():
    users.require_admin(Principal("root1", frozenset({"admin", "billing"}), "api_key"))


def test_the_actor_of_a_principal_keeps_how_they_signed_in():
    principal = Principal("root1", frozenset({"admin"}), "session", session_id=SESSION_ID)
    assert users.Actor.calling(principal, IP, "123456") == users.Actor("root1", frozenset({"admin"}), "session",
                                                                       SESSION_ID, IP, "123456")


# -- reading ---------------------------------------------------------------------------------------


def test_list_and_get_show_the_fields_of_the_api(store, admin_id):
    listed = users.list_users(store)
    assert [u["username"] for u in listed] == ["nkosi", "root1"]
    assert users.get_user(store, "nkosi") == listed[0] == {
        "username": "nkosi", "display_name": "", "email": "nkosi@clinic.example", "roles": ["radiologist"],
        "source": "local", "disabled": False, "mfa_enabled": False, "must_change_password": False}


def test_get_unknown_user(store, admin_id):
    with pytest.raises(NotFound):
        users.get_user(store, "nobody")


# -- create ----------------------------------------------------------------------------------------


def test_create_keeps_email_and_display_name_and_is_audited(store, sink, mfa, clock, events_after_setup):
    created = users.create_user(store, sink, mfa, actor("api_key"), clock(), {
        "username": "moyo", "roles": ["billing", "radiographer", "billing"], "password": PASSWORD,
        "email": "moyo@clinic.example", "display_name": "Sr Moyo"})
    assert created["roles"] == ["billing", "radiographer"] and created["display_name"] == "Sr Moyo"
    assert row(store, "moyo").password_hash.startswith("$argon2id$")
    [event] = events_after_setup
    assert (event.action, event.actor, event.source_ip, event.roles) == ("user.create", "root1", IP, "admin")
    assert json.loads(event.detail)["after"]["email"] == "moyo@clinic.example"
    assert PASSWORD not in event.detail


@pytest.mark.parametrize(("data", "error", "message"), [
    ({"username": "nkosi", "roles": ["billing"]}, Conflict, "exists already"),
    ({"username": "moyo", "roles": "billing"}, BadRequest, "list of role names"),
    ({"username": "moyo", "roles": ["superuser"]}, BadRequest, "Unknown role"),
    ({"username": "moyo"}, BadRequest, "list of role names"),
    ({"roles": ["billing"]}, BadRequest, '"username" must be a non-empty string'),
    ({"username": "moyo", "roles": ["billing"], "role": "admin"}, BadRequest, "Unknown field 'role'"),
    ({"username": "moyo", "roles": ["billing"], "email": "moyo"}, BadRequest, "not an e-mail address"),
    ({"username": "moyo", "roles": ["billing"], "password": "short"}, BadRequest, "at least 12"),
    ({"username": "moyo", "roles": ["billing"], "display_name": 7}, BadRequest, '"display_name" must be a string'),
])
def test_create_refuses_bad_input(store, sink, mfa, clock, events_after_setup, data, error, message):
    with pytest.raises(error, match=message):
        users.create_user(store, sink, mfa, actor("api_key"), clock(), data)
    assert row(store, "moyo") is None and events_after_setup == []


def test_an_admin_with_a_password_needs_fresh_mfa_but_one_without_does_not(store, sink, mfa, clock,
                                                                            events_after_setup):
    with pytest.raises(MfaRequired):
        users.create_user(store, sink, mfa, actor("api_key"), clock(),
                          {"username": "boss", "roles": ["admin"], "password": PASSWORD})
    assert row(store, "boss") is None
    assert [(e.action, e.outcome) for e in events_after_setup] == [("user.create", "failure")]
    users.create_user(store, sink, mfa, actor("api_key"), clock(), {"username": "boss", "roles": ["admin"]})
    assert row(store, "boss").password_hash is None


def test_a_password_set_by_an_admin_must_be_changed_unless_the_request_says_not(store, sink, mfa, clock,
                                                                                events_after_setup):
    forced = users.create_user(store, sink, mfa, actor("api_key"), clock(),
                               {"username": "moyo", "roles": ["billing"], "password": PASSWORD})
    service = users.create_user(store, sink, mfa, actor("api_key"), clock(),
                                {"username": "pacsbot", "roles": ["radiologist"], "password": PASSWORD,
                                 "must_change_password": False})
    none = users.create_user(store, sink, mfa, actor("api_key"), clock(), {"username": "mabena", "roles": ["billing"]})
    assert [forced["must_change_password"], service["must_change_password"], none["must_change_password"]] == \
        [True, False, False]
    assert row(store, "moyo").must_change_password and not row(store, "pacsbot").must_change_password
    made, opted_out, _ = events_after_setup
    assert json.loads(made.detail)["after"]["must_change_password"] is True
    assert made.reason == "created user moyo with roles billing and a password to change at first sign-in"
    assert json.loads(opted_out.detail)["after"]["must_change_password"] is False
    assert opted_out.reason == "created user pacsbot with roles radiologist and a password it need not change"


def test_the_first_admins_one_time_password_must_be_changed(store, sink, clock):
    username, _password = users.ensure_first_admin(store, sink, clock())
    assert row(store, username).must_change_password


def test_a_password_reset_by_an_admin_must_be_changed_unless_the_request_says_not(store, sink, mfa, clock,
                                                                                 events_after_setup):
    update(store, sink, mfa, clock, {"password": "a reset password 456"}, who=actor("api_key"))
    assert row(store, "nkosi").must_change_password
    first = json.loads(events_after_setup[-1].detail)
    assert (first["before"]["must_change_password"], first["after"]["must_change_password"]) == (False, True)
    update(store, sink, mfa, clock, {"password": "another reset password 789", "must_change_password": False},
           who=actor("api_key"))
    assert not row(store, "nkosi").must_change_password
    second = json.loads(events_after_setup[-1].detail)
    assert (second["before"]["must_change_password"], second["after"]["must_change_password"]) == (True, False)
    assert second["password_changed"] is True
    update(store, sink, mfa, clock, {"email": "nkosi@other.example"}, who=actor("api_key"))
    assert not row(store, "nkosi").must_change_password  # no password given, the flag is left as it is


@pytest.mark.parametrize(("data", "message"), [
    ({"must_change_password": False}, 'only with a "password"'),
    ({"password": PASSWORD, "must_change_password": "no"}, "as true or false"),
    ({"password": None}, '"password" must be a string'),
    ({"password": "nkosi's own password"}, "contains your username"),
    ({"password": "aaaaaaaaaaaaaaaa"}, "repeats a character"),
    ({"password": "Password1234"}, "too common"),
])
def test_a_password_or_its_flag_that_breaks_the_rules_is_refused(store, sink, mfa, clock, events_after_setup, data,
                                                                  message):
    with pytest.raises(BadRequest, match=message):
        update(store, sink, mfa, clock, data, who=actor("api_key"))
    assert events_after_setup == [] and not row(store, "nkosi").must_change_password


@pytest.mark.parametrize(("data", "message"), [
    ({"must_change_password": True}, 'only with a "password"'),
    ({"password": "moyo's own password"}, "contains your username"),
    ({"password": "123456789012"}, "runs along"),
])
def test_a_new_account_whose_password_or_flag_breaks_the_rules_is_refused(store, sink, mfa, clock,
                                                                          events_after_setup, data, message):
    with pytest.raises(BadRequest, match=message):
        users.create_user(store, sink, mfa, actor("api_key"), clock(), {"username": "moyo", "roles": ["billing"],
                                                                       **data})
    assert events_after_setup == [] and row(store, "moyo") is None


# -- update ----------------------------------------------------------------------------------------


def test_email_and_display_name_change_without_mfa_audited_before_and_after(store, sink, mfa, clock,
                                                                            events_after_setup):
    changed = update(store, sink, mfa, clock, {"email": "dr.nkosi@clinic.example", "display_name": "Dr Nkosi"},
                     who=actor("api_key"))
    assert (changed["email"], changed["display_name"]) == ("dr.nkosi@clinic.example", "Dr Nkosi")
    [event] = events_after_setup
    detail = json.loads(event.detail)
    assert event.action == "user.update" and event.outcome == "success"
    assert detail["before"]["email"] == "nkosi@clinic.example" and detail["after"]["email"] == "dr.nkosi@clinic.example"


@pytest.mark.parametrize("via", ["api_key", "basic"])
def test_a_role_change_by_key_or_basic_is_refused_as_mfa_required(store, sink, mfa, clock, events_after_setup, via):
    with pytest.raises(MfaRequired, match="signed-in session"):
        update(store, sink, mfa, clock, {"roles": ["admin"]}, who=actor(via))
    assert row(store, "nkosi").roles == "radiologist"
    assert [(e.action, e.outcome) for e in events_after_setup] == [("user.update", "failure")]


def test_a_session_that_proved_a_code_within_5_minutes_may_change_roles(store, sink, mfa, clock, events_after_setup):
    proved_at(store, clock() - 299)
    assert update(store, sink, mfa, clock, {"roles": ["radiologist", "billing"]})["roles"] == ["billing", "radiologist"]
    [event] = events_after_setup
    detail = json.loads(event.detail)
    assert detail["before"]["roles"] == ["radiologist"] and detail["after"]["roles"] == ["billing", "radiologist"]
    assert event.reason == "changed roles of nkosi"


@pytest.mark.parametrize("mfa_at", [None, -301.0])
def test_a_session_without_a_recent_code_is_asked_for_otp(store, sink, mfa, clock, admin_id, mfa_at):
    proved_at(store, None if mfa_at is None else clock() + mfa_at)
    with pytest.raises(MfaRequired, match='"otp"'):
        update(store, sink, mfa, clock, {"roles": ["admin"]})
    assert row(store, "nkosi").roles == "radiologist"


def test_an_otp_in_the_request_proves_it_and_counts_for_the_session(store, sink, mfa, clock, admin_id):
    secret = enrol(mfa, admin_id, clock())
    proved_at(store, clock() - 3600)
    update(store, sink, mfa, clock, {"roles": ["billing"], "otp": "x"}, who=actor(otp=pyotp.TOTP(secret).at(clock())))
    assert row(store, "nkosi").roles == "billing" and session_mfa_at(store) == clock()
    clock.advance(60)
    update(store, sink, mfa, clock, {"roles": ["radiologist"]})  # within 5 minutes of that code
    assert row(store, "nkosi").roles == "radiologist"


def test_a_wrong_or_replayed_otp_is_refused(store, sink, mfa, clock, admin_id):
    secret = enrol(mfa, admin_id, clock())
    code = pyotp.TOTP(secret).at(clock())
    proved_at(store, None)
    with pytest.raises(MfaRequired, match="Wrong or already used"):
        update(store, sink, mfa, clock, {"roles": ["billing"]}, who=actor(otp="000000" if code != "000000" else "1"))
    update(store, sink, mfa, clock, {"roles": ["billing"]}, who=actor(otp=code))
    proved_at(store, None)
    with pytest.raises(MfaRequired, match="Wrong or already used"):
        update(store, sink, mfa, clock, {"roles": ["radiologist"]}, who=actor(otp=code))
    assert row(store, "nkosi").roles == "billing"


def test_sending_the_same_roles_is_no_role_change(store, sink, mfa, clock, events_after_setup):
    update(store, sink, mfa, clock, {"roles": ["radiologist"], "email": "nkosi@clinic.example"}, who=actor("api_key"))
    assert events_after_setup == []  # nothing changed, nothing to audit


def test_the_password_of_an_admin_needs_fresh_mfa_but_others_do_not(store, sink, mfa, clock, events_after_setup):
    with pytest.raises(MfaRequired):
        update(store, sink, mfa, clock, {"password": PASSWORD}, who=actor("api_key"), username="root1")
    update(store, sink, mfa, clock, {"password": PASSWORD}, who=actor("api_key"))
    event = events_after_setup[-1]
    assert json.loads(event.detail)["password_changed"] is True and PASSWORD not in event.detail
    assert row(store, "nkosi").password_hash.startswith("$argon2id$")


@pytest.mark.parametrize(("data", "ends"), [({"password": "a reset password 456"}, True),
                                            ({"roles": ["billing"]}, True),
                                            ({"email": "nkosi@other.example"}, False),
                                            ({"display_name": "Dr Nkosi"}, False)])
def test_a_reset_password_or_new_roles_end_the_accounts_sessions(store, sink, mfa, clock, admin_id, data, ends):
    with store.transaction() as db:
        nkosi = account_rows.user_by_name(db, "nkosi")
        account_rows.add_session(db, Session(id="n" * 64, user_id=nkosi.id, csrf_token="c", created_at=clock(),
                                             last_seen_at=clock(), expires_at=clock() + 3600))
    proved_at(store, clock())
    update(store, sink, mfa, clock, data, who=actor())
    with store.read() as db:
        assert (account_rows.session_with_user(db, "n" * 64)[0].revoked_at == clock()) is ends
        assert account_rows.session_with_user(db, SESSION_ID)[0].revoked_at is None  # the admin's own


def test_disabling_through_update_ends_sessions(store, sink, mfa, clock, admin_id):
    users.create_user(store, sink, mfa, users.GATECTL, clock(), {"username": "boss", "roles": ["admin"]})
    update(store, sink, mfa, clock, {"disabled": True}, who=actor("api_key"), username="root1")
    with store.read() as db:
        assert account_rows.session_with_user(db, SESSION_ID)[0].revoked_at == clock()
    assert row(store, "root1").disabled


@pytest.mark.parametrize("data", [{"roles": ["billing"]}, {"disabled": True}])
def test_the_last_enabled_admin_cannot_be_removed(store, sink, mfa, clock, admin_id, data):
    proved_at(store, clock())
    with pytest.raises(Conflict, match="no enabled admin"):
        update(store, sink, mfa, clock, data, username="root1")
    assert row(store, "root1").roles == "admin" and not row(store, "root1").disabled


@pytest.mark.parametrize(("data", "message"), [
    ({"disabled": "yes"}, '"disabled" must be true or false'), ({"username": "x"}, "Unknown field 'username'"),
    ({"roles": []}, "at least one role"), ({"email": "not an address"}, "not an e-mail address")])
def test_update_refuses_bad_input(store, sink, mfa, clock, admin_id, data, message):
    with pytest.raises(BadRequest, match=message):
        update(store, sink, mfa, clock, data)


def test_update_of_unknown_user(store, sink, mfa, clock, admin_id):
    with pytest.raises(NotFound):
        update(store, sink, mfa, clock, {"email": ""}, username="nobody")


def directory_account(store, clock) -> None:
    with store.transaction() as db:
        account_rows.upsert_directory_account(db, "uuid:0001", "dlamini", "radiologist", "d@clinic.example",
                                              "Dr Dlamini", clock())


@pytest.mark.parametrize(("data", "message"), [({"roles": ["admin"]}, "roles come from the directory"),
                                               ({"email": "x@y.example"}, "email comes from the directory"),
                                               ({"password": PASSWORD}, "password comes from the directory")])
def test_what_the_directory_sets_cannot_be_changed_here(store, sink, mfa, clock, admin_id, data, message):
    directory_account(store, clock)
    proved_at(store, clock())
    with pytest.raises(Conflict, match=message):
        update(store, sink, mfa, clock, data, username="dlamini")


def test_a_directory_account_can_be_disabled_and_sent_its_own_roles(store, sink, mfa, clock, admin_id):
    directory_account(store, clock)
    changed = update(store, sink, mfa, clock, {"roles": ["radiologist"], "disabled": True}, username="dlamini",
                     who=actor("api_key"))
    assert changed["disabled"] and changed["source"] == "directory"


# -- disable ---------------------------------------------------------------------------------------


def test_disable_keeps_the_row_ends_sessions_and_is_audited(store, sink, clock, admin_id, events_after_setup):
    users.create_user(store, sink, None, users.GATECTL, clock(), {"username": "boss", "roles": ["admin"]})
    users.disable_user(store, sink, actor("api_key"), clock(), "root1")
    assert row(store, "root1").disabled
    with store.read() as db:
        assert account_rows.session_with_user(db, SESSION_ID)[0].revoked_at == clock()
    assert [(e.action, e.source_ip) for e in events_after_setup][-1] == ("user.disable", IP)


def test_disable_refuses_the_last_admin_and_unknown_users(store, sink, clock, admin_id):
    with pytest.raises(Conflict):
        users.disable_user(store, sink, actor("api_key"), clock(), "root1")
    with pytest.raises(NotFound):
        users.disable_user(store, sink, actor("api_key"), clock(), "nobody")
    assert not row(store, "root1").disabled


# -- API keys --------------------------------------------------------------------------------------


def test_an_api_key_needs_fresh_mfa(store, sink, mfa, clock, admin_id):
    with pytest.raises(MfaRequired):
        users.create_api_key(store, sink, mfa, actor("api_key"), clock(), {"name": "pacs-sync"})
    with pytest.raises(MfaRequired):
        users.create_api_key(store, sink, mfa, actor(), clock(), {"name": "pacs-sync"})


def test_an_api_key_is_shown_once_and_kept_hashed(store, sink, mfa, clock, admin_id, events_after_setup):
    proved_at(store, clock())
    created = users.create_api_key(store, sink, mfa, actor(), clock(), {"name": "pacs-sync", "user": "nkosi"})
    assert (created["name"], created["user"]) == ("pacs-sync", "nkosi") and len(created["key"]) > 30
    with store.read() as db:
        key, owner = account_rows.api_key_owner(db, token_hash(created["key"]))
    assert key.id == created["id"] and owner.username == "nkosi"
    assert created["key"] not in events_after_setup[-1].reason
    mine = users.create_api_key(store, sink, mfa, actor(), clock(), {"name": "mine"})
    assert mine["user"] == "root1"


@pytest.mark.parametrize(("data", "error"), [({}, BadRequest), ({"name": "x" * 129}, BadRequest),
                                             ({"name": "k", "user": "nobody"}, NotFound),
                                             ({"name": "k", "owner": "nkosi"}, BadRequest)])
def test_bad_api_key_requests_are_refused_before_asking_for_a_code(store, sink, mfa, clock, admin_id, data, error):
    with pytest.raises(error):
        users.create_api_key(store, sink, mfa, actor("api_key"), clock(), data)


def test_an_api_key_may_end(store, sink, mfa, clock, admin_id):
    proved_at(store, clock())
    created = users.create_api_key(store, sink, mfa, actor(), clock(),
                                   {"name": "course", "user": "nkosi", "expires_at": "2023-11-30T17:00:00+02:00"})
    assert created["expires_at"] == "2023-11-30T15:00:00.000000Z"
    with pytest.raises(BadRequest, match="in the past"):
        users.create_api_key(store, sink, mfa, actor(), clock(), {"name": "old", "expires_at": "2020-01-01T00:00:00Z"})
    with pytest.raises(BadRequest, match="time zone"):
        users.create_api_key(store, sink, mfa, actor(), clock(), {"name": "local", "expires_at": "2030-01-01T00:00"})


def test_no_api_key_for_a_disabled_user(store, sink, mfa, clock, admin_id):
    users.disable_user(store, sink, users.GATECTL, clock(), "nkosi")
    with pytest.raises(Conflict, match="disabled"):
        users.create_api_key(store, sink, mfa, users.GATECTL, clock(), {"name": "k", "user": "nkosi"})


def test_revoke_sets_revoked_at_once_and_audits_once(store, sink, mfa, clock, admin_id, events_after_setup):
    created = users.create_api_key(store, sink, mfa, users.GATECTL, clock(), {"name": "k", "user": "nkosi"})
    clock.advance(5)
    users.revoke_api_key(store, sink, actor("api_key"), clock(), created["id"])
    users.revoke_api_key(store, sink, actor("api_key"), clock() + 10, created["id"])
    with store.read() as db:
        assert account_rows.api_key_by_id(db, created["id"]).revoked_at == clock()
    assert [e.action for e in events_after_setup] == ["api_key.create", "api_key.revoke"]


def test_revoke_unknown_key(store, sink, clock, admin_id):
    with pytest.raises(NotFound):
        users.revoke_api_key(store, sink, actor("api_key"), clock(), 999)
