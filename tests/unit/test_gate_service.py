"""The gate end to end, without Orthanc: identify, classify, decide, audit, with a real store and writer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from plugin.audit.log import AuditLog
from plugin.errors import StoreUnavailable
from plugin.identity.authenticate import SESSION_COOKIE, Authenticator
from plugin.services import accounts
from plugin.services.access import AccessService, ResourceLocator
from plugin.services.gate import GateService
from plugin.store import audit as audit_rows
from plugin.store import grants as grant_store
from plugin.store.db import Store
from plugin.store.models import Grant
from tests.unit.accounts_support import add_api_key, add_user, disable
from tests.unit.conftest import T0
from tests.unit.fake_core import FakeCore

pytestmark = pytest.mark.usefixtures("cheap_argon2")

PID = "b9c08539-26f93bde-c81ab0d7-bffaf2cb-a4d0bdd0"
STUDY = f"/studies/{PID}"  # not in the fake core: located nowhere, so for admins only
IP = "10.0.0.7"
PASSWORD = "a gate service password 1"
IDENTITY_TTL, DECISION_TTL = 2.0, 1.0


class Gate:
    """A GateService with its parts and the keys of one admin and one doctor."""

    def __init__(self, store: Store, log: AuditLog, clock, decision_ttl: float = DECISION_TTL) -> None:
        self.store, self.log, self.clock = store, log, clock
        # No role needs a one-time code here: MFA has its own tests (test_mfa.py).
        self.auth = Authenticator(store, IDENTITY_TTL, 60.0, 1800.0, clock=clock, mfa_required_roles=frozenset())
        self.core = FakeCore()
        self.access = AccessService(store, ResourceLocator(self.core), clock=clock)
        self.service = GateService(store, self.auth, log, self.access, decision_ttl, clock=clock)
        self.events: list = []

    def sink(self, event) -> bool:
        self.events.append(event)
        return True

    def add_user(self, username: str, roles: list[str]) -> str:
        add_user(self.store, self.clock(), username, roles, PASSWORD, audit=self.sink, actor="test")
        return add_api_key(self.store, self.clock(), "tests", username, audit=self.sink, actor="test")

    @staticmethod
    def memo_key(method: str, uri: str, headers: dict[str, str] | None = None,
                 query: dict[str, str] | None = None) -> tuple:
        headers, query = headers or {}, query or {}
        return (method, uri, headers.get("authorization"), headers.get("cookie"),
                headers.get("x-http-method-override"), tuple(query.items()) or None)

    def check(self, method: str, uri: str, headers: dict[str, str] | None = None,
              query: dict[str, str] | None = None) -> bool:
        """What entry.py's filter does: the remembered decision first, the full check if none."""
        memo_key = self.memo_key(method, uri, headers, query)
        return self.service.remembered(memo_key) or self.service.check(method, uri, IP, headers or {}, query or {},
                                                                        memo_key)

    def grant(self, level: str, expires_at: float | None = None, **target: str) -> int:
        with self.store.transaction() as db:
            [added] = grant_store.add_grants(db, [Grant(
                subject_user="drnkosi", level=level, expires_at=expires_at, source="manual", created_at=self.clock(),
                created_by="test", **target)])
            return added.id

    def revoke(self, grant_id: int) -> None:
        with self.store.transaction() as db:
            grant_store.revoke_grants(db, [grant_store.grant_by_id(db, grant_id)], self.clock(), "test")

    def rows(self) -> list[dict]:
        self.log.flush()
        with self.store.read() as session:
            return list(audit_rows.iter_events(session))


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def new_gate(store, tmp_path, clock) -> Iterator:
    logs: list[AuditLog] = []

    def make(start: bool = True, decision_ttl: float = DECISION_TTL) -> Gate:
        log = AuditLog(store, b"key", tmp_path / "spool", tmp_path / "checkpoints", coalesce_seconds=60.0,
                       wait_seconds=5.0, clock=clock)
        if start:
            log.start()
        logs.append(log)
        return Gate(store, log, clock, decision_ttl)

    yield make
    for log in logs:
        log.stop()


@pytest.fixture
def gate(new_gate) -> Gate:
    return new_gate()


@pytest.fixture
def admin_key(gate) -> str:
    return gate.add_user("root1", ["admin"])


@pytest.fixture
def doctor_key(gate) -> str:
    return gate.add_user("drnkosi", ["referring_doctor"])


# -- decisions and their audit ----------------------------------------------------------------------


