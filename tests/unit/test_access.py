"""The route-coverage table: every route family, and every action within it, × who is calling
(an admin; a doctor holding each level on the resource; a doctor with no grant; anonymous; a user
who must change their password; one whose second factor is still owed) -> allowed?

The answers are written out by hand, not computed from REQUIRED_LEVEL: a policy change must be
made here too. A family routes.py can return that has no row here fails
`test_every_family_routes_can_return_has_a_row`; an action the route table knows for a family that
has no row here fails `test_every_family_and_action_of_the_route_table_has_a_row`.
"""

from __future__ import annotations

import pytest

from plugin.policies.access import GRANTED_FAMILIES, decide
from plugin.policies.levels import AccessLevel
from plugin.policies.routes import classify
from plugin.policies.types import ANONYMOUS, Action, Principal, Role
from tests.unit.test_routes import ROUTES, _families_named_in_routes_module

PID = "b9c08539-26f93bde-c81ab0d7-bffaf2cb-a4d0bdd0"
UID = "1.2.826.0.1.3680043.10.1192.1"
DW = f"/dicom-web/studies/{UID}"
WADO = {"requestType": "WADO", "studyUID": UID, "seriesUID": f"{UID}.1", "objectUID": f"{UID}.1.1"}

L, V, D, N, R, M, X, A, P = (Action.LIST, Action.VIEW, Action.DOWNLOAD, Action.ANNOTATE, Action.REPORT,
                             Action.MODIFY, Action.DELETE, Action.ADMIN, Action.PUBLIC)

ADMIN = Principal("root1", frozenset({"admin"}), "session")
DOCTOR = Principal("drnkosi", frozenset({"referring_doctor"}), "session")
MUST_CHANGE = Principal("drnkosi", frozenset({"referring_doctor"}), "session", must_change_password=True)
MFA_PENDING = Principal("drnkosi", frozenset({"radiologist"}), "session", mfa_pending=True)

# Who calls, and the level the gate found they hold on the resource the route names. Users who
# still owe a password change or a second factor are given a full grant: even that opens nothing.
CALLERS: list[tuple[str, Principal, AccessLevel | None]] = [
    ("admin", ADMIN, None),
    ("view_only", DOCTOR, AccessLevel.VIEW_ONLY),
    ("download", DOCTOR, AccessLevel.DOWNLOAD),
    ("annotate", DOCTOR, AccessLevel.ANNOTATE),
    ("report", DOCTOR, AccessLevel.REPORT),
    ("share", DOCTOR, AccessLevel.SHARE),
    ("full", DOCTOR, AccessLevel.FULL),
    ("no_grant", DOCTOR, None),
    ("anonymous", ANONYMOUS, None),
    ("must_change_password", MUST_CHANGE, AccessLevel.FULL),
    ("mfa_pending", MFA_PENDING, AccessLevel.FULL),
]

