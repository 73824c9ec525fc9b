"""The admin console's pages for the practice's records: doctors (/gate/admin/doctors), grants
(/gate/admin/grants), patients' share links and the referral review queue. Each action is the
service the JSON API calls."""

from __future__ import annotations

from urllib.parse import urlencode

from plugin.errors import BadRequest, GateError
from plugin.handlers.http import Request, Response, record_id
from plugin.handlers.shared import ConsoleVisit, console_page, console_visit, forget_who_sees_what
from plugin.policies.levels import LEVEL_NAMES
from plugin.policies.redirects import local_path
from plugin.services import doctors, users
from plugin.services.runtime import Runtime

DOCTOR_TEXT_FIELDS = ("hpcsa_number", "title", "first_name", "last_name", "email", "mobile", "practice")
DOCTOR_DONE = {"created": "The doctor is registered.", "saved": "The changes are saved.",
               "sign_in": "The login is created and tied to the doctor.",
               "sign_in_mailed": "The login is created; a welcome e-mail with a link to choose the password is queued."}


def doctors_page(runtime: Runtime, request: Request) -> Response:
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    error, field, entered = "", "", {}
    if request.method == "POST":
        entered = visit.form
        try:
            created = doctors.create_doctor(runtime.store, runtime.audit_now, visit.actor, runtime.clock(),
                                            runtime.config.hpcsa_prefixes, _doctor_data(entered),
                                            welcome=runtime.notifications.welcome)
            runtime.outbox.wake()
            return Response.redirect(f"/gate/admin/doctors/{created['id']}?done=created")
        except GateError as exc:
            error, field = exc.message, exc.field
    query = request.query.get("q", "")
    try:
        found = doctors.list_doctors(runtime.store, query, request.query.get("offset"), "50")
    except GateError as exc:
        found, error = [], exc.message
    status = 400 if error and not field and not entered else 200
    return console_page(runtime, request, "admin/doctors.html", visit, status,
                        section="Doctors", doctors=found, q=query, error="" if field else error, field=field,
                        field_error=error if field else "", entered=entered, offset=_offset(request),
                        prefixes=sorted(runtime.config.hpcsa_prefixes), json={"doctors": found})


def doctor_page(runtime: Runtime, request: Request, doctor_id: str) -> Response:
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    number = record_id(doctor_id, "doctor")
    error, field, entered = "", "", {}
    if request.method == "POST":
        entered = visit.form
        try:
            change = doctors.update_doctor(runtime.store, runtime.audit_now, visit.actor, runtime.clock(),
                                           runtime.config.hpcsa_prefixes, number, _doctor_data(entered, editing=True))
            if change.reach_changed:
                forget_who_sees_what(runtime)
            return Response.redirect(f"/gate/admin/doctors/{number}?done=saved")
        except GateError as exc:
            error, field = exc.message, exc.field
    return _doctor(runtime, request, visit, number, error, field, entered)


def doctor_sign_in(runtime: Runtime, request: Request, doctor_id: str) -> Response:
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    number = record_id(doctor_id, "doctor")
    try:
        created = doctors.create_sign_in(runtime.store, runtime.audit_now, runtime.mfa, visit.actor, runtime.clock(),
                                         number, visit.form.get("username", ""), welcome=runtime.notifications.welcome)
    except GateError as exc:
        return _doctor(runtime, request, visit, number, exc.message, "login_username", {})
    runtime.outbox.wake()
    forget_who_sees_what(runtime)
    done = "sign_in_mailed" if created["welcome_queued"] else "sign_in"
    return Response.redirect(f"/gate/admin/doctors/{number}?done={done}")


def _doctor(runtime: Runtime, request: Request, visit: ConsoleVisit, number: int, error: str, field: str,
            entered: dict[str, str]) -> Response:
    try:
        doctor = doctors.get_doctor(runtime.store, number)
    except GateError as exc:
        return console_page(runtime, request, "admin/refused.html", visit, exc.status, message=exc.message)
    return console_page(runtime, request, "admin/doctor.html", visit, section="Doctors", doctor=doctor,
                        error="" if field else error, field=field, field_error=error if field else "",
                        entered=entered or _as_form(doctor), notice=DOCTOR_DONE.get(request.query.get("done", ""), ""),
                        levels=LEVEL_NAMES, json={"doctor": doctor})