def test_admin_api_key_is_allowed_and_audited(gate, admin_key):
    assert gate.check("GET", STUDY, bearer(admin_key)) is True
    [row] = gate.rows()
    assert (row["actor"], row["roles"], row["outcome"], row["reason"]) == ("root1", "admin", "allow", "admin")
    assert (row["method"], row["path"], row["route_class"], row["action"], row["source_ip"]) == \
        ("GET", STUDY, "studies", "view", IP)


def test_allowed_read_is_durable_before_check_returns(gate, admin_key):
    assert gate.check("GET", f"/instances/{PID}/file", bearer(admin_key))
    with gate.store.read() as session:  # no flush: the row must already be there
        [row] = list(audit_rows.iter_events(session))
    assert (row["orthanc_id"], row["level"], row["action"]) == (PID, "instance", "download")


def test_allowed_write_is_durable_before_check_returns(gate, admin_key):
    assert gate.check("DELETE", f"/studies/{PID}", bearer(admin_key))
    with gate.store.read() as session:
        [row] = list(audit_rows.iter_events(session))
    assert (row["method"], row["action"], row["outcome"]) == ("DELETE", "delete", "allow")


def test_doctor_is_denied_and_the_denial_is_audited_with_its_reason(gate, doctor_key):
    assert gate.check("GET", f"/studies/{PID}", bearer(doctor_key)) is False
    [row] = gate.rows()
    assert (row["actor"], row["outcome"], row["reason"]) == ("drnkosi", "deny", "no grant for this resource")
    assert row["orthanc_id"] == PID


def test_anonymous_is_denied_and_audited(gate):
    assert gate.check("GET", "/patients") is False
    [row] = gate.rows()
    assert (row["actor"], row["outcome"], row["reason"]) == ("anonymous", "deny", "authentication required")


def test_rejected_credentials_are_named_in_the_denial(gate, admin_key):
    assert gate.check("GET", "/patients", bearer("stolen-or-guessed")) is False
    [row] = gate.rows()
    assert row["reason"] == "authentication required (unknown API key)"


def test_malformed_is_denied_even_for_admin_and_audited(gate, admin_key):
    assert gate.check("GET", "/app/../patients", bearer(admin_key)) is False
    [row] = gate.rows()
    assert (row["actor"], row["route_class"], row["reason"]) == ("root1", "malformed",
                                                                 "malformed request: dot segment in path")


def test_method_override_is_what_gets_decided_and_audited(gate, doctor_key, admin_key):
    assert gate.check("GET", f"/patients/{PID}", bearer(admin_key), {"_method": "DELETE"})
    [row] = gate.rows()
    assert (row["method"], row["action"]) == ("DELETE", "delete")


def test_public_route_is_allowed_for_anonymous_without_audit(gate):
    assert gate.check("GET", "/gate/health") is True
    assert gate.rows() == []


def test_ui_asset_is_allowed_for_a_doctor_without_audit(gate, doctor_key):
    assert gate.check("GET", "/app/explorer.js", bearer(doctor_key)) is True
    assert gate.rows() == []


# -- grants through the gate ----------------------------------------------------------------------------


@pytest.fixture
def study(gate):
    """Study 1.1 of patient PAT-1, known to the gate's (fake) Orthanc core."""
    return gate.core.add_study("PAT-1", "1.1")


def test_a_doctor_with_a_grant_is_allowed_and_the_audit_names_patient_and_study(gate, doctor_key, study):
    gate.grant("view_only", study_uid="1.1")
    assert gate.check("GET", f"/studies/{study.study}", bearer(doctor_key)) is True
    [row] = gate.rows()
    assert (row["actor"], row["outcome"], row["reason"], row["action"]) == ("drnkosi", "allow", "grant view_only",
                                                                            "view")
    assert (row["patient_id"], row["study_uid"], row["orthanc_id"], row["level"]) == ("PAT-1", "1.1", study.study,
                                                                                      "study")


def test_a_doctor_without_a_grant_is_denied_and_the_denial_names_patient_and_study(gate, doctor_key, study):
    gate.grant("full", study_uid="9.9")  # another study
    assert gate.check("GET", f"/instances/{study.instance}/preview", bearer(doctor_key)) is False
    [row] = gate.rows()
    assert (row["outcome"], row["reason"], row["patient_id"], row["study_uid"]) == (
        "deny", "no grant for this resource", "PAT-1", "1.1")


