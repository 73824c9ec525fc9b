"""The audit viewer's reads: search and CSV export, a patient's access report (POPIA section 23)
and the patients an account saw in a time span (a breach report, POPIA section 22)."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from plugin.audit.record import LIST_CUT, PATIENT_ID_WIDTH, iso_utc
from plugin.errors import BadRequest, StoreUnavailable
from plugin.services.accounts import AuditSink, account_event
from plugin.services.users import Actor
from plugin.store import audit as audit_rows
from plugin.store.db import Store

DEFAULT_PAGE = 50
MAX_PAGE = 500
MAX_EXPORT_ROWS = 200_000
FILTERS = ("from", "to", "user", "patient_id", "study_uid", "action", "outcome")
PAGING = ("limit", "before")
REPORT_FILTERS = ("patient_id", "from", "to")
BREACH_FILTERS = ("user", "from", "to")
OUTCOMES = ("allow", "deny", "success", "failure")
# What disclosed a patient's data to someone: a request the gate allowed, a use that succeeded.
DISCLOSED = ("allow", "success")
# The practice's own changes that name a patient but show nobody anything (a grant written, a
# referral linked, a share link made or revoked): everything else allowed that names the patient
# counts as an access, so an action added later is reported rather than missed.
NOT_DISCLOSURE_PREFIXES = ("grant.", "referral.", "review.", "doctor.", "user.", "users.", "audit.")
NOT_DISCLOSURES = frozenset({"share.create", "share.revoke"})
CSV_COLUMNS = ("id", "ts", "actor", "roles", "source_ip", "method", "path", "route_class", "level", "orthanc_id",
               "patient_id", "study_uid", "action", "outcome", "reason", "count", "detail", "row_hash")
# A spreadsheet runs a cell that starts with these as a formula: such a cell is quoted as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class AuditQuery:
    since: str | None = None  # ISO UTC, as the rows' ts
    until: str | None = None
    user: str | None = None
    patient_id: str | None = None
    study_uid: str | None = None
    action: str | None = None
    outcome: str | None = None

    def clauses(self, outcomes: Iterable[str] = ()) -> list[Any]:
        return audit_rows.event_filter(since=self.since, until=self.until, actor=self.user,
                                       patient_id=self.patient_id, study_uid=self.study_uid, action=self.action,
                                       outcome=self.outcome, outcomes=tuple(outcomes), list_cut=LIST_CUT)

    def as_params(self) -> dict[str, str]:
        """The filters as they were given back to the caller (times as ISO UTC)."""
        pairs = {"from": self.since, "to": self.until, "user": self.user, "patient_id": self.patient_id,
                 "study_uid": self.study_uid, "action": self.action, "outcome": self.outcome}
        return {k: v for k, v in pairs.items() if v}


def parse_query(params: dict[str, str], allowed: Iterable[str] = FILTERS + PAGING) -> AuditQuery:
    """The filters of an audit search. Dates are whole days (`to` includes its day); times without
    a zone are the server's local time, as everywhere in the Gate."""
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise BadRequest(f"Unknown filter {unknown[0]!r}; the filters are {', '.join(FILTERS)}")
    outcome = _text(params, "outcome", 16)
    if outcome and outcome not in OUTCOMES:
        raise BadRequest(f"Unknown outcome {outcome!r}; outcomes are {', '.join(OUTCOMES)}")
    query = AuditQuery(since=parse_moment(params.get("from"), "from", end_of_day=False),
                       until=parse_moment(params.get("to"), "to", end_of_day=True),
                       user=_text(params, "user", 128), patient_id=_text(params, "patient_id", 128),
                       study_uid=_text(params, "study_uid", 128), action=_text(params, "action", 32), outcome=outcome)
    if query.since and query.until and query.since > query.until:
        raise BadRequest('"from" is after "to"')
    return query