# One row per family and action: (method, path, query, family, action, allowed per caller).
# The last column reads, one character per caller in CALLERS' order (spaces only group them):
#   admin | view_only download annotate report share full | no_grant | anonymous | must_change | mfa
# "Y" allowed, "." denied.
TABLE: list[tuple[str, str, dict[str, str], str, Action, str]] = [
    # -- lists and searches the plugin answers, trimmed to the caller's grants ---------------------
    ("GET", "/patients", {}, "resource_list", L,                          "Y YYYYYY Y . . ."),
    ("POST", "/instances", {}, "resource_list", M,                        "Y ...... . . . ."),  # upload
    ("GET", "/instances", {}, "resource_list", A,                         "Y ...... . . . ."),  # core: uploads
    ("DELETE", "/patients", {}, "resource_list", X,                       "Y ...... . . . ."),
    ("POST", "/tools/find", {}, "tools_find", L,                          "Y YYYYYY Y . . ."),
    ("POST", "/tools/count-resources", {}, "tools_find", L,               "Y YYYYYY Y . . ."),
    ("POST", "/tools/find/extra", {}, "tools_find", L,                    "Y ...... . . . ."),  # not trimmed
    ("POST", "/tools/lookup", {}, "tools_lookup", L,                      "Y YYYYYY Y . . ."),
    ("GET", "/statistics", {}, "statistics", L,                           "Y YYYYYY Y . . ."),
    ("GET", "/tools/labels", {}, "tools_labels", L,                       "Y YYYYYY Y . . ."),
    ("POST", "/tools/labels/x", {}, "tools_labels", L,                    "Y ...... . . . ."),  # not trimmed
    ("POST", "/statistics", {}, "statistics", A,                          "Y ...... . . . ."),
    # -- one patient, decided by the grant on the patient ----------------------------------------
    # Answered by the plugin, trimmed to the studies held (handlers/orthanc.patient_resource).
    ("GET", f"/patients/{PID}", {}, "patients", V,                        "Y YYYYYY Y . . ."),
    ("GET", f"/patients/{PID}/", {}, "patients", V,                       "Y YYYYYY . . . ."),
    ("GET", f"/PATIENTS/{PID}", {}, "patients", V,                        "Y YYYYYY . . . ."),
    ("GET", f"/patients/{PID}/archive", {}, "patients", D,                "Y .YYYYY . . . ."),
    ("PUT", f"/patients/{PID}/labels/urgent", {}, "patients", N,          "Y ..YYYY . . . ."),
    ("PUT", f"/patients/{PID}/attachments/1025", {}, "patients", R,       "Y ...YYY . . . ."),
    ("PUT", f"/patients/{PID}/protected", {}, "patients", M,              "Y .....Y . . . ."),
    ("POST", f"/patients/{PID}/modify", {}, "patients", A,                "Y ...... . . . ."),  # body: where it writes
    ("DELETE", f"/patients/{PID}", {}, "patients", X,                     "Y .....Y . . . ."),
    # -- one study --------------------------------------------------------------------------------
    ("GET", f"/studies/{PID}", {}, "studies", V,                          "Y YYYYYY . . . ."),
    ("GET", f"/studies/{PID}/media", {}, "studies", D,                    "Y .YYYYY . . . ."),
    ("PUT", f"/studies/{PID}/metadata/1024", {}, "studies", N,            "Y ..YYYY . . . ."),
    ("DELETE", f"/studies/{PID}/attachments/1025", {}, "studies", R,      "Y ...YYY . . . ."),
    ("POST", f"/studies/{PID}/reconstruct", {}, "studies", M,             "Y .....Y . . . ."),
    ("POST", f"/studies/{PID}/anonymize", {}, "studies", A,               "Y ...... . . . ."),  # body: where it writes
    # Moves into the study the resources its body names, which the request filter is never shown.
    ("POST", f"/studies/{PID}/merge", {}, "studies", A,                   "Y ...... . . . ."),
    ("DELETE", f"/studies/{PID}", {}, "studies", X,                       "Y .....Y . . . ."),
    # -- one series -------------------------------------------------------------------------------
    ("GET", f"/series/{PID}/shared-tags", {}, "series", V,                "Y YYYYYY . . . ."),
    ("GET", f"/series/{PID}/archive", {}, "series", D,                    "Y .YYYYY . . . ."),
    ("DELETE", f"/series/{PID}/labels/urgent", {}, "series", N,           "Y ..YYYY . . . ."),
    ("PUT", f"/series/{PID}/attachments/1025", {}, "series", R,           "Y ...YYY . . . ."),
    ("POST", f"/series/{PID}/modify", {}, "series", A,                    "Y ...... . . . ."),  # body: where it writes
    ("DELETE", f"/series/{PID}", {}, "series", X,                         "Y .....Y . . . ."),
    # -- one instance ------------------------------------------------------------------------------
    ("GET", f"/instances/{PID}/preview", {}, "instances", V,              "Y YYYYYY . . . ."),
    ("GET", f"/instances/{PID}/file", {}, "instances", D,                 "Y .YYYYY . . . ."),
    ("PUT", f"/instances/{PID}/metadata/1024", {}, "instances", N,        "Y ..YYYY . . . ."),
    ("PUT", f"/instances/{PID}/attachments/1025", {}, "instances", R,     "Y ...YYY . . . ."),
    ("POST", f"/instances/{PID}/modify", {}, "instances", A,              "Y ...... . . . ."),  # body: where it writes
    ("DELETE", f"/instances/{PID}", {}, "instances", X,                   "Y .....Y . . . ."),
    # Writes the file to a path of the caller's choosing on the server: not a study's business.
    ("POST", f"/instances/{PID}/export", {}, "instances", A,              "Y ...... . . . ."),
    # -- archives: `GET ?resources=` (1.12), the lowest level held over every resource it lists ------
    ("GET", "/tools/create-archive", {"resources": PID}, "tools_archive", D, "Y .YYYYY . . . ."),
    ("GET", "/tools/create-media", {"resources": PID}, "tools_archive", D, "Y .YYYYY . . . ."),
    # The POST forms and bulk tools name their resources in the body, which Orthanc's request filter
    # is never given: admins only, whatever the caller holds.
    ("POST", "/tools/create-archive", {}, "tools_archive", A,             "Y ...... . . . ."),
    ("POST", "/tools/create-media", {}, "tools_archive", A,               "Y ...... . . . ."),
    ("POST", "/tools/create-media-extended", {}, "tools_archive", A,      "Y ...... . . . ."),
    ("POST", "/tools/bulk-content", {}, "tools_bulk", A,                  "Y ...... . . . ."),
    ("POST", "/tools/bulk-modify", {}, "tools_bulk", A,                   "Y ...... . . . ."),
    ("POST", "/tools/bulk-anonymize", {}, "tools_bulk", A,                "Y ...... . . . ."),
    ("POST", "/tools/bulk-delete", {}, "tools_bulk", A,                   "Y ...... . . . ."),
    # -- WADO-URI, by the instance's real study --------------------------------------------------------
    ("GET", "/wado", {**WADO, "contentType": "image/jpeg"}, "wado", V,    "Y YYYYYY . . . ."),
    ("GET", "/wado", {**WADO, "contentType": "application/dicom"}, "wado", D, "Y .YYYYY . . . ."),
    ("POST", "/wado", WADO, "wado", M,                                    "Y .....Y . . . ."),
    # -- DICOMweb on one study -------------------------------------------------------------------------
    ("GET", f"{DW}/series", {}, "dicomweb", L,                            "Y YYYYYY . . . ."),
    ("GET", f"{DW}/metadata", {}, "dicomweb", V,                          "Y YYYYYY . . . ."),
    ("GET", DW, {}, "dicomweb", D,                                        "Y .YYYYY . . . ."),
    ("POST", DW, {}, "dicomweb", N,                                       "Y ..YYYY . . . ."),  # STOW into it
    ("PUT", DW, {}, "dicomweb", M,                                        "Y .....Y . . . ."),
    ("DELETE", DW, {}, "dicomweb", X,                                     "Y .....Y . . . ."),
    # A search naming its studies (or one patient): allowed on the grant the gate found on every one
    # of them (services/access.py works out which; a search naming nothing exactly holds nothing).
    ("GET", "/dicom-web/studies", {"StudyInstanceUID": UID}, "dicomweb_search", L, "Y YYYYYY . . . ."),
    ("GET", "/dicom-web/series", {"0020000D": UID}, "dicomweb_search", L, "Y YYYYYY . . . ."),
    ("GET", "/dicom-web/instances", {"PatientID": "PAT-1"}, "dicomweb_search", L, "Y YYYYYY . . . ."),
    ("POST", "/dicom-web/studies", {}, "dicomweb_admin", A,               "Y ...... . . . ."),  # STOW, no study
    ("GET", "/dicom-web/servers", {}, "dicomweb_admin", A,                "Y ...... . . . ."),
    # -- the Orthanc Web Viewer: a series or an image by Orthanc id, on its study's grant --------------
    ("GET", f"/web-viewer/series/{PID}", {}, "web_viewer", V,             "Y YYYYYY . . . ."),
    ("GET", f"/web-viewer/is-stable-series/{PID}", {}, "web_viewer", V,   "Y YYYYYY . . . ."),
    ("GET", f"/web-viewer/instances/jpeg95-{PID}_0", {}, "web_viewer", V, "Y YYYYYY . . . ."),
    ("GET", "/web-viewer/app/viewer.js", {}, "ui_asset", V,              "Y YYYYYY Y . . ."),
    ("GET", "/web-viewer/cache", {}, "web_viewer_admin", A,               "Y ...... . . . ."),
    ("GET", f"/web-viewer/instances/png-{PID}_0", {}, "malformed", A,    ". ...... . . . ."),
    # -- signed in, no patient data --------------------------------------------------------------------
    ("GET", "/system", {}, "system_info", V,                              "Y YYYYYY Y . . ."),
    ("GET", "/app/explorer.js", {}, "ui_asset", V,                        "Y YYYYYY Y . . ."),
    ("POST", "/app/explorer.js", {}, "ui_asset", M,                       "Y ...... . . . ."),
    ("GET", "/ohif/app.bundle.0f6159c501addfe9.js", {}, "ohif_asset", V,  "Y YYYYYY Y . . ."),
    ("PUT", "/ohif/app-config.js", {}, "ohif_asset", M,                   "Y ...... . . . ."),
    # -- always admin-only ------------------------------------------------------------------------------
    ("POST", "/system", {}, "system", A,                                  "Y ...... . . . ."),
    ("POST", "/tools/execute-script", {}, "tools_other", A,               "Y ...... . . . ."),
    ("GET", "/changes", {}, "changes", A,                                 "Y ...... . . . ."),
    ("GET", "/exports", {}, "exports", A,                                 "Y ...... . . . ."),
    ("GET", "/jobs", {}, "jobs", A,                                       "Y ...... . . . ."),
    ("GET", "/jobs/0f6d8e0e/archive", {}, "jobs", D,                      "Y ...... . . . ."),
    ("POST", "/modalities/pacs/store", {}, "modalities", A,               "Y ...... . . . ."),
    ("POST", "/peers/other/store", {}, "peers", A,                        "Y ...... . . . ."),
    ("GET", "/peers", {}, "peers", L,                                     "Y YYYYYY Y . . ."),  # none for them
    ("GET", "/modalities", {}, "modalities", L,                           "Y YYYYYY Y . . ."),
    ("POST", "/queries/abc/retrieve", {}, "queries", A,                   "Y ...... . . . ."),
    ("GET", "/plugins", {}, "plugins", A,                                 "Y ...... . . . ."),
    ("POST", "/storage-commitment/abc/remove", {}, "storage_commitment", A, "Y ...... . . . ."),
    ("GET", "/webdav/by-uids/x", {}, "webdav", D,                         "Y ...... . . . ."),
    ("PUT", "/webdav/uploads/new.dcm", {}, "webdav", M,                   "Y ...... . . . ."),
    ("DELETE", "/webdav/by-uids/x", {}, "webdav", X,                      "Y ...... . . . ."),
    ("GET", "/foo", {}, "unknown", A,                                     "Y ...... . . . ."),
    # -- the plugin's own routes: public, or authorised by their handlers --------------------------------
    ("GET", "/", {}, "root", P,                                           "Y YYYYYY Y Y Y Y"),
    ("GET", "/gate/login", {}, "gate_public", P,                          "Y YYYYYY Y Y Y Y"),
    ("GET", "/favicon.ico", {}, "favicon", P,                             "Y YYYYYY Y Y Y Y"),
    ("GET", "/gate/api/me", {}, "gate", A,                                "Y YYYYYY Y Y Y Y"),
    # The viewer's pages: the handler serves them to a signed-in user and sends anyone else to sign in.
    ("GET", "/ohif/viewer", {"StudyInstanceUIDs": UID}, "ohif_page", V,   "Y YYYYYY Y Y Y Y"),
    ("GET", "/share/tok", {}, "share", V,                                 "Y YYYYYY Y Y Y Y"),
    ("PUT", "/auth/tokens/x", {}, "share_tokens", Action.SHARE,           "Y YYYYYY Y Y Y Y"),
    ("GET", "/app/explorer.html", {}, "ui_page", V,                       "Y YYYYYY Y Y Y Y"),
    # Orthanc Explorer 2's app page and its configuration, built per caller (handlers/explorer2.py).
    ("GET", "/ui/app/filtered-studies", {}, "ui_page", V,                 "Y YYYYYY Y Y Y Y"),
    ("GET", "/ui/api/configuration", {}, "explorer2_config", V,           "Y YYYYYY Y Y Y Y"),
    # -- nobody -------------------------------------------------------------------------------------------
    ("GET", "/app/../patients", {}, "malformed", A,                       ". ...... . . . ."),
]