def test_a_grant_below_what_the_route_needs_is_denied_naming_both(gate, doctor_key, study):
    gate.grant("view_only", patient_id="PAT-1")
    assert gate.check("GET", f"/instances/{study.instance}/file", bearer(doctor_key)) is False
    assert gate.rows()[0]["reason"] == "grant view_only does not allow download (needs download)"


def test_a_change_allowed_by_a_grant_gets_its_own_audit_row(gate, doctor_key, study):
    gate.grant("annotate", study_uid="1.1")
    assert gate.check("PUT", f"/studies/{study.study}/labels/urgent", bearer(doctor_key)) is True
    with gate.store.read() as session:  # durable before the check returned
        [row] = list(audit_rows.iter_events(session))
    assert (row["action"], row["reason"], row["study_uid"]) == ("annotate", "grant annotate", "1.1")


def test_an_admins_audit_row_names_patient_and_study_too(gate, admin_key, study):
    assert gate.check("GET", f"/series/{study.series}", bearer(admin_key)) is True
    [row] = gate.rows()
    assert (row["reason"], row["patient_id"], row["study_uid"]) == ("admin", "PAT-1", "1.1")


@pytest.mark.parametrize(("method", "path", "query"), [
    ("POST", "/tools/create-archive", {}),
    ("POST", "/tools/create-archive", {"resources": "{study}"}),  # the query does not name the body's resources
    ("POST", "/tools/create-media", {}),
    ("POST", "/tools/bulk-delete", {}),
    ("POST", "/studies/{study}/merge", {}),
    ("POST", "/instances/{instance}/export", {}),
    ("GET", "/tools/create-archive", {"resources": "{study}", "_method": "POST"}),
])
def test_requests_naming_resources_in_their_body_are_refused_to_a_doctor_as_admin_only(
        gate, doctor_key, study, method, path, query):
    gate.grant("full", patient_id="PAT-1")
    path = path.format(study=study.study, instance=study.instance)
    query = {k: v.format(study=study.study) for k, v in query.items()}
    assert gate.check(method, path, bearer(doctor_key), query) is False
    [row] = gate.rows()
    assert (row["outcome"], row["reason"]) == ("deny", "admin only")


def test_the_get_form_of_create_archive_is_decided_by_the_grants_on_what_it_lists(gate, doctor_key, study):
    other = gate.core.add_study("PAT-2", "2.1")
    gate.grant("download", patient_id="PAT-1")
    assert gate.check("GET", "/tools/create-archive", bearer(doctor_key), {"resources": study.study}) is True
    both = {"resources": f"{study.study},{other.study}"}
    assert gate.check("GET", "/tools/create-archive", bearer(doctor_key), both) is False
    allowed, denied = gate.rows()
    assert (allowed["reason"], allowed["patient_id"], allowed["study_uid"]) == ("grant download", "PAT-1", "1.1")
    assert (denied["reason"], denied["patient_id"], denied["study_uid"]) == ("no grant for this resource",
                                                                             "PAT-1,PAT-2", "1.1,2.1")


def test_a_dicomweb_search_naming_a_granted_study_is_allowed_and_audited(gate, doctor_key, study):
    gate.grant("view_only", study_uid="1.1")
    assert gate.check("GET", "/dicom-web/series", bearer(doctor_key), {"StudyInstanceUID": "1.1"}) is True
    [row] = gate.rows()
    assert (row["outcome"], row["reason"], row["patient_id"], row["study_uid"]) == ("allow", "grant view_only",
                                                                                  "PAT-1", "1.1")


@pytest.mark.parametrize(("query", "reason"), [
    ({}, "no grant for this resource"),
    ({"StudyInstanceUID": "*"}, "search refused: StudyInstanceUID must be UIDs separated by commas"),
    ({"PatientID": "PAT-1"}, "no grant for this resource"),
    ({"StudyInstanceUID": "1.1", "0020000D": "2.1"}, "search refused: search names the tag 0020000D twice"),
    ({"StudyInstanceUID": "2.1"}, "no grant for this resource"),
    ({"PatientName": "NAME^PAT-1"}, "no grant for this resource"),
    ({"StudyInstanceUID": "1.1", "10,20": "*"}, "search refused: search key '10,20' is not one the gate can read "
                                                "as the DICOMweb plugin does (use a DICOM keyword or gggg,eeee)"),
])
def test_a_dicomweb_search_not_naming_only_granted_studies_is_refused(gate, doctor_key, study, query, reason):
    gate.core.add_study("PAT-2", "2.1")
    gate.grant("full", study_uid="1.1")  # a study grant: a search by PatientID needs a patient grant
    assert gate.check("GET", "/dicom-web/studies", bearer(doctor_key), query) is False
    assert gate.rows()[0]["reason"] == reason