def _doctor_data(form: dict[str, str], editing: bool = False) -> dict[str, object]:
    """The form as the API's body: empty optional fields are sent empty (clearing them) when
    editing, left out when registering; aliases one per line; the two flags as ticked boxes."""
    data: dict[str, object] = {}
    for name in DOCTOR_TEXT_FIELDS:
        value = form.get(name, "")
        if value or editing:
            data[name] = value
    aliases = [line.strip() for line in form.get("aliases", "").splitlines() if line.strip()]
    if aliases or editing:
        data["aliases"] = aliases
    if editing:
        data["disabled"] = bool(form.get("disabled"))
        data["hpcsa_active"] = bool(form.get("hpcsa_active"))
    return data


def _as_form(doctor: dict[str, object]) -> dict[str, object]:
    form = {name: doctor.get(name) or "" for name in DOCTOR_TEXT_FIELDS}
    form["aliases"] = "\n".join(doctor.get("aliases") or [])  # type: ignore[arg-type]
    form["disabled"] = doctor.get("disabled")
    form["hpcsa_active"] = doctor.get("hpcsa_active")
    return form


def _offset(request: Request) -> int:
    offset = request.query.get("offset", "0")
    return int(offset) if offset.isdigit() and len(offset) < 10 else 0


# -- grants ------------------------------------------------------------------------------------------

SEARCH_FIELDS = ("patient_id", "patient_name", "date_from", "date_to", "modality", "referring", "accession")
# The grants list's filters, by the names the grant service reads (the search form above it has
# its own patient_id: a search must not filter the list too).
GRANT_FILTERS = {"user": "user", "doctor": "doctor", "grant_patient": "patient_id", "grant_study": "study_uid"}
GRANT_DONE = {"granted": "Grants written: {n}.", "revoked": "The grant is revoked."}


def grants_page(runtime: Runtime, request: Request) -> Response:
    """Find studies (patient, date, modality, referring doctor) → tick → grant them in bulk; and the
    grants in force, filtered, each with its revoke button."""
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    searched = {name: request.query.get(name, "").strip() for name in SEARCH_FIELDS}
    error, studies = "", None
    if any(searched.values()):
        try:
            studies = runtime.grants.find_studies(study_query(searched))
        except GateError as exc:
            error = exc.message
    filters = {name: request.query.get(name, "") for name in GRANT_FILTERS}
    try:
        grants = runtime.grants.list({**{GRANT_FILTERS[k]: v for k, v in filters.items() if v}, "limit": "500"})
    except GateError as exc:
        grants, error = [], exc.message
    done = GRANT_DONE.get(request.query.get("done", ""), "").format(n=request.query.get("n", ""))
    return console_page(runtime, request, "admin/grants.html", visit, section="Grants", searched=searched,
                        studies=studies,
                        grants=grants, filters=filters, error=error, notice=done, levels=LEVEL_NAMES,
                        subjects=_subjects(runtime), here=request.path + _query_string(request),
                        json={"studies": studies, "grants": grants})


def grant_bulk(runtime: Runtime, request: Request) -> Response:
    """POST the ticked studies of a search: one grant each, for the chosen user or doctor."""
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    form = visit.form
    picked = [value for name, value in sorted(form.items()) if name.startswith("pick_") and value]
    searched = {name: form.get(name, "") for name in SEARCH_FIELDS}
    back = "/gate/admin/grants?" + urlencode({k: v for k, v in searched.items() if v})
    try:
        if not picked:
            raise BadRequest("Tick at least one study to grant")
        kind, _, who = form.get("subject", "").partition(":")
        if kind not in ("user", "doctor") or not who:
            raise BadRequest("Choose whom the grant is for", "subject")
        data: dict[str, object] = {kind: int(who) if kind == "doctor" and who.isdigit() else who,
                                   "level": form.get("level", ""), "items": [{"study_uid": uid} for uid in picked]}
        if form.get("expires"):
            data["expires_at"] = form["expires"]
        written = runtime.grants.bulk(visit.actor, runtime.clock(), data)
    except GateError as exc:
        return console_page(runtime, request, "admin/refused.html", visit, exc.status,
                            message=f"{exc.message}. Go back and try again.")
    return Response.redirect(f"{back}&done=granted&n={len(written)}")


def grant_revoke(runtime: Runtime, request: Request, grant_id: str) -> Response:
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    try:
        runtime.grants.revoke(visit.actor, runtime.clock(), record_id(grant_id, "grant"))
    except GateError as exc:
        return console_page(runtime, request, "admin/refused.html", visit, exc.status, message=exc.message)
    back = local_path(visit.form.get("back"), "/gate/admin/grants")
    return Response.redirect(f"{back}{'&' if '?' in back else '?'}done=revoked")


