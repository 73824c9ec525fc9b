"""The doctors registry API on the shared server: admins only, every change audited, conflicts as 409,
and deleting a doctor takes their grants away at once."""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from plugin.store import grants as grant_rows
from plugin.store.db import Store
from plugin.store.models import Grant
from tests.conftest import ADMIN, ADMIN_PASSWORD, DOCTOR, Server, audit_rows
from tests.unit.conftest import sqlite_url

COLLECTION = "/gate/api/doctors"


def unique_token() -> str:
    return uuid.uuid4().hex[:10]


def unique_hpcsa() -> str:
    """Other tests share the server: a number nobody else uses."""
    return f"MP{uuid.uuid4().int % 10**7:07d}"


def register(server: Server, **fields) -> dict:
    answer = server.admin("POST", COLLECTION, json={"hpcsa_number": unique_hpcsa(), "last_name": "Nkosi", **fields})
    assert answer.status_code == 201, answer.text
    return answer.json()


def store_of(server: Server) -> Store:
    """The server's own store, opened beside it (SQLite in WAL mode allows that)."""
    return Store(sqlite_url(server.proc.database), timeout_seconds=10)


def add_grants(server: Server, doctor_id: int, study_uids: list[str]) -> list[int]:
    store = store_of(server)
    try:
        with store.transaction() as db:
            added = grant_rows.add_grants(db, [
                Grant(subject_doctor_id=doctor_id, study_uid=uid, level="view_only", source="manual",
                      created_at=0.0, created_by="tests") for uid in study_uids])
        return [grant.id for grant in added]
    finally:
        store.dispose()


def revoked_at(server: Server, grant_ids: list[int]) -> list[float | None]:
    store = store_of(server)
    try:
        with store.read() as db:
            return [grant_rows.grant_by_id(db, grant_id).revoked_at for grant_id in grant_ids]
    finally:
        store.dispose()


# -- who may ---------------------------------------------------------------------------------------


ROUTES = [("GET", COLLECTION), ("POST", COLLECTION), ("GET", f"{COLLECTION}/1"), ("PUT", f"{COLLECTION}/1"),
          ("DELETE", f"{COLLECTION}/1")]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_anonymous_callers_get_401(server: Server, method, path):
    answer = server.anonymous(method, path, json={"hpcsa_number": unique_hpcsa(), "last_name": "X"})
    assert answer.status_code == 401 and answer.json()["error"] == "unauthenticated"
    assert "WWW-Authenticate" in answer.headers


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_doctor_gets_403(server: Server, method, path):
    answer = server.doctor(method, path, json={"hpcsa_number": unique_hpcsa(), "last_name": "X"})
    assert answer.status_code == 403 and answer.json()["error"] == "forbidden"


def test_a_session_admin_must_send_the_csrf_token(server: Server):
    http = requests.Session()
    signed = http.post(server.url("/gate/login"), json={"username": ADMIN, "password": ADMIN_PASSWORD}, timeout=10)
    assert signed.status_code == 200, signed.text
    body = {"hpcsa_number": unique_hpcsa(), "last_name": "Csrf"}
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        refused = http.post(server.url(COLLECTION), json=body, headers=headers, timeout=10)
        assert refused.status_code == 403 and "Cross-site" in refused.json()["message"]
    assert server.admin("GET", COLLECTION, params={"q": body["hpcsa_number"]}).json()["doctors"] == []
    created = http.post(server.url(COLLECTION), json=body, headers={"X-CSRF-Token": signed.json()["csrf_token"]},
                        timeout=10)
    assert created.status_code == 201, created.text
    assert http.delete(server.url(f"{COLLECTION}/{created.json()['id']}"), timeout=10).status_code == 403
    assert http.get(server.url(f"{COLLECTION}/{created.json()['id']}"), timeout=10).status_code == 200


# -- the registry ----------------------------------------------------------------------------------