def test_an_admins_search_is_never_refused_for_its_keys(gate, admin_key, study):
    assert gate.check("GET", "/dicom-web/studies", bearer(admin_key), {"PatientID": "PAT-1", "10,20": "*"}) is True


def test_the_patient_of_a_granted_study_needs_a_patient_grant(gate, doctor_key, study):
    gate.grant("full", study_uid="1.1")
    assert gate.check("GET", f"/studies/{study.study}/patient", bearer(doctor_key)) is False
    assert gate.check("GET", f"/instances/{study.instance}/patient", bearer(doctor_key)) is False
    assert gate.check("GET", f"/instances/{study.instance}/study", bearer(doctor_key)) is True
    denied = gate.rows()[0]
    assert (denied["reason"], denied["patient_id"], denied["study_uid"]) == ("no grant for this resource", "PAT-1",
                                                                             "")


def test_the_gate_asks_for_no_scope_on_routes_that_name_no_granted_resource(gate, doctor_key, study):
    gate.check("GET", "/changes", bearer(doctor_key))
    gate.check("GET", "/app/explorer.js", bearer(doctor_key))
    gate.check("GET", "/patients", bearer(doctor_key))
    assert gate.core.calls == []


def test_grants_that_cannot_be_read_deny_naming_the_store(gate, doctor_key, study, monkeypatch):
    def down(_username):
        raise StoreUnavailable("store unavailable: disk I/O error")

    monkeypatch.setattr(gate.access, "grants_of", down)
    assert gate.check("GET", f"/studies/{study.study}", bearer(doctor_key)) is False
    [row] = gate.rows()
    assert (row["outcome"], row["reason"]) == ("deny", "store unavailable: disk I/O error")


def test_a_remembered_decision_is_dropped_when_grants_change(gate, doctor_key, study):
    grant_id = gate.grant("view_only", study_uid="1.1")
    path = f"/studies/{study.study}"
    assert gate.check("GET", path, bearer(doctor_key)) is True
    memo = gate.memo_key("GET", path, bearer(doctor_key))
    assert gate.service.remembered(memo)
    gate.revoke(grant_id)
    assert gate.service.remembered(memo)  # the store changed, but nobody has said so yet
    gate.access.invalidate()  # what GrantService.revoke does after writing
    assert not gate.service.remembered(memo)
    assert gate.check("GET", path, bearer(doctor_key)) is False
    [denied] = [r for r in gate.rows() if r["outcome"] == "deny"]
    assert denied["reason"] == "no grant for this resource"


def test_a_decision_made_while_grants_changed_is_not_remembered(gate, doctor_key, study, monkeypatch):
    gate.grant("view_only", study_uid="1.1")
    path = f"/studies/{study.study}"
    real_scope = gate.access.scope

    def scope_then_invalidate(*args):
        found = real_scope(*args)
        gate.access.invalidate()  # a grant change lands mid-check
        return found

    monkeypatch.setattr(gate.access, "scope", scope_then_invalidate)
    assert gate.check("GET", path, bearer(doctor_key)) is True
    assert not gate.service.remembered(gate.memo_key("GET", path, bearer(doctor_key)))


def test_a_remembered_decision_never_outlives_the_grant(new_gate, clock):
    gate = new_gate(decision_ttl=100.0)
    doctor_key = gate.add_user("drnkosi", ["referring_doctor"])
    study = gate.core.add_study("PAT-1", "1.1")
    gate.grant("download", expires_at=T0 + 0.5, study_uid="1.1")
    path = f"/instances/{study.instance}/file"
    memo = gate.memo_key("GET", path, bearer(doctor_key))
    assert gate.check("GET", path, bearer(doctor_key)) is True
    clock.advance(0.499)
    assert gate.service.remembered(memo)
    clock.now = T0 + 0.5  # the grant's expiry, to the instant
    assert not gate.service.remembered(memo)
    assert gate.check("GET", path, bearer(doctor_key)) is False
    [denied] = [r for r in gate.rows() if r["outcome"] == "deny"]
    assert denied["reason"] == "no grant for this resource"