def parse_moment(value: str | None, name: str, end_of_day: bool) -> str | None:
    """An ISO 8601 date or time as the audit's UTC timestamp text; a date alone is its first (or,
    for `end_of_day`, its last) microsecond, in the server's local time."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            moment = dt.datetime.combine(day, dt.time.max if end_of_day else dt.time.min)
        else:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(f'"{name}" must be a date (2026-12-31) or a time (2026-12-31T08:30:00Z)') from exc
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the server's local time
    return iso_utc(moment.timestamp())


def page_limits(params: dict[str, str]) -> tuple[int, int | None]:
    """`limit` (1..MAX_PAGE, DEFAULT_PAGE) and `before` (a row id: the page after the one that ended there)."""
    try:
        limit = int(params.get("limit") or DEFAULT_PAGE)
        before = int(params["before"]) if params.get("before") else None
    except ValueError as exc:
        raise BadRequest('"limit" and "before" are whole numbers') from exc
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f'"limit" is between 1 and {MAX_PAGE}')
    return limit, before


def search(store: Store, query: AuditQuery, limit: int = DEFAULT_PAGE, before: int | None = None) -> dict[str, Any]:
    """A page of matching rows, newest first; `next_before` asks for the next page (None: no more)."""
    with store.read() as db:
        rows = audit_rows.search_events(db, query.clauses(), limit + 1, before)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"events": [event_view(row) for row in rows], "next_before": rows[-1]["id"] if more and rows else None,
            "filters": query.as_params()}


def export_csv(store: Store, query: AuditQuery) -> bytes:
    """Every matching row, oldest first, as CSV (formula-looking cells quoted as text)."""
    clauses = query.clauses()
    with store.read() as db:
        total = audit_rows.count_events(db, clauses)
        if total > MAX_EXPORT_ROWS:
            raise BadRequest(f"{total} rows match, more than the {MAX_EXPORT_ROWS} one export holds; "
                             "narrow the dates or add a filter")
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for row in audit_rows.iter_matching(db, clauses):
            writer.writerow([_cell(row[name]) for name in CSV_COLUMNS])
    return out.getvalue().encode("utf-8")


def patient_access_report(store: Store, patient_id: str, since: str | None = None,
                          until: str | None = None) -> dict[str, Any]:
    """Everyone who was shown this patient's data (images, reports, lists naming them), with when,
    how and from where: what POPIA section 23 lets a patient ask for. Practice changes (grants,
    referrals linked) are not accesses and are left out; refused requests showed nothing."""
    if not patient_id:
        raise BadRequest('Give the patient\'s "patient_id"')
    query = AuditQuery(since=since, until=until, patient_id=patient_id)
    with store.read() as db:
        rows = [row for row in audit_rows.iter_matching(db, query.clauses(DISCLOSED))
                if _discloses(row["action"]) and patient_id in _patients(row)]
    accesses = [_access_view(row) for row in rows]
    return {"patient_id": patient_id, "from": since, "to": until, "accesses": accesses,
            "accounts": sorted({a["who"] for a in accesses}), "total": sum(a["count"] for a in accesses)}


def patients_seen(store: Store, user: str, since: str | None, until: str | None) -> dict[str, Any]:
    """Which patients account `user` was shown between two times, with first and last time and how
    many requests: the list a breach report (POPIA section 22) starts from."""
    if not user:
        raise BadRequest('Give the account as "user"')
    if not since or not until:
        raise BadRequest('Give the time span as "from" and "to"')
    query = AuditQuery(since=since, until=until, user=user)
    seen: dict[str, dict[str, Any]] = {}
    with store.read() as db:
        for row in audit_rows.iter_matching(db, query.clauses(DISCLOSED)):
            if not _discloses(row["action"]):
                continue
            for patient_id in _patients(row):
                entry = seen.setdefault(patient_id, {"patient_id": patient_id, "first": row["ts"], "last": row["ts"],
                                                     "requests": 0, "studies": set(), "actions": set()})
                entry["last"] = row["ts"]
                entry["requests"] += row["count"]
                entry["actions"].add(row["action"])
                if row["study_uid"]:
                    entry["studies"].add(row["study_uid"])
    patients = [{**entry, "studies": sorted(entry["studies"]), "actions": sorted(entry["actions"])}
                for entry in sorted(seen.values(), key=lambda e: e["patient_id"])]
    return {"user": user, "from": since, "to": until, "patients": patients}


# -- the reads as callers ask them: the filters parsed, the read, then the record that it was read
# (nothing is shown unless that record is written). The JSON API and the console both call these.


def searched(store: Store, audit: AuditSink, actor: Actor, now: float, params: dict[str, str]) -> dict[str, Any]:
    query = parse_query(params)
    limit, before = page_limits(params)
    found = search(store, query, limit, before)
    looked(audit, actor, now, "audit.search", query)
    return found


def exported(store: Store, audit: AuditSink, actor: Actor, now: float, params: dict[str, str]) -> bytes:
    query = parse_query(params, FILTERS)
    body = export_csv(store, query)
    looked(audit, actor, now, "audit.export", query)
    return body


def patient_report(store: Store, audit: AuditSink, actor: Actor, now: float,
                   params: dict[str, str]) -> dict[str, Any]:
    query = parse_query(params, REPORT_FILTERS)
    report = patient_access_report(store, query.patient_id or "", query.since, query.until)
    looked(audit, actor, now, "audit.patient_report", query, query.patient_id or "")
    return report


def breach_report(store: Store, audit: AuditSink, actor: Actor, now: float, params: dict[str, str]) -> dict[str, Any]:
    query = parse_query(params, BREACH_FILTERS)
    report = patients_seen(store, query.user or "", query.since, query.until)
    looked(audit, actor, now, "audit.breach_report", query)
    return report


def _discloses(action: str) -> bool:
    return action not in NOT_DISCLOSURES and not action.startswith(NOT_DISCLOSURE_PREFIXES)


def _patients(row: dict[str, Any]) -> list[str]:
    """The PatientIDs a row names: its detail's exact list when it names several, else its one
    (rows written before the list was kept name theirs comma-separated)."""
    listed = _detail(row["detail"]).get("patients")
    if isinstance(listed, list):
        return [p for p in listed if isinstance(p, str)]
    value = row["patient_id"]
    return [value] if value and "," not in value else [p for p in value.split(",") if p]


def _access_view(row: dict[str, Any]) -> dict[str, Any]:
    detail = _detail(row["detail"])
    who = row["actor"]
    return {"id": row["id"], "ts": row["ts"], "who": who, "roles": row["roles"], "action": row["action"],
            "study_uid": row["study_uid"], "path": row["path"], "source_ip": row["source_ip"], "count": row["count"],
            "share": detail.get("share") if who.startswith("share:") else None,
            "repeats_of": detail.get("coalesced_into"), "first_ts": detail.get("first_ts")}


def event_view(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in CSV_COLUMNS}


def _detail(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _text(params: dict[str, str], name: str, longest: int) -> str | None:
    value = (params.get(name) or "").strip()
    if len(value) > longest:
        raise BadRequest(f'"{name}" is longer than {longest} characters')
    return value or None



def looked(audit: AuditSink, actor: Actor, now: float, action: str, query: AuditQuery | dict[str, str],
           patient_id: str = "") -> None:
    """Who read the audit, how (search, export, a report) and with which filters: reading it is
    itself audited. Raises StoreUnavailable when the row cannot be written: then nothing is shown."""
    filters = query.as_params() if isinstance(query, AuditQuery) else {k: v for k, v in query.items() if v}
    record = account_event(now, actor.username, action, "success", f"read the audit ({action})", actor.ip,
                           ",".join(sorted(actor.roles)), json.dumps({"filters": filters}))
    record = dataclasses.replace(record, route_class="audit", patient_id=patient_id[:PATIENT_ID_WIDTH])
    if not audit(record):
        raise StoreUnavailable("The audit could not be written; nothing of it is shown")