def test_an_admin_registers_lists_finds_changes_and_deletes_a_doctor(server: Server):
    token = unique_token()
    number = unique_hpcsa()
    created = server.admin("POST", COLLECTION, json={
        "hpcsa_number": f" {number.lower()} ", "title": "Dr", "first_name": "Thandi", "last_name": "Nkosi",
        "email": "T.Nkosi@Clinic.Example", "mobile": "082 555 1234", "practice": f"Sandton {token}",
        "aliases": ["NKOSI^THANDI", "nkosi^thandi", "Dr T Nkosi"], "username": f"thandi-{token}"})
    assert created.status_code == 201, created.text
    doctor = created.json()
    assert {key: value for key, value in doctor.items() if key not in ("id", "created_at", "updated_at")} == {
        "hpcsa_number": number, "title": "Dr", "first_name": "Thandi", "last_name": "Nkosi",
        "email": "T.Nkosi@clinic.example", "mobile": "+27825551234", "practice": f"Sandton {token}",
        "aliases": ["NKOSI^THANDI", "Dr T Nkosi"], "username": f"thandi-{token}", "disabled": False,
        "hpcsa_active": True}
    assert doctor["created_at"].endswith("Z") and doctor["created_at"] == doctor["updated_at"]
    path = f"{COLLECTION}/{doctor['id']}"
    assert server.admin("GET", path).json() == doctor

    listed = server.admin("GET", COLLECTION).json()["doctors"]
    assert doctor in listed
    assert [(d["last_name"], d["first_name"]) for d in listed] == sorted((d["last_name"], d["first_name"])
                                                                         for d in listed)
    assert server.admin("GET", COLLECTION, params={"q": token.upper()}).json()["doctors"] == [doctor]
    assert server.admin("GET", COLLECTION, params={"q": number}).json()["doctors"] == [doctor]

    changed = server.admin("PUT", path, json={"mobile": "+27 83 555 0000", "aliases": ["Dr T. Nkosi"]})
    assert changed.status_code == 200, changed.text
    assert changed.json() == {**doctor, "mobile": "+27835550000", "aliases": ["Dr T. Nkosi"],
                              "updated_at": changed.json()["updated_at"]}
    assert server.admin("GET", path).json() == changed.json()

    deleted = server.admin("DELETE", path)
    assert deleted.json() == {"deleted": True, "id": doctor["id"], "revoked_grants": 0}
    assert server.admin("GET", path).status_code == 404

    events = audit_rows(server, "route_class='doctor' AND reason LIKE ?", (f"% {number}%",))
    assert [(e["action"], e["actor"], e["outcome"]) for e in events] == [
        ("doctor.create", ADMIN, "success"), ("doctor.update", ADMIN, "success"), ("doctor.delete", ADMIN, "success")]
    assert json.loads(events[1]["detail"]) == {"before": {"mobile": "+27825551234",
                                                          "aliases": ["NKOSI^THANDI", "Dr T Nkosi"]},
                                               "after": {"mobile": "+27835550000", "aliases": ["Dr T. Nkosi"]}}


def test_pages_of_a_search(server: Server):
    token = unique_token()
    made = [register(server, first_name=name, practice=f"Pages {token}") for name in ("Ayanda", "Bongani", "Chris")]
    page = server.admin("GET", COLLECTION, params={"q": token, "offset": "1", "limit": "1"}).json()["doctors"]
    assert page == [made[1]]
    for params in ({"limit": "0"}, {"limit": "1001"}, {"offset": "-1"}, {"limit": "many"}):
        answer = server.admin("GET", COLLECTION, params=params)
        assert answer.status_code == 400 and answer.json()["error"] == "bad_request", params


def test_a_second_doctor_with_the_same_number_or_username_is_a_conflict(server: Server):
    token = unique_token()
    first = register(server, username=f"dup-{token}")
    for body in ({"hpcsa_number": first["hpcsa_number"].lower(), "last_name": "Other"},
                 {"hpcsa_number": unique_hpcsa(), "last_name": "Other", "username": f"dup-{token}"}):
        answer = server.admin("POST", COLLECTION, json=body)
        assert answer.status_code == 409 and answer.json()["error"] == "conflict", body
    second = register(server)
    taken = server.admin("PUT", f"{COLLECTION}/{second['id']}", json={"hpcsa_number": first["hpcsa_number"]})
    assert taken.status_code == 409
    assert server.admin("GET", f"{COLLECTION}/{second['id']}").json() == second


def test_a_bad_hpcsa_number_is_refused_with_a_clear_message(server: Server):
    answer = server.admin("POST", COLLECTION, json={"hpcsa_number": "MP01234567", "last_name": "Nkosi"})
    assert answer.status_code == 400 and answer.json()["error"] == "bad_request"
    message = answer.json()["message"]
    assert "'MP01234567' is not an HPCSA registration number" in message
    assert "6 or 7 digits" in message and "e.g. MP0123456" in message and "MP, MT" in message