def _row_id(row: tuple) -> str:
    method, path, query, family, action, _expected = row
    return f"{method} {path.replace(PID, '{id}').replace(UID, '{uid}')} [{family}/{action.value}]"


def _cells() -> list:
    cells = []
    for row in TABLE:
        method, path, query, family, action, expected = row
        answers = expected.replace(" ", "")
        assert len(answers) == len(CALLERS), f"{_row_id(row)}: {len(answers)} answers for {len(CALLERS)} callers"
        for (name, principal, held), answer in zip(CALLERS, answers, strict=True):
            cells.append(pytest.param(method, path, query, family, action, principal, held, answer == "Y",
                                      id=f"{_row_id(row)} {name}"))
    return cells


@pytest.mark.parametrize(("method", "path", "query", "family", "action", "principal", "held", "allowed"),
                         _cells())
def test_route_coverage_table(method, path, query, family, action, principal, held, allowed):
    route = classify(method, path, query, {})
    assert (route.family, route.action) == (family, action)
    decision = decide(principal, route, held)
    assert decision.allowed is allowed, decision.reason


# -- the table's own honesty ---------------------------------------------------------------------------


def test_every_answer_is_y_or_dot():
    assert {c for *_, expected in TABLE for c in expected.replace(" ", "")} <= {"Y", "."}


