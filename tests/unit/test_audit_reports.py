"""services/audit_reports.py over a real store: search and paging, the CSV export, a patient's
access report (POPIA s23) and the patients an account saw (s22); audit/record.patients_named."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

import pytest

from plugin.audit.chain import row_hash
from plugin.audit.record import LIST_CUT, PATIENT_ID_WIDTH, AuditRecord, iso_utc, patients_named
from plugin.errors import BadRequest, StoreUnavailable
from plugin.services import audit_reports
from plugin.services.users import Actor
from plugin.store import audit as audit_rows
from tests.unit.conftest import T0


def write(store, *records: AuditRecord) -> None:
    with store.transaction() as db:
        audit_rows.append_events(db, [dataclasses.asdict(r) for r in records], row_hash)


def read(actor: str, patient: str, at: float, action: str = "view", outcome: str = "allow", study: str = "",
         roles: str = "referring_doctor", detail: str = "") -> AuditRecord:
    return AuditRecord(ts=iso_utc(at), actor=actor, action=action, outcome=outcome, reason="r", roles=roles,
                       source_ip="10.0.0.9", method="GET", path="/studies/x", patient_id=patient, study_uid=study,
                       detail=detail)


def listed(actor: str, patients: list[str], at: float) -> AuditRecord:
    named, extra = patients_named(patients)
    return dataclasses.replace(read(actor, named, at, action="list"), detail=json.dumps({"returned": 3, **extra}))


# -- patients_named --------------------------------------------------------------------------------

def test_one_patient_is_named_as_it_is():
    assert patients_named(["P1"]) == ("P1", {})
    assert patients_named([]) == ("", {})


def test_several_patients_keep_their_exact_list_in_the_detail():
    assert patients_named(["B", "A,1"]) == ("A,1,B", {"patients": ["A,1", "B"]})


def test_a_long_list_is_cut_between_ids_and_marked():
    ids = [f"PATIENT-{i:04d}" for i in range(40)]
    named, extra = patients_named(ids)
    assert len(named) <= PATIENT_ID_WIDTH
    assert named.endswith("," + LIST_CUT)
    assert all(part in ids for part in named.split(",")[:-1])  # no id cut in half
    assert extra == {"patients": ids}


def test_a_single_id_too_long_for_the_column_is_not_cut_in_half():
    named, extra = patients_named(["X" * 200])
    assert named == LIST_CUT and extra == {"patients": ["X" * 200]}


# -- parsing ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("params, message", [
    ({"colour": "red"}, "Unknown filter 'colour'"),
    ({"outcome": "maybe"}, "Unknown outcome"),
    ({"from": "yesterday"}, '"from" must be a date'),
    ({"from": "2026-12-05", "to": "2026-12-01"}, '"from" is after "to"'),
    ({"user": "x" * 129}, "longer than 128"),
])
def test_bad_filters_are_refused_with_the_reason(params, message):
    with pytest.raises(BadRequest, match=message):
        audit_reports.parse_query(params)


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "501"}, {"limit": "ten"}, {"before": "x"}])
def test_bad_paging_is_refused(params):
    with pytest.raises(BadRequest):
        audit_reports.page_limits(params)


def test_a_date_covers_its_whole_day_and_a_time_with_a_zone_is_exact():
    query = audit_reports.parse_query({"from": "2026-12-05T06:00:00Z", "to": "2026-12-05T09:00:00+02:00"})
    assert query.since == "2026-12-05T06:00:00.000000Z"
    assert query.until == "2026-12-05T07:00:00.000000Z"
    day = audit_reports.parse_query({"from": "2026-12-05", "to": "2026-12-05"})
    assert day.since < day.until


# -- search and export ---------------------------------------------------------------------------------

def test_search_filters_and_pages_newest_first(store):
    write(store, *[read("drnkosi" if i % 2 else "drbotha", f"P{i}", T0 + i) for i in range(7)])
    query = audit_reports.parse_query({"user": "drnkosi"})
    first = audit_reports.search(store, query, limit=2)
    assert [e["patient_id"] for e in first["events"]] == ["P5", "P3"]
    second = audit_reports.search(store, query, limit=2, before=first["next_before"])
    assert [e["patient_id"] for e in second["events"]] == ["P1"]
    assert second["next_before"] is None
    assert first["filters"] == {"user": "drnkosi"}


def test_export_is_csv_of_every_match_with_formulas_neutralised(store):
    write(store, read("drnkosi", "=HYPERLINK(1)", T0), read("drbotha", "P2", T0 + 1))
    text = audit_reports.export_csv(store, audit_reports.parse_query({})).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["actor"] for r in rows] == ["drnkosi", "drbotha"]
    assert rows[0]["patient_id"] == "'=HYPERLINK(1)"
    assert set(rows[0]) == set(audit_reports.CSV_COLUMNS)


# -- POPIA reports ------------------------------------------------------------------------------------

def test_patient_report_lists_exactly_the_accesses_to_that_patient(store):
    write(store,
          read("drnkosi", "P1", T0, study="1.2.3"),
          read("drbotha", "P1", T0 + 60, action="download", study="1.2.3"),
          read("share:7", "P1", T0 + 120, action="share.view", roles="patient", detail=json.dumps({"share": 7})),
          read("drnkosi", "P10", T0 + 130),  # another patient whose id starts alike
          read("drevil", "P1", T0 + 140, outcome="deny"),  # refused: shown nothing
          read("admin", "P1", T0 + 150, action="grant.create", outcome="success"),  # a change, not a look
          listed("drdlamini", ["P0", "P1", "P2"], T0 + 160),
          listed("drdlamini", ["P0", "P1,X"], T0 + 170),  # "P1,X" is another patient
          listed("drmore", [f"PATIENT-{i:04d}" for i in range(30)] + ["P1"], T0 + 180))  # cut list
    report = audit_reports.patient_access_report(store, "P1")
    assert [(a["who"], a["action"]) for a in report["accesses"]] == [
        ("drnkosi", "view"), ("drbotha", "download"), ("share:7", "share.view"), ("drdlamini", "list"),
        ("drmore", "list")]
    assert report["accesses"][2]["share"] == 7
    assert report["accounts"] == ["drbotha", "drdlamini", "drmore", "drnkosi", "share:7"]
    assert report["accesses"][0]["ts"] == iso_utc(T0)


def test_patient_report_keeps_to_its_time_span(store):
    write(store, read("drnkosi", "P1", T0), read("drnkosi", "P1", T0 + 86400 * 3))
    report = audit_reports.patient_access_report(store, "P1", since=iso_utc(T0 + 86400))
    assert [a["ts"] for a in report["accesses"]] == [iso_utc(T0 + 86400 * 3)]


def test_breach_report_names_each_patient_an_account_saw_with_first_and_last_time(store):
    write(store,
          read("drnkosi", "P1", T0, study="1.1"),
          read("drnkosi", "P1", T0 + 10, study="1.2"),
          listed("drnkosi", ["P2", "P3"], T0 + 20),
          read("drnkosi", "P9", T0 + 30, outcome="deny"),
          read("drbotha", "P4", T0 + 40),
          read("drnkosi", "P5", T0 + 86400 * 9))
    report = audit_reports.patients_seen(store, "drnkosi", iso_utc(T0 - 1), iso_utc(T0 + 3600))
    assert [p["patient_id"] for p in report["patients"]] == ["P1", "P2", "P3"]
    first = report["patients"][0]
    assert (first["first"], first["last"], first["requests"], first["studies"]) == (
        iso_utc(T0), iso_utc(T0 + 10), 2, ["1.1", "1.2"])


def test_breach_report_needs_an_account_and_a_span(store):
    with pytest.raises(BadRequest, match="user"):
        audit_reports.patients_seen(store, "", "a", "b")
    with pytest.raises(BadRequest, match="from"):
        audit_reports.patients_seen(store, "drnkosi", None, "b")


def test_reading_the_audit_is_audited_or_nothing_is_shown():
    written: list[AuditRecord] = []
    actor = Actor("admin", frozenset({"admin"}), "session", ip="10.0.0.1")
    query = audit_reports.parse_query({"patient_id": "P1"})
    audit_reports.looked(lambda r: written.append(r) or True, actor, T0, "audit.patient_report", query, "P1")
    assert written[0].action == "audit.patient_report" and written[0].patient_id == "P1"
    assert json.loads(written[0].detail) == {"filters": {"patient_id": "P1"}}
    with pytest.raises(StoreUnavailable):
        audit_reports.looked(lambda r: False, actor, T0, "audit.search", query)
