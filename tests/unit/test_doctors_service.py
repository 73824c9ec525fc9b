"""services/doctors.py against a real store: register, list and search, change, delete (revoking the
doctor's grants), conflicts also under a race, the grant version, and the audit of every change."""

from __future__ import annotations

import json

import pytest

from plugin.errors import BadRequest, Conflict, NotFound
from plugin.services import doctors
from plugin.services.users import Actor
from plugin.store import doctors as doctor_rows
from plugin.store import grants as grant_rows
from plugin.store.models import Doctor, Grant

IP = "10.0.0.7"
PREFIXES = frozenset({"MP", "DP", "PS"})
ADMIN = Actor("root1", frozenset({"admin"}), "api_key", None, IP)
NKOSI = {"hpcsa_number": "MP0123456", "title": "Dr", "first_name": "Thandi", "last_name": "Nkosi",
         "email": "t.nkosi@clinic.example", "mobile": "082 555 1234", "practice": "Sandton Radiology",
         "aliases": ["NKOSI^THANDI", "Dr T Nkosi"]}


@pytest.fixture
def events() -> list:
    return []


@pytest.fixture
def sink(events):
    return lambda event: events.append(event) or True


def create(store, sink, clock, **fields) -> dict:
    return doctors.create_doctor(store, sink, ADMIN, clock(), PREFIXES, {**NKOSI, **fields})


def update(store, sink, clock, doctor_id, data) -> doctors.DoctorChange:
    return doctors.update_doctor(store, sink, ADMIN, clock(), PREFIXES, doctor_id, data)


def version(store) -> int:
    with store.read() as db:
        return grant_rows.grant_version(db)


def doctor_count(store) -> int:
    with store.read() as db:
        return len(doctor_rows.list_doctors(db, limit=1000))


def add_grant(store, clock, doctor_id=None, user=None, study_uid="1.2.3") -> int:
    with store.transaction() as db:
        [grant] = grant_rows.add_grants(db, [Grant(subject_doctor_id=doctor_id, subject_user=user, study_uid=study_uid,
                                                   level="view_only", created_at=clock(), created_by="root1")])
    return grant.id


def grant(store, grant_id) -> Grant:
    with store.read() as db:
        return grant_rows.grant_by_id(db, grant_id)


# -- register --------------------------------------------------------------------------------------


def test_a_registered_doctor_is_kept_normalised_and_audited(store, sink, events, clock):
    created = create(store, sink, clock, hpcsa_number=" mp0123456 ", email="T.Nkosi@Clinic.Example",
                     aliases=["NKOSI^THANDI", "nkosi^thandi ", "Dr T Nkosi"])
    assert created == {"id": created["id"], "hpcsa_number": "MP0123456", "title": "Dr", "first_name": "Thandi",
                       "last_name": "Nkosi", "email": "T.Nkosi@clinic.example", "mobile": "+27825551234",
                       "practice": "Sandton Radiology", "aliases": ["NKOSI^THANDI", "Dr T Nkosi"], "username": None,
                           "disabled": False, "hpcsa_active": True,
                       "created_at": "2023-11-14T22:13:20.000000Z", "updated_at": "2023-11-14T22:13:20.000000Z"}
    assert doctors.get_doctor(store, created["id"]) == created
    [event] = events
    assert (event.action, event.actor, event.source_ip, event.roles, event.route_class, event.outcome) == (
        "doctor.create", "root1", IP, "admin", "doctor", "success")
    assert "MP0123456" in event.reason
    assert json.loads(event.detail)["after"]["mobile"] == "+27825551234"


def test_only_hpcsa_number_and_last_name_are_needed(store, sink, clock):
    created = doctors.create_doctor(store, sink, ADMIN, clock(), PREFIXES,
                                    {"hpcsa_number": "DP765432", "last_name": "Ndlovu"})
    assert (created["title"], created["email"], created["mobile"], created["aliases"], created["username"]) == (
        "", "", "", [], None)


def test_a_username_may_be_tied_before_the_user_exists(store, sink, clock):
    assert create(store, sink, clock, username="dr.nkosi@clinic")["username"] == "dr.nkosi@clinic"


