"""Directory accounts without a directory server: a fake Directory stands in for slapd (the real one
is in tests/integration/test_directory_accounts.py). One row per entry, whatever the spelling; the
time a refusal takes; the re-check of leavers; what an Active Directory entry looks like."""

from __future__ import annotations

import dataclasses

import pytest

from plugin.identity import authenticate
from plugin.identity.attempts import SignInGuard, account_key
from plugin.identity.authenticate import Authenticator
from plugin.identity.directory import DirectoryAccount, DirectoryAnswer, DirectoryUnavailable, _entry_id, _login
from plugin.identity.secrets import token_hash
from plugin.policies.lockout import LockoutRule
from plugin.services.directory_accounts import DirectoryRecheck
from plugin.store import accounts as account_rows
from plugin.store.models import ApiKey, Session, User
from tests.unit.accounts_support import add_user

pytestmark = pytest.mark.usefixtures("cheap_argon2")

GROUPS = "ou=groups,dc=gate,dc=test"
RAD1 = DirectoryAccount("uuid:0001", "rad1", "uid=rad1,ou=people,dc=gate,dc=test", (f"cn=Radiologists,{GROUPS}",),
                        "rad1@gate.test", "Rada One")
PASSWORDS = {"uuid:0001": "rad1 password 123"}


class FakeDirectory:
    """Finds an entry by its name as a directory matches it (case, spaces and width folded)."""

    def __init__(self) -> None:
        self.entries = {"rad1": RAD1}
        self.down = False
        self.calls = 0

    def _entry(self, username: str) -> DirectoryAccount | None:
        return self.entries.get(account_key(username).removeprefix("user:"))

    def authenticate(self, username: str, password: str) -> DirectoryAnswer:
        self.calls += 1
        if self.down:
            raise DirectoryUnavailable("directory unavailable: LDAPSocketReceiveError")
        entry = self._entry(username)
        if entry is None:
            return DirectoryAnswer(None)
        return DirectoryAnswer(entry if PASSWORDS.get(entry.entry_id) == password else None, entry.entry_id)

    def lookup(self, entry_id: str) -> DirectoryAccount | None:
        if self.down:
            raise DirectoryUnavailable("directory unavailable: LDAPSocketReceiveError")
        return next((e for e in self.entries.values() if e.entry_id == entry_id), None)

    def find(self, username: str) -> DirectoryAccount | None:
        if self.down:
            raise DirectoryUnavailable("directory unavailable: LDAPSocketReceiveError")
        return self._entry(username)


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory()


@pytest.fixture
def guard(store) -> SignInGuard:
    return SignInGuard(store, LockoutRule(5, 900, 900), LockoutRule(1000, 900, 900))


@pytest.fixture
def auth(store, clock, directory, guard) -> Authenticator:
    return Authenticator(store, 2.0, 60.0, 1800.0, clock=clock, directory=directory,
                         group_roles={"radiologists": ("radiologist",)}, guard=guard, group_base=GROUPS,
                         directory_recheck_seconds=60.0)


def rows(store) -> list[User]:
    with store.read() as db:
        return [u for u in account_rows.all_users(db) if u.source == "directory"]


# -- one account per entry -----------------------------------------------------------------------------

@pytest.mark.parametrize("spellings", [["rad1", "RAD1", " rad1", "rad1 ", "ｒａｄ１", "Rad1"]])
def test_every_spelling_signs_in_to_the_one_row_of_the_entry(auth, store, clock, spellings):
    for spelling in spellings:
        check = auth.check_password(spelling, "rad1 password 123", clock())
        assert check.user is not None and check.user.username == "rad1", spelling
    [row] = rows(store)
    assert (row.username, row.directory_id, row.roles, row.directory_checked_at) == ("rad1", "uuid:0001",
                                                                                  "radiologist", clock())


def test_a_row_made_per_spelling_before_is_adopted_or_retired(auth, store, clock, directory):
    with store.transaction() as db:  # what the Gate wrote before accounts were keyed by entry
        for name in ("rad1", "RAD1"):
            db.add(User(username=name, source="directory", roles="admin", created_at=0, updated_at=0))
    auth.check_password("RAD1", "rad1 password 123", clock())
    by_name = {u.username: u for u in rows(store)}
    assert by_name["rad1"].directory_id == "uuid:0001" and by_name["rad1"].roles == "radiologist"
    assert by_name["RAD1"].directory_id is None  # left for the re-check to retire (below)