def test_every_family_routes_can_return_has_a_row():
    assert {family for _m, _p, _q, family, _a, _e in TABLE} == _families_named_in_routes_module()


def test_every_family_and_action_of_the_route_table_has_a_row():
    in_route_table = {(family, action) for *_, family, action in ROUTES if family != "malformed"}
    here = {(family, action) for _m, _p, _q, family, action, _e in TABLE}
    assert in_route_table - here == set()


def test_every_action_a_grant_can_allow_is_in_the_table():
    assert {action for *_, action, _e in TABLE} >= set(Action) - {Action.SHARE}  # shares: the next issue


# -- reasons the audit records ----------------------------------------------------------------------------


def route(method: str, path: str, query: dict[str, str] | None = None):
    return classify(method, path, query or {}, {})


@pytest.mark.parametrize(("principal", "held", "method", "path", "reason"), [
    (ADMIN, None, "GET", f"/studies/{PID}", "admin"),
    (DOCTOR, None, "GET", f"/studies/{PID}", "no grant for this resource"),
    (DOCTOR, AccessLevel.VIEW_ONLY, "GET", f"/studies/{PID}", "grant view_only"),
    (DOCTOR, AccessLevel.VIEW_ONLY, "GET", f"/studies/{PID}/archive",
     "grant view_only does not allow download (needs download)"),
    (DOCTOR, AccessLevel.REPORT, "DELETE", f"/studies/{PID}", "grant report does not allow delete (needs full)"),
    (DOCTOR, AccessLevel.DOWNLOAD, "PUT", f"/studies/{PID}/labels/x", "grant download does not allow annotate "
                                                                      "(needs annotate)"),
    (DOCTOR, AccessLevel.FULL, "GET", "/changes", "admin only"),
    (DOCTOR, AccessLevel.FULL, "POST", "/tools/create-archive", "admin only"),
    (DOCTOR, AccessLevel.FULL, "POST", "/tools/create-media", "admin only"),
    (DOCTOR, AccessLevel.FULL, "POST", "/tools/bulk-delete", "admin only"),
    (DOCTOR, AccessLevel.FULL, "POST", f"/studies/{PID}/merge", "admin only"),
    (DOCTOR, AccessLevel.FULL, "POST", f"/instances/{PID}/export", "admin only"),
    (DOCTOR, AccessLevel.VIEW_ONLY, "GET", "/dicom-web/studies", "grant view_only"),
    (DOCTOR, None, "GET", "/dicom-web/studies", "no grant for this resource"),
    (DOCTOR, AccessLevel.FULL, "GET", "/foo", "unknown route"),
    (DOCTOR, None, "GET", "/patients", "answer trimmed to the caller's grants"),
    (DOCTOR, None, "GET", "/system", "signed in; no patient data"),
    (DOCTOR, None, "GET", "/app/explorer.js", "signed in; no patient data"),
    (DOCTOR, None, "GET", f"/web-viewer/series/{PID}", "no grant for this resource"),
    (DOCTOR, AccessLevel.FULL, "GET", "/web-viewer/cache", "admin only"),
    (DOCTOR, AccessLevel.FULL, "GET", f"/web-viewer/instances/jpeg95-{PID}_0/x",
     "malformed request: web viewer route with other than one id"),
    (ANONYMOUS, None, "GET", "/patients", "authentication required"),
    (ANONYMOUS, None, "GET", "/system", "authentication required"),
    (MUST_CHANGE, AccessLevel.FULL, "GET", f"/studies/{PID}", "password change required"),
    (MFA_PENDING, AccessLevel.FULL, "GET", f"/studies/{PID}", "second factor (one-time code) required"),
    (ANONYMOUS, None, "GET", "/gate/login", "public route"),
    (ANONYMOUS, None, "GET", "/gate/api/me", "plugin route, authorised by its handler"),
])
def test_the_reason_recorded(principal, held, method, path, reason):
    assert decide(principal, route(method, path), held).reason == reason