@pytest.mark.parametrize(("data", "message"), [
    ({"hpcsa_number": "MP01234567"}, "6 or 7 digits"),
    ({"hpcsa_number": "OT0123456"}, "DP, MP, PS"),
    ({"mobile": "011 555 1234"}, "not a mobile number"),
    ({"email": "nkosi"}, '"email"'),
    ({"username": "-nkosi"}, "Usernames are 1-128 characters"),
    ({"username": 5}, '"username" must be a string'),
    ({"aliases": "NKOSI"}, "list of strings"),
    ({"last_name": ""}, '"last_name" must not be empty'),
    ({"practice": "P" * 257}, "at most 256"),
    ({"speciality": "radiology"}, "Unknown field 'speciality'"),
])
def test_bad_input_is_refused_before_anything_is_written(store, sink, events, clock, data, message):
    with pytest.raises(BadRequest, match=message):
        create(store, sink, clock, **data)
    assert doctor_count(store) == 0 and events == []


def test_a_second_doctor_with_the_same_hpcsa_number_is_a_conflict(store, sink, events, clock):
    create(store, sink, clock)
    events.clear()
    with pytest.raises(Conflict, match="MP0123456 is registered already"):
        create(store, sink, clock, hpcsa_number="mp0123456", last_name="Other")
    assert doctor_count(store) == 1 and events == []


def test_a_username_tied_to_another_doctor_is_a_conflict(store, sink, clock):
    create(store, sink, clock, username="drnkosi")
    with pytest.raises(Conflict, match="'drnkosi' is tied to doctor"):
        create(store, sink, clock, hpcsa_number="MP7654321", username="drnkosi")


@pytest.mark.parametrize("taken", ["hpcsa_number", "username"])
def test_a_conflict_that_slips_past_the_check_is_still_a_conflict(store, sink, events, clock, monkeypatch, taken):
    """Two requests at once can both pass the check; the unique index then refuses the second: 409, not 503."""
    create(store, sink, clock, username="drnkosi")
    events.clear()
    monkeypatch.setattr(doctor_rows, "doctor_by_hpcsa_number", lambda db, number: None)
    monkeypatch.setattr(doctor_rows, "doctor_by_username", lambda db, username: None)
    second = {"hpcsa_number": "MP0123456", "username": "someone"} if taken == "hpcsa_number" else {
        "hpcsa_number": "MP7654321", "username": "drnkosi"}
    with pytest.raises(Conflict, match="Another doctor has the"):
        create(store, sink, clock, **second)
    assert doctor_count(store) == 1 and events == []


# -- list and search -------------------------------------------------------------------------------


@pytest.fixture
def registry(store, sink, clock) -> dict[str, int]:
    """Four doctors, registered out of order."""
    rows = [
        {"hpcsa_number": "MP0000001", "first_name": "Thandi", "last_name": "Nkosi", "practice": "Sandton Radiology",
         "aliases": ["NKOSI^THANDI", "Dr T. Nkosi"]},
        {"hpcsa_number": "MP0000002", "first_name": "Anele", "last_name": "Nkosi", "practice": "Rosebank 100%"},
        {"hpcsa_number": "DP0000003", "first_name": "Pieter", "last_name": "van der Merwe", "practice": "Tygerberg",
         "aliases": ["VAN_DER_MERWE^P", "Émile"]},
        {"hpcsa_number": "PS0000004", "first_name": "Zola", "last_name": "Dlamini", "aliases": ["Z", "Dlamini"]},
    ]
    return {row["hpcsa_number"]: doctors.create_doctor(store, sink, ADMIN, clock(), PREFIXES, row)["id"]
            for row in rows}


def names(found: list[dict]) -> list[str]:
    return [f"{d['last_name']}, {d['first_name']}" for d in found]


def test_the_list_is_ordered_by_last_then_first_name(store, registry):
    assert names(doctors.list_doctors(store)) == ["Dlamini, Zola", "Nkosi, Anele", "Nkosi, Thandi",
                                                  "van der Merwe, Pieter"]