def test_a_directory_entry_never_takes_over_a_local_account(auth, store, clock):
    add_user(store, clock(), "rad1", ["admin"], "local password 123")
    check = auth.check_password("RAD1", "rad1 password 123", clock())  # not the local name: the directory's
    assert check.user is None and "a local account has this directory account's name" in check.failure
    with store.read() as db:
        assert account_rows.user_by_name(db, "rad1").source == "local"


def test_the_entry_is_locked_however_it_was_typed(auth, clock):
    for spelling in ("RAD1", "ｒａｄ１", " rad1", "Rad1", "rad1"):
        assert auth.check_password(spelling, "wrong", clock(), ip="10.0.0.1").user is None
    for spelling in ("rad1", "RAD1"):
        refused = auth.check_password(spelling, "rad1 password 123", clock(), ip="10.0.0.2")
        assert refused.user is None and refused.retry_after > 0, spelling


def test_an_unavailable_directory_counts_against_the_address(store, clock, directory):
    guard = SignInGuard(store, LockoutRule(5, 900, 900), LockoutRule(3, 900, 900))
    auth = Authenticator(store, 2.0, 60.0, 1800.0, clock=clock, directory=directory,
                         group_roles={"radiologists": ("radiologist",)}, guard=guard, group_base=GROUPS)
    directory.down = True
    for n in range(3):
        assert auth.check_password(f"made-up-{n}", "x", clock(), ip="10.6.6.6").unavailable
    assert auth.check_password("rad1", "rad1 password 123", clock(), ip="10.6.6.6").retry_after > 0
    assert directory.calls == 3  # the fourth was refused before the directory was asked


# -- the time a refusal takes ---------------------------------------------------------------------------