def test_a_remembered_archive_never_outlives_the_grant_on_any_resource_it_names(new_gate, clock):
    gate = new_gate(decision_ttl=100.0)
    doctor_key = gate.add_user("drnkosi", ["referring_doctor"])
    a, b = gate.core.add_study("PAT-1", "1.1"), gate.core.add_study("PAT-2", "2.1")
    gate.grant("download", study_uid="1.1")
    gate.grant("full", expires_at=T0 + 0.5, study_uid="2.1")
    query = {"resources": f"{a.study},{b.study}"}
    assert gate.check("GET", "/tools/create-archive", bearer(doctor_key), query) is True
    clock.now = T0 + 0.5
    assert not gate.service.remembered(gate.memo_key("GET", "/tools/create-archive", bearer(doctor_key), query))


def test_trimmed_routes_are_neither_audited_nor_remembered_by_the_gate(gate, doctor_key, admin_key):
    for key in (doctor_key, admin_key):
        for method, path in (("GET", "/patients"), ("GET", "/studies"), ("GET", "/statistics"),
                             ("POST", "/tools/find"), ("POST", "/tools/lookup")):
            assert gate.check(method, path, bearer(key)) is True
            assert not gate.service.remembered(gate.memo_key(method, path, bearer(key)))
    assert gate.rows() == []  # their handlers audit what the answer held


def test_a_trimmed_route_is_still_refused_to_anonymous_callers(gate):
    assert gate.check("GET", "/statistics") is False
    assert gate.rows()[0]["reason"] == "authentication required"


# -- CSRF through the gate --------------------------------------------------------------------------------


def test_session_write_without_csrf_token_is_denied_and_with_it_allowed(gate, admin_key, clock):
    signed = accounts.sign_in(gate.store, gate.sink, gate.auth, clock(), "root1", PASSWORD, IP, 1800, 3600)
    cookie = {"cookie": f"{SESSION_COOKIE}={signed.token}", "host": "pacs:8042"}
    modify = f"/studies/{PID}/modify"
    assert gate.check("POST", modify, {**cookie, "origin": "https://evil.example.com"}) is False
    assert gate.check("POST", modify, {**cookie, "x-csrf-token": signed.csrf_token}) is True
    denied, allowed = gate.rows()
    assert "CSRF" in denied["reason"] and allowed["outcome"] == "allow"


def test_a_trimmed_search_needs_the_csrf_token_too(gate, admin_key, clock):
    signed = accounts.sign_in(gate.store, gate.sink, gate.auth, clock(), "root1", PASSWORD, IP, 1800, 3600)
    cookie = {"cookie": f"{SESSION_COOKIE}={signed.token}", "host": "pacs:8042"}
    assert gate.check("POST", "/tools/find", {**cookie, "origin": "https://evil.example.com"}) is False
    assert gate.check("POST", "/tools/find", {**cookie, "x-csrf-token": signed.csrf_token}) is True
    [denied] = gate.rows()  # the allowed one is audited by its handler
    assert "CSRF" in denied["reason"]


# -- the decision cache ------------------------------------------------------------------------------------


def test_cached_decisions_still_count_every_read(gate, admin_key):
    for _ in range(7):
        assert gate.check("GET", f"/studies/{PID}", bearer(admin_key))
    written = gate.rows()
    assert all(r["outcome"] == "allow" and r["orthanc_id"] == PID for r in written)
    assert sum(r["count"] for r in written) == 7


def test_cached_decisions_count_reads_across_cache_expiry(gate, admin_key, clock):
    for _ in range(6):
        assert gate.check("GET", f"/studies/{PID}", bearer(admin_key))
        clock.advance(0.6)  # the decision (1 s) and identity (2 s) caches expire along the way
    assert sum(r["count"] for r in gate.rows()) == 6


def test_cache_hit_skips_identification(gate, admin_key, monkeypatch):
    gate.check("GET", STUDY, bearer(admin_key))
    monkeypatch.setattr(gate.auth, "identify", lambda headers, ip="": pytest.fail("identified again"))
    assert gate.check("GET", STUDY, bearer(admin_key))


def test_cached_allow_is_not_given_to_other_credentials(gate, admin_key, doctor_key):
    assert gate.check("GET", STUDY, bearer(admin_key))
    assert not gate.check("GET", STUDY)
    assert not gate.check("GET", STUDY, bearer(doctor_key))