@pytest.mark.parametrize(("q", "found"), [
    ("nkosi", ["Nkosi, Anele", "Nkosi, Thandi"]),
    ("  NKOSI ", ["Nkosi, Anele", "Nkosi, Thandi"]),
    ("thandi", ["Nkosi, Thandi"]),  # first name and alias
    ("t. nk", ["Nkosi, Thandi"]),  # an alias only
    ("sandton", ["Nkosi, Thandi"]),
    ("dp00", ["van der Merwe, Pieter"]),
    ("mp0000002", ["Nkosi, Anele"]),
    ("_der_", ["van der Merwe, Pieter"]),  # LIKE's wildcards are literal here
    ("100%", ["Nkosi, Anele"]),
    ("%", ["Nkosi, Anele"]),
    ("Émile", ["van der Merwe, Pieter"]),
    (",", []),  # the punctuation of the stored alias list is no alias
    ('"', []),
    ("[", []),
    ("nobody", []),
    ("", ["Dlamini, Zola", "Nkosi, Anele", "Nkosi, Thandi", "van der Merwe, Pieter"]),
])
def test_search(store, registry, q, found):
    assert names(doctors.list_doctors(store, q)) == found


def test_pages_of_the_list(store, registry):
    assert names(doctors.list_doctors(store, "", "1", "2")) == ["Nkosi, Anele", "Nkosi, Thandi"]
    assert names(doctors.list_doctors(store, "nkosi", "1", None)) == ["Nkosi, Thandi"]
    assert doctors.list_doctors(store, "", "10", "5") == []


@pytest.mark.parametrize(("q", "offset", "limit"), [("", "-1", None), ("", None, "0"), ("", None, "1001"),
                                                    ("", "a", None), ("x" * 129, None, None)])
def test_bad_list_queries_are_refused(store, q, offset, limit):
    with pytest.raises(BadRequest):
        doctors.list_doctors(store, q, offset, limit)


def test_an_unknown_doctor_is_not_found(store):
    with pytest.raises(NotFound, match="No doctor 42"):
        doctors.get_doctor(store, 42)


# -- change ----------------------------------------------------------------------------------------


def test_a_change_keeps_the_other_fields_and_audits_only_what_changed(store, sink, events, clock):
    created = create(store, sink, clock)
    events.clear()
    clock.advance(60)
    change = update(store, sink, clock, created["id"], {"mobile": "+27 83 555 0000", "practice": "Sandton Radiology",
                                                        "aliases": ["Dr T Nkosi"]})
    assert change.doctor == {**created, "mobile": "+27835550000", "aliases": ["Dr T Nkosi"],
                             "updated_at": "2023-11-14T22:14:20.000000Z"}
    assert change.reach_changed is False
    [event] = events
    assert (event.action, event.route_class, event.actor) == ("doctor.update", "doctor", "root1")
    assert json.loads(event.detail) == {
        "before": {"mobile": "+27825551234", "aliases": ["NKOSI^THANDI", "Dr T Nkosi"]},
        "after": {"mobile": "+27835550000", "aliases": ["Dr T Nkosi"]}}


def test_a_change_to_the_same_values_changes_nothing(store, sink, events, clock):
    created = create(store, sink, clock)
    events.clear()
    clock.advance(60)
    before = version(store)
    assert update(store, sink, clock, created["id"], {"hpcsa_number": "mp0123456", "title": "Dr"}).doctor == created
    assert update(store, sink, clock, created["id"], {}).doctor == created
    assert events == [] and version(store) == before


def test_tying_changing_or_untying_the_username_bumps_the_grant_version(store, sink, events, clock):
    created = create(store, sink, clock)
    start = version(store)
    assert update(store, sink, clock, created["id"], {"practice": "Elsewhere"}).reach_changed is False
    assert version(store) == start
    tied = update(store, sink, clock, created["id"], {"username": "drnkosi"})
    assert tied.reach_changed and tied.doctor["username"] == "drnkosi" and version(store) == start + 1
    assert update(store, sink, clock, created["id"], {"username": "thandi"}).reach_changed
    assert version(store) == start + 2
    untied = update(store, sink, clock, created["id"], {"username": None})
    assert untied.reach_changed and untied.doctor["username"] is None and version(store) == start + 3
    assert json.loads(events[-1].detail) == {"before": {"username": "thandi"}, "after": {"username": None}}


def test_a_change_may_not_take_another_doctors_number_or_username(store, sink, clock):
    first = create(store, sink, clock, username="drnkosi")
    second = create(store, sink, clock, hpcsa_number="MP7654321", last_name="Ndlovu")
    for data in ({"hpcsa_number": "MP0123456"}, {"username": "drnkosi"}):
        with pytest.raises(Conflict):
            update(store, sink, clock, second["id"], data)
    assert doctors.get_doctor(store, second["id"]) == second
    assert update(store, sink, clock, first["id"], {"username": "drnkosi", "hpcsa_number": "MP0123456"}).doctor == first