def test_a_grant_does_not_open_admin_only_routes_whatever_its_level():
    for method, path, _q, family, action, _e in TABLE:
        if action is Action.ADMIN and family not in ("gate", "malformed"):
            assert not decide(DOCTOR, route(method, path), AccessLevel.FULL).allowed, path


# -- roles carry no grants ---------------------------------------------------------------------------------

NON_ADMIN_ROLES = [r.value for r in Role if r is not Role.ADMIN]
# Trimmed routes are let through to their handler, which answers only what the caller holds.
GRANTED_ROWS = [row for row in TABLE if row[3] in GRANTED_FAMILIES and not classify(row[0], row[1], row[2], {}).trimmed]


def test_every_granted_family_has_rows():
    assert {row[3] for row in GRANTED_ROWS} == GRANTED_FAMILIES


@pytest.mark.parametrize("role", NON_ADMIN_ROLES)
@pytest.mark.parametrize("row", GRANTED_ROWS, ids=[_row_id(r) for r in GRANTED_ROWS])
def test_a_role_without_a_grant_opens_no_patient_data(role, row):
    method, path, query, _family, action, _e = row
    decision = decide(Principal(f"user-{role}", frozenset({role}), "session"), classify(method, path, query, {}))
    # Routes of a granted family that no grant opens say so before asking for a grant.
    assert not decision.allowed
    assert decision.reason == ("admin only" if action is A else "no grant for this resource")