@pytest.mark.parametrize(("body", "message"), [
    ({"last_name": "Nkosi"}, '"hpcsa_number" is required'),
    ({"hpcsa_number": "XX0123456", "last_name": "Nkosi"}, "not an HPCSA registration number"),
    ({"hpcsa_number": "MP0123456", "last_name": "Nkosi", "mobile": "011 555 1234"}, "not a mobile number"),
    ({"hpcsa_number": "MP0123456", "last_name": "Nkosi", "email": "nkosi@"}, '"email"'),
    ({"hpcsa_number": "MP0123456", "last_name": "Nkosi", "aliases": "NKOSI"}, '"aliases" must be a list'),
    ({"hpcsa_number": "MP0123456", "last_name": 7}, '"last_name" must be a string'),
    ({"hpcsa_number": "MP0123456", "last_name": "Nkosi", "hpcsa": "x"}, "Unknown field 'hpcsa'"),
    ({"hpcsa_number": "MP0123456", "last_name": "Nkosi", "username": "no spaces"}, "Usernames are"),
])
def test_bad_input_is_refused(server: Server, body, message):
    answer = server.admin("POST", COLLECTION, json=body)
    assert answer.status_code == 400 and message in answer.json()["message"], answer.text


def test_bodies_that_are_no_json_object_are_refused(server: Server):
    for kwargs in ({"data": "hpcsa_number=MP0123456"}, {"json": ["MP0123456"]},
                   {"data": "{", "headers": {"Content-Type": "application/json"}}):
        answer = server.admin("POST", COLLECTION, **kwargs)
        assert answer.status_code == 400 and answer.json()["error"] == "bad_request", kwargs


def test_a_partial_change_keeps_the_other_fields(server: Server):
    doctor = register(server, first_name="Anele", practice="Rosebank", email="anele@clinic.example")
    path = f"{COLLECTION}/{doctor['id']}"
    changed = server.admin("PUT", path, json={"practice": "Parktown"}).json()
    assert changed == {**doctor, "practice": "Parktown", "updated_at": changed["updated_at"]}
    cleared = server.admin("PUT", path, json={"email": None, "username": None}).json()
    assert (cleared["email"], cleared["username"], cleared["first_name"]) == ("", None, "Anele")
    refused = server.admin("PUT", path, json={"last_name": ""})
    assert refused.status_code == 400
    assert server.admin("GET", path).json()["last_name"] == "Nkosi"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("doctor_id", ["999999999", "9" * 40])
def test_an_unknown_doctor_is_404(server: Server, method, doctor_id):
    answer = server.admin(method, f"{COLLECTION}/{doctor_id}", json={"title": "Dr"})
    assert answer.status_code == 404 and answer.json()["error"] == "not_found"


# -- grants ----------------------------------------------------------------------------------------


def test_deleting_a_doctor_revokes_their_grants(server: Server):
    doctor, other = register(server), register(server)
    revoked = add_grants(server, doctor["id"], ["1.2.826.0.1.9.1", "1.2.826.0.1.9.2"])
    kept = add_grants(server, other["id"], ["1.2.826.0.1.9.1"])
    deleted = server.admin("DELETE", f"{COLLECTION}/{doctor['id']}")
    assert deleted.json() == {"deleted": True, "id": doctor["id"], "revoked_grants": 2}
    assert all(when is not None for when in revoked_at(server, revoked))
    assert revoked_at(server, kept) == [None]
    [event] = audit_rows(server, "action='doctor.delete' AND reason LIKE ?", (f"% {doctor['hpcsa_number']} %",))
    assert sorted(json.loads(event["detail"])["revoked_grants"]) == sorted(revoked)


def a_study(server: Server) -> tuple[str, str]:
    """(Orthanc id, StudyInstanceUID) of one study on the server."""
    study = server.admin("GET", "/studies", params={"expand": "1"}).json()[0]
    return study["ID"], study["MainDicomTags"]["StudyInstanceUID"]


def test_a_login_tied_to_a_doctor_sees_their_studies_until_the_doctor_is_deleted(server: Server):
    username, password = f"dr-{unique_token()}", "a long password 123"
    made = server.admin("POST", "/gate/api/users", json={"username": username, "roles": ["referring_doctor"],
                                                         "password": password, "must_change_password": False})
    assert made.status_code == 201, made.text
    assert username != DOCTOR  # the shared doctor's access stays as other tests expect it

    study_id, study_uid = a_study(server)

    def study_status() -> int:
        return requests.get(server.url(f"/studies/{study_id}"), auth=(username, password), timeout=30).status_code

    doctor = register(server)
    add_grants(server, doctor["id"], [study_uid])
    assert study_status() == 403
    assert server.admin("PUT", f"{COLLECTION}/{doctor['id']}", json={"username": username}).status_code == 200
    assert study_status() == 200
    assert server.admin("DELETE", f"{COLLECTION}/{doctor['id']}").json()["revoked_grants"] == 1
    assert study_status() == 403