def test_a_changed_number_taken_meanwhile_is_a_conflict_and_changes_nothing(store, sink, events, clock, monkeypatch):
    create(store, sink, clock)
    second = create(store, sink, clock, hpcsa_number="MP7654321", last_name="Ndlovu")
    events.clear()
    monkeypatch.setattr(doctor_rows, "doctor_by_hpcsa_number", lambda db, number: None)
    with pytest.raises(Conflict, match="HPCSA number MP0123456"):
        update(store, sink, clock, second["id"], {"hpcsa_number": "MP0123456", "practice": "Elsewhere"})
    assert doctors.get_doctor(store, second["id"]) == second and events == []


def test_bad_changes_are_refused(store, sink, events, clock):
    created = create(store, sink, clock)
    events.clear()
    for data in ({"hpcsa_number": "MP01234567"}, {"last_name": None}, {"mobile": "011 555 1234", "title": "Prof"},
                 {"id": 5}):
        with pytest.raises(BadRequest):
            update(store, sink, clock, created["id"], data)
    assert doctors.get_doctor(store, created["id"]) == created and events == []


def test_changing_an_unknown_doctor(store, sink, clock):
    with pytest.raises(NotFound):
        update(store, sink, clock, 42, {"title": "Dr"})


# -- delete ----------------------------------------------------------------------------------------


def test_delete_revokes_the_doctors_live_grants_only_and_is_audited(store, sink, events, clock):
    nkosi = create(store, sink, clock, username="drnkosi")
    ndlovu = create(store, sink, clock, hpcsa_number="MP7654321", last_name="Ndlovu")
    live = [add_grant(store, clock, nkosi["id"], study_uid=uid) for uid in ("1.1", "1.2")]
    already_revoked = add_grant(store, clock, nkosi["id"], study_uid="1.3")
    with store.transaction() as db:
        grant_rows.revoke_grants(db, [grant_rows.grant_by_id(db, already_revoked)], clock() - 5, "someone")
    others = [add_grant(store, clock, ndlovu["id"]), add_grant(store, clock, user="drnkosi")]
    events.clear()
    before = version(store)
    clock.advance(30)

    assert doctors.delete_doctor(store, sink, ADMIN, clock(), nkosi["id"]) == {
        "deleted": True, "id": nkosi["id"], "revoked_grants": 2}

    with pytest.raises(NotFound):
        doctors.get_doctor(store, nkosi["id"])
    assert all((grant(store, g).revoked_at, grant(store, g).revoked_by) == (clock(), "root1") for g in live)
    assert grant(store, already_revoked).revoked_by == "someone"
    assert all(grant(store, g).revoked_at is None for g in others)
    assert version(store) > before
    [event] = events
    assert (event.action, event.route_class, event.actor, event.outcome) == ("doctor.delete", "doctor", "root1",
                                                                             "success")
    detail = json.loads(event.detail)
    assert detail["before"]["hpcsa_number"] == "MP0123456" and sorted(detail["revoked_grants"]) == sorted(live)


def test_deleting_a_doctor_without_grants_still_bumps_the_version(store, sink, clock):
    created = create(store, sink, clock, username="drnkosi")
    before = version(store)
    assert doctors.delete_doctor(store, sink, ADMIN, clock(), created["id"])["revoked_grants"] == 0
    assert version(store) == before + 1


def test_a_delete_that_fails_half_way_revokes_nothing(store, sink, events, clock, monkeypatch):
    created = create(store, sink, clock)
    grant_id = add_grant(store, clock, created["id"])
    events.clear()

    def broken(db, doctor: Doctor) -> None:
        raise RuntimeError("the store went away")

    monkeypatch.setattr(doctor_rows, "delete_doctor", broken)
    with pytest.raises(RuntimeError):
        doctors.delete_doctor(store, sink, ADMIN, clock(), created["id"])
    assert grant(store, grant_id).revoked_at is None and doctors.get_doctor(store, created["id"]) == created
    assert events == []


def test_deleting_an_unknown_doctor(store, sink, events, clock):
    with pytest.raises(NotFound):
        doctors.delete_doctor(store, sink, ADMIN, clock(), 42)
    assert events == []