@pytest.mark.parametrize("row", GRANTED_ROWS, ids=[_row_id(r) for r in GRANTED_ROWS])
def test_holding_every_non_admin_role_at_once_grants_nothing(row):
    method, path, query, *_ = row
    everyone = Principal("everyone", frozenset(NON_ADMIN_ROLES), "basic")
    assert not decide(everyone, classify(method, path, query, {})).allowed


# -- admins -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path,query,headers,family,_action", ROUTES, ids=[f"{r[0]} {r[1]!r}" for r in ROUTES])
def test_admin_is_allowed_every_route_of_the_route_table_but_malformed_ones(method, path, query, headers, family,
                                                                              _action):
    assert decide(ADMIN, classify(method, path, query, headers)).allowed == (family != "malformed")


def test_an_admin_who_must_change_password_is_refused_orthanc_routes_but_not_own_routes():
    admin = Principal("admin", frozenset({"admin"}), "session", must_change_password=True)
    assert not decide(admin, route("GET", "/patients")).allowed
    assert decide(admin, route("POST", "/gate/api/me")).allowed
    assert decide(admin, route("GET", "/gate/login")).allowed


def test_an_admin_owing_a_second_factor_is_refused_orthanc_routes():
    admin = Principal("root1", frozenset({"admin"}), "session", mfa_pending=True)
    assert not decide(admin, route("GET", f"/studies/{PID}")).allowed


# -- public, own and malformed routes --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/gate/health", "/gate/login", "/gate/static/gate.css"])
def test_public_routes_are_allowed_for_anonymous(path):
    decision = decide(ANONYMOUS, route("GET", path))
    assert decision.allowed and decision.reason == "public route"


@pytest.mark.parametrize("path", ["/gate/api/me", "/gate/api/grants", "/gate/anything", "/share/tok"])
@pytest.mark.parametrize("principal", [ANONYMOUS, DOCTOR, MUST_CHANGE, MFA_PENDING],
                         ids=["anonymous", "doctor", "must_change", "mfa_pending"])
def test_own_routes_are_left_to_their_handlers(principal, path):
    decision = decide(principal, route("GET", path))
    assert decision.allowed and "handler" in decision.reason


@pytest.mark.parametrize(("who", "held"), [(ANONYMOUS, None), (ADMIN, None), (DOCTOR, AccessLevel.FULL)],
                         ids=["anonymous", "admin", "doctor with full grant"])
@pytest.mark.parametrize("path", ["/gate/static/../../patients", "/app/./x", "/gate/login\n", f"/studies/{PID}/.."])
def test_malformed_is_denied_for_everyone_even_when_it_looks_public(who, held, path):
    decision = decide(who, route("GET", path), held)
    assert not decision.allowed and decision.reason.startswith("malformed request")