def test_cached_allow_is_not_given_to_an_override(gate, admin_key, doctor_key):
    assert gate.check("GET", "/app/explorer.js", bearer(doctor_key))
    assert not gate.check("GET", "/app/explorer.js", bearer(doctor_key), {"_method": "PUT"})
    assert not gate.check("GET", "/app/explorer.js", {**bearer(doctor_key), "x-http-method-override": "PUT"})


def test_invalidate_makes_the_next_request_identify_again(gate, admin_key, clock):
    gate.add_user("root2", ["admin"])  # the last admin cannot be disabled
    assert gate.check("GET", STUDY, bearer(admin_key))
    disable(gate.store, clock(), "root1", audit=gate.sink, actor="test")
    gate.auth.invalidate()
    assert gate.check("GET", STUDY, bearer(admin_key)) is False
    assert gate.rows()[-1]["reason"] == "authentication required (account disabled)"


def test_cached_decision_does_not_outlive_the_identity(new_gate, clock):
    gate = new_gate(decision_ttl=100.0)
    admin_key = gate.add_user("root1", ["admin"])
    gate.add_user("root2", ["admin"])  # the last admin cannot be disabled
    assert gate.check("GET", STUDY, bearer(admin_key))
    disable(gate.store, clock(), "root1", audit=gate.sink, actor="test")
    clock.advance(IDENTITY_TTL)
    assert gate.check("GET", STUDY, bearer(admin_key)) is False


def test_forget_remembered_drops_cached_decisions(gate, admin_key, monkeypatch):
    gate.check("GET", STUDY, bearer(admin_key))
    gate.service.forget_remembered()
    calls: list[int] = []
    real = gate.auth.identify
    monkeypatch.setattr(gate.auth, "identify", lambda headers, ip="": calls.append(1) or real(headers, ip))
    gate.check("GET", STUDY, bearer(admin_key))
    assert calls == [1]


# -- the store ----------------------------------------------------------------------------------------


def test_a_remembered_read_is_refused_once_the_store_is_unhealthy(gate, admin_key):
    assert gate.check("GET", f"/studies/{PID}", bearer(admin_key))
    gate.store.health.mark_failed(OSError("disk I/O error"))
    assert gate.check("GET", f"/studies/{PID}", bearer(admin_key)) is False


def test_a_remembered_read_opens_a_new_audit_window_when_its_window_closed(gate, admin_key, clock):
    assert gate.check("GET", f"/studies/{PID}", bearer(admin_key))
    gate.log.flush()  # closes every window, as its expiry would
    assert gate.check("GET", f"/studies/{PID}", bearer(admin_key))
    assert [r["count"] for r in gate.rows()] == [1, 1]


def test_unhealthy_store_denies_phi_routes_naming_the_store(new_gate):
    gate = new_gate(start=False)  # no writer: nothing can mark the store healthy behind the test's back
    admin_key = gate.add_user("root1", ["admin"])
    gate.store.health.mark_failed(OSError("disk I/O error"))
    assert gate.check("GET", STUDY, bearer(admin_key)) is False
    assert gate.check("GET", "/gate/health") is True  # no patient data: still served
    [row] = gate.rows()
    assert row["outcome"] == "deny" and row["reason"] == "store unavailable: disk I/O error"


def test_unhealthy_store_denies_a_cached_decision_too(new_gate):
    gate = new_gate(start=False)
    admin_key = gate.add_user("root1", ["admin"])
    gate.log.start()
    assert gate.check("GET", STUDY, bearer(admin_key))
    gate.log.stop()
    gate.store.health.mark_failed(OSError("disk I/O error"))
    assert gate.check("GET", STUDY, bearer(admin_key)) is False


def test_internal_error_denial_is_audited(gate):
    gate.service.deny_internal_error("GET", "/patients", IP)
    [row] = gate.rows()
    assert (row["outcome"], row["reason"], row["route_class"]) == ("deny", "internal error in the gate",
                                                                   "resource_list")


def test_our_own_routes_are_never_remembered_nor_identified_twice(gate, admin_key, monkeypatch):
    # Their handlers need the full check each time (it hands them the caller's address), and they
    # identify the caller themselves: the filter asking too would check a Basic password twice.
    calls: list[int] = []
    real = gate.auth.identify
    monkeypatch.setattr(gate.auth, "identify", lambda headers, ip="": calls.append(1) or real(headers, ip))
    for _ in range(2):
        assert gate.check("GET", "/gate/api/me", bearer(admin_key))
        assert not gate.service.remembered(gate.memo_key("GET", "/gate/api/me", bearer(admin_key)))
    assert calls == []