@pytest.fixture
def argon2_calls(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = authenticate.verify_password
    monkeypatch.setattr(authenticate, "verify_password", lambda h, p: calls.append(1) or real(h, p))
    return calls


@pytest.mark.parametrize(("username", "password"), [
    ("local1", "wrong password"), ("local1", "local password 123"), ("rad1", "wrong password"),
    ("rad1", "rad1 password 123"), ("nobody-at-all", "any password"),
])
def test_every_kind_of_account_costs_one_password_hash(auth, store, clock, argon2_calls, username, password):
    """A wrong password for a local account takes argon2's time; so must a directory account's and
    an unknown name's, or the time tells which names are local accounts."""
    add_user(store, clock(), "local1", ["radiologist"], "local password 123")
    argon2_calls.clear()
    auth.check_password(username, password, clock())
    assert len(argon2_calls) == 1


# -- leavers ----------------------------------------------------------------------------------------------

@pytest.fixture
def recheck(store, clock, directory, auth, events) -> DirectoryRecheck:
    return DirectoryRecheck(store, directory, auth, events.append, 60.0, clock)


@pytest.fixture
def events() -> list:
    return []


def with_session_and_key(store, clock, username: str) -> int:
    with store.transaction() as db:
        user = account_rows.user_by_name(db, username)
        db.add(Session(id=token_hash(f"cookie-{username}"), user_id=user.id, csrf_token="c", created_at=clock(),
                       last_seen_at=clock(), expires_at=clock() + 3600))
        db.add(ApiKey(user_id=user.id, name="k", key_hash=f"h-{username}", created_at=clock()))
        return user.id


def access_of(store, user_id: int) -> tuple[bool, bool]:
    with store.read() as db:
        session = db.query(Session).filter(Session.user_id == user_id).one()
        key = db.query(ApiKey).filter(ApiKey.user_id == user_id).one()
    return session.revoked_at is None, key.revoked_at is None


def test_a_leaver_loses_sessions_and_keys_at_the_first_sweep_after_the_bound(auth, store, clock, directory, recheck,
                                                                            events):
    auth.check_password("rad1", "rad1 password 123", clock())
    user_id = with_session_and_key(store, clock, "rad1")
    del directory.entries["rad1"]
    clock.advance(30)
    assert recheck.sweep() == 0 and access_of(store, user_id) == (True, True)  # not due yet
    clock.advance(31)
    assert recheck.sweep() == 1 and access_of(store, user_id) == (False, False)
    assert "rad1 no longer in the directory: 1 session(s) and 1 API key(s) ended" in events[-1].reason


def test_leaving_every_mapped_group_ends_access_and_new_roles_end_sessions(auth, store, clock, directory, recheck):
    auth.check_password("rad1", "rad1 password 123", clock())
    user_id = with_session_and_key(store, clock, "rad1")
    directory.entries["rad1"] = dataclasses.replace(RAD1, groups=("cn=Radiologists,ou=projects,dc=gate,dc=test",))
    clock.advance(61)
    recheck.sweep()
    assert access_of(store, user_id) == (False, False)
    with store.read() as db:
        assert account_rows.user_by_id(db, user_id).roles == ""


def test_a_directory_that_cannot_be_reached_changes_nothing_until_the_account_is_stale(auth, store, clock, directory,
                                                                                   recheck):
    auth.check_password("rad1", "rad1 password 123", clock())
    user_id = with_session_and_key(store, clock, "rad1")
    directory.down = True
    clock.advance(61)
    assert recheck.sweep() == 0 and access_of(store, user_id) == (True, True)
    assert auth.session("cookie-rad1").principal.username == "rad1"
    clock.advance(60)  # twice RecheckSeconds without a re-read: refused until the directory answers
    refused = auth.session("cookie-rad1")
    assert refused.principal.is_anonymous and "not re-checked recently" in refused.failure


def test_the_re_check_retires_the_other_spellings_of_an_entry(auth, store, clock, recheck, events):
    with store.transaction() as db:
        for name in ("rad1", "RAD1", "ｒａｄ１"):
            db.add(User(username=name, source="directory", roles="admin", created_at=0, updated_at=0))
    for name in ("rad1", "RAD1", "ｒａｄ１"):
        with_session_and_key(store, clock, name)
    recheck.sweep()
    by_name = {u.username.split("~")[0]: u for u in rows(store)}
    assert by_name["rad1"].directory_id == "uuid:0001" and not by_name["rad1"].disabled
    assert by_name["rad1"].roles == "radiologist"
    for spelling in ("RAD1", "ｒａｄ１"):
        assert by_name[spelling].disabled and by_name[spelling].username.startswith(f"{spelling}~")
        assert access_of(store, by_name[spelling].id) == (False, False)


# -- Active Directory and OpenLDAP entries as ldap3 answers them -------------------------------------------

def test_an_active_directory_entry_is_its_object_guid_and_sam_account_name():
    guid = bytes(range(16))
    entry = {"dn": "CN=Rada One,OU=Staff,DC=practice,DC=local",
             "raw_attributes": {"objectGUID": [guid]},
             "attributes": {"sAMAccountName": "rone", "userPrincipalName": "rone@practice.local"}}
    assert _entry_id(entry) == f"guid:{guid.hex()}" and _login(entry) == "rone"


def test_an_openldap_entry_is_its_entry_uuid_and_uid():
    entry = {"dn": "uid=rad1,ou=people,dc=gate,dc=test", "raw_attributes": {},
             "attributes": {"entryUUID": "2C91987E-8424-1041-97E5-37854E98B372", "uid": ["rad1"]}}
    assert _entry_id(entry) == "uuid:2c91987e-8424-1041-97e5-37854e98b372" and _login(entry) == "rad1"


def test_an_entry_without_a_stable_id_is_its_normalised_dn():
    entry = {"dn": "CN=Rada One , OU=Staff,DC=practice,DC=local", "attributes": {}}
    assert _entry_id(entry) == "dn:cn=rada one,ou=staff,dc=practice,dc=local" and _login(entry) == "Rada One"


def test_lockout_keys_are_bounded():
    assert len(account_key("x" * 5000)) < 80
    assert account_key("ＲＡＤ１ ") == account_key(" rad1") == "user:rad1"