def study_access_page(runtime: Runtime, request: Request) -> Response:
    """Who can see a study: the grants on it and on its patient (admins see every study)."""
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    study = request.query.get("study", "").strip()
    try:
        reach = runtime.grants.who_can_see(study, runtime.clock()) if study else None
    except GateError as exc:
        return console_page(runtime, request, "admin/refused.html", visit, exc.status, message=exc.message)
    return console_page(runtime, request, "admin/study_access.html", visit, section="Grants", study=study, reach=reach,
                        json=reach or {})


def study_query(searched: dict[str, str]) -> dict[str, str]:
    """The search form as the grant service's query (DICOM matching: names and the referring
    doctor by any part, dates as a range)."""
    query: dict[str, str] = {}
    if searched.get("patient_id"):
        query["PatientID"] = searched["patient_id"]
    for field, tag in (("patient_name", "PatientName"), ("referring", "ReferringPhysicianName")):
        if searched.get(field):
            value = searched[field]
            query[tag] = value if any(w in value for w in "*?") else f"*{value}*"
    if searched.get("date_from") or searched.get("date_to"):
        query["StudyDate"] = f"{_dicom_date(searched.get('date_from', ''))}-{_dicom_date(searched.get('date_to', ''))}"
    if searched.get("modality"):
        query["Modality"] = searched["modality"].upper()
    if searched.get("accession"):
        query["AccessionNumber"] = searched["accession"]
    return query


def _dicom_date(value: str) -> str:
    return value.replace("-", "") if value else ""


def _subjects(runtime: Runtime) -> list[tuple[str, str]]:
    """Whom a grant can be for: every enabled account that is not an admin (admins see everything),
    and every registered doctor."""
    people = [(f"user:{u['username']}", f"{u['username']} ({', '.join(u['roles'])})")
              for u in users.list_users(runtime.store) if not u["disabled"] and "admin" not in u["roles"]]
    registered = doctors.list_doctors(runtime.store, "", "0", "1000")
    people += [(f"doctor:{d['id']}", f"Dr {d['first_name']} {d['last_name']} ({d['hpcsa_number']})")
               for d in registered if not d["disabled"]]
    return people


def _query_string(request: Request) -> str:
    kept = {k: v for k, v in request.query.items() if k not in ("done", "n")}
    return "?" + urlencode(kept) if kept else ""


# -- patients' share links and the referral review queue -------------------------------------------


def shares_page(runtime: Runtime, request: Request) -> Response:
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    try:
        listed = runtime.shares.list(visit.principal, {"offset": str(_offset(request)), "limit": "100"},
                                     runtime.clock())
    except GateError as exc:
        return console_page(runtime, request, "admin/refused.html", visit, exc.status, message=exc.message)
    notice = "The share link is revoked." if request.query.get("done") == "revoked" else ""
    return console_page(runtime, request, "admin/shares.html", visit, section="Shares", listed=listed, notice=notice,
                        enabled=runtime.config.shares.enabled, offset=_offset(request), json=listed)


def share_revoke(runtime: Runtime, request: Request, share_id: str) -> Response:
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    try:
        runtime.shares.revoke(visit.principal, record_id(share_id, "share"), runtime.clock(), request.ip)
    except GateError as exc:
        return console_page(runtime, request, "admin/refused.html", visit, exc.status, message=exc.message)
    return Response.redirect("/gate/admin/shares?done=revoked")


def review_page(runtime: Runtime, request: Request) -> Response:
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    status = request.query.get("status", "open")
    try:
        items = runtime.review.items({"status": status, "limit": "200"})
    except GateError as exc:
        return console_page(runtime, request, "admin/refused.html", visit, exc.status, message=exc.message)
    notice = "The review item is settled." if request.query.get("done") == "resolved" else ""
    return console_page(runtime, request, "admin/review.html", visit, section="Review", items=items, showing=status,
                        notice=notice, json={"items": items})


def review_resolve(runtime: Runtime, request: Request, item_id: str) -> Response:
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    form = visit.form
    decision: dict[str, object] = {"action": form.get("action", ""), "note": form.get("note", "")}
    if form.get("doctor"):
        decision["doctor"] = int(form["doctor"]) if form["doctor"].isdigit() else form["doctor"]
    try:
        runtime.review.resolve(visit.actor, runtime.clock(), record_id(item_id, "review item"), decision)
    except GateError as exc:
        return console_page(runtime, request, "admin/refused.html", visit, exc.status, message=exc.message)
    return Response.redirect("/gate/admin/review?done=resolved")
