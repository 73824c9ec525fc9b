"""The route table: what the gate thinks Orthanc (1.10/1.12, DICOMweb, WebDAV) will execute.

One row per (method, path, query, headers) -> (family, action, malformed). Add a row whenever a
route family is added; `test_every_family_has_a_row` fails until you do.
"""

from __future__ import annotations

import ast
import inspect
import re

import pytest

from plugin.handlers.routes import ROUTES as OWNED
from plugin.policies import routes
from plugin.policies.routes import MalformedRequest, classify, effective_method, normalise_path
from plugin.policies.types import Action

PID = "b9c08539-26f93bde-c81ab0d7-bffaf2cb-a4d0bdd0"  # an Orthanc id (SHA-1 in five groups)
STUDY_UID = "1.2.826.0.1.3680043.10.1192.1"
SERIES_UID = "1.2.826.0.1.3680043.10.1192.1.1"
SOP_UID = "1.2.826.0.1.3680043.10.1192.1.1.1"
DW_INSTANCE = f"/dicom-web/studies/{STUDY_UID}/series/{SERIES_UID}/instances/{SOP_UID}"
WADO = {"requestType": "WADO", "studyUID": STUDY_UID, "seriesUID": SERIES_UID, "objectUID": SOP_UID}

L, V, D, N, R, M, X, A, P = (Action.LIST, Action.VIEW, Action.DOWNLOAD, Action.ANNOTATE, Action.REPORT,
                             Action.MODIFY, Action.DELETE, Action.ADMIN, Action.PUBLIC)
BAD = "malformed"

# (method, path, query, headers, expected family, expected action)
ROUTES: list[tuple[str, str, dict[str, str], dict[str, str], str, Action]] = [
    # -- resource lists ------------------------------------------------------------------------
    ("GET", "/patients", {}, {}, "resource_list", L),
    ("GET", "/studies", {"expand": ""}, {}, "resource_list", L),
    ("GET", "/series", {}, {}, "resource_list", L),
    ("GET", "/instances", {}, {}, "resource_list", A),  # the core keeps /instances (uploads): untrimmable
    ("POST", "/instances", {}, {}, "resource_list", M),  # upload
    ("DELETE", "/patients", {}, {}, "resource_list", X),
    # -- one resource and its sub-routes -------------------------------------------------------
    ("GET", f"/patients/{PID}", {}, {}, "patients", V),
    ("GET", f"/studies/{PID}", {}, {}, "studies", V),
    ("GET", f"/series/{PID}", {}, {}, "series", V),
    ("GET", f"/instances/{PID}", {}, {}, "instances", V),
    ("GET", f"/studies/{PID}/series", {}, {}, "studies", V),
    ("GET", f"/instances/{PID}/file", {}, {}, "instances", D),
    ("HEAD", f"/instances/{PID}/file", {}, {}, "instances", D),
    ("GET", f"/studies/{PID}/archive", {}, {}, "studies", D),
    ("POST", f"/studies/{PID}/archive", {}, {}, "studies", D),  # asynchronous archive job
    ("GET", f"/patients/{PID}/media", {}, {}, "patients", D),
    ("POST", f"/series/{PID}/media", {}, {}, "series", D),
    ("GET", f"/instances/{PID}/preview", {}, {}, "instances", V),
    ("GET", f"/instances/{PID}/rendered", {"quality": "90"}, {}, "instances", V),
    ("GET", f"/instances/{PID}/image-uint8", {}, {}, "instances", V),
    ("GET", f"/instances/{PID}/frames/1/raw", {}, {}, "instances", V),
    ("GET", f"/instances/{PID}/tags", {"simplify": ""}, {}, "instances", V),
    ("GET", f"/instances/{PID}/simplified-tags", {}, {}, "instances", V),
    ("GET", f"/instances/{PID}/content/0010-0010", {}, {}, "instances", V),
    ("GET", f"/instances/{PID}/metadata", {}, {}, "instances", V),
    ("GET", f"/instances/{PID}/metadata/ReceptionDate", {}, {}, "instances", V),
    ("PUT", f"/instances/{PID}/metadata/1024", {}, {}, "instances", N),  # annotations live in metadata
    ("DELETE", f"/instances/{PID}/metadata/1024", {}, {}, "instances", N),
    ("PUT", f"/studies/{PID}/metadata/1024", {}, {}, "studies", N),
    ("PUT", f"/studies/{PID}/metadata", {}, {}, "studies", M),  # no name: not an annotation
    ("POST", f"/studies/{PID}/metadata/1024", {}, {}, "studies", M),
    ("GET", f"/instances/{PID}/attachments", {"full": ""}, {}, "instances", V),  # names and numbers only
    ("GET", f"/studies/{PID}/attachments/1025", {}, {}, "studies", D),
    ("GET", f"/instances/{PID}/attachments/dicom/data", {}, {}, "instances", D),
    ("PUT", f"/instances/{PID}/attachments/1025", {}, {}, "instances", R),  # a report attached
    ("DELETE", f"/instances/{PID}/attachments/1025", {}, {}, "instances", R),
    ("POST", f"/studies/{PID}/attachments/1025/compress", {}, {}, "studies", R),
    ("PUT", f"/studies/{PID}/attachments", {}, {}, "studies", M),  # no name: not a report
    ("DELETE", f"/instances/{PID}/file", {}, {}, "instances", X),
    ("GET", f"/studies/{PID}/statistics", {}, {}, "studies", V),
    ("GET", f"/studies/{PID}/module", {}, {}, "studies", V),
    ("GET", f"/series/{PID}/shared-tags", {}, {}, "series", V),
    ("GET", f"/studies/{PID}/instances-tags", {}, {}, "studies", V),
    ("POST", f"/studies/{PID}/anonymize", {}, {}, "studies", A),  # where it writes is in the body
    ("POST", f"/patients/{PID}/modify", {}, {}, "patients", A),
    ("POST", f"/studies/{PID}/merge", {}, {}, "studies", A),  # moves in resources its body names
    ("POST", f"/studies/{PID}/split", {}, {}, "studies", A),
    ("POST", f"/instances/{PID}/export", {}, {}, "instances", A),  # writes a file on the server
    ("GET", f"/instances/{PID}/export", {"_method": "POST"}, {}, "instances", A),
    ("POST", f"/studies/{PID}/reconstruct", {}, {}, "studies", M),
    ("GET", f"/studies/{PID}/labels", {}, {}, "studies", V),
    ("PUT", f"/studies/{PID}/labels/urgent", {}, {}, "studies", N),
    ("DELETE", f"/studies/{PID}/labels/urgent", {}, {}, "studies", N),
    ("POST", f"/studies/{PID}/labels/urgent", {}, {}, "studies", M),
    ("GET", f"/series/{PID}/numpy", {}, {}, "series", V),
    ("PUT", f"/patients/{PID}/protected", {}, {}, "patients", M),
    ("DELETE", f"/patients/{PID}", {}, {}, "patients", X),
    ("DELETE", f"/studies/{PID}", {}, {}, "studies", X),
    ("DELETE", f"/series/{PID}", {}, {}, "series", X),
    ("DELETE", f"/instances/{PID}", {}, {}, "instances", X),
    # -- /tools ---------------------------------------------------------------------------------
    ("POST", "/tools/find", {}, {}, "tools_find", L),
    ("POST", "/tools/count-resources", {}, {}, "tools_find", L),
    ("POST", "/tools/lookup", {}, {}, "tools_lookup", L),
    ("POST", "/tools/find/extra", {}, {}, "tools_find", L),  # not the route the plugin answers
    # Resources in the body, which the request filter is never given: admins only.
    ("POST", "/tools/create-archive", {}, {}, "tools_archive", A),
    ("POST", "/tools/create-media", {}, {}, "tools_archive", A),
    ("POST", "/tools/create-media-extended", {}, {}, "tools_archive", A),
    ("POST", "/Tools/Create-Archive", {}, {}, "tools_archive", A),
    ("GET", "/tools/create-archive", {"resources": PID, "_method": "POST"}, {}, "tools_archive", A),
    ("HEAD", "/tools/create-archive", {"resources": PID}, {}, "tools_archive", A),
    ("PUT", "/tools/create-archive", {}, {}, "tools_archive", A),
    ("POST", "/tools/bulk-content", {}, {}, "tools_bulk", A),
    ("POST", "/tools/bulk-modify", {}, {}, "tools_bulk", A),
    ("POST", "/tools/bulk-anonymize", {}, {}, "tools_bulk", A),
    ("POST", "/tools/bulk-delete", {}, {}, "tools_bulk", A),
    ("POST", "/tools/bulk-delete", {}, {"x-http-method-override": "POST"}, "tools_bulk", A),
    # The GET form (1.12) lists them in the query: decided by the grants held on each.
    ("GET", "/tools/create-archive", {"resources": PID}, {}, "tools_archive", D),
    ("GET", "/tools/create-media", {"resources": PID}, {}, "tools_archive", D),
    ("GET", "/tools/create-media-extended", {"resources": PID}, {}, "tools_archive", D),
    ("POST", "/tools/execute-script", {}, {}, "tools_other", A),
    ("POST", "/tools/reset", {}, {}, "tools_other", A),
    ("POST", "/tools/shutdown", {}, {}, "tools_other", A),
    ("GET", "/tools/labels", {}, {}, "tools_labels", L),  # answered by the plugin: none for non-admins
    ("GET", "/tools/now", {}, {}, "tools_other", A),
    ("GET", "/tools", {}, {}, "tools_other", A),
    # -- administration -------------------------------------------------------------------------
    ("GET", "/changes", {"since": "0"}, {}, "changes", A),
    ("DELETE", "/changes", {}, {}, "changes", A),
    ("GET", "/exports", {}, {}, "exports", A),
    ("GET", "/jobs", {}, {}, "jobs", A),
    ("GET", "/jobs/0f6d8e0e-ff0d-4b6b-9b8c-4a0e1d7d9f6a", {}, {}, "jobs", A),
    ("POST", "/jobs/0f6d8e0e-ff0d-4b6b-9b8c-4a0e1d7d9f6a/cancel", {}, {}, "jobs", A),
    ("GET", "/jobs/0f6d8e0e-ff0d-4b6b-9b8c-4a0e1d7d9f6a/archive", {}, {}, "jobs", D),
    ("GET", "/modalities", {}, {}, "modalities", L),  # the plugin answers: none for non-admins
    ("GET", "/Modalities", {}, {}, "modalities", A),
    ("GET", "/modalities/x", {}, {}, "modalities", A),
    ("POST", "/modalities/pacs/query", {}, {}, "modalities", A),
    ("POST", "/modalities/pacs/store", {}, {}, "modalities", A),
    ("GET", "/peers", {}, {}, "peers", L),
    ("PUT", "/peers", {}, {}, "peers", A),
    ("POST", "/peers/other/store", {}, {}, "peers", A),
    ("GET", "/queries/abc/answers/0/content", {}, {}, "queries", A),
    ("POST", "/queries/abc/retrieve", {}, {}, "queries", A),
    ("GET", "/plugins", {}, {}, "plugins", A),
    ("GET", "/plugins/dicom-web", {}, {}, "plugins", A),
    ("POST", "/plugins/explorer.js", {}, {}, "plugins", A),
    ("GET", "/system", {}, {}, "system_info", V),  # name and version: Orthanc Explorer asks first
    ("GET", "/SYSTEM", {}, {}, "system_info", V),
    ("POST", "/system", {}, {}, "system", A),
    ("HEAD", "/system", {}, {}, "system", A),
    ("GET", "/system/x", {}, {}, "system", A),
    ("GET", "/statistics", {}, {}, "statistics", L),  # the caller's own counts, trimmed
    ("POST", "/statistics", {}, {}, "statistics", A),
    ("GET", "/statistics/x", {}, {}, "statistics", A),
    ("POST", "/storage-commitment/abc/remove", {}, {}, "storage_commitment", A),
    # -- Orthanc Explorer (1 and 2) static files -------------------------------------------------
    # Their HTML entry pages are the plugin's own (a browser without a session is sent to sign in).
    ("GET", "/app/explorer.html", {}, {}, "ui_page", V),
    ("POST", "/app/explorer.html", {}, {}, "ui_page", V),  # the handler answers 405
    ("GET", "/app/other.html", {"x": "1"}, {}, "ui_page", V),
    ("GET", "/web-viewer/app/viewer.html", {"series": PID}, {}, "ui_page", V),
    ("GET", "/app/explorer.HTML", {}, {}, "ui_asset", V),  # not the plugin's route: case counts
    ("GET", "/APP/explorer.html", {}, {}, "ui_asset", V),
    ("GET", "/app/.html", {}, {}, "ui_asset", V),
    ("GET", "/app/libs/x.html", {}, {}, "ui_asset", V),
    ("GET", "//app/explorer.html", {}, {}, "ui_asset", V),  # as sent, not the route Orthanc gives the Gate
    ("GET", "/app/explorer.html/", {}, {}, "ui_asset", V),
    ("POST", "/app//explorer.html", {}, {}, "ui_asset", M),
    ("GET", "/app/libs/jquery.min.js", {}, {}, "ui_asset", V),
    ("POST", "/app/explorer.js", {}, {}, "ui_asset", M),
    # Orthanc Explorer 2: the app's page (any route of the app) is the plugin's, its files OE2's.
    ("GET", "/ui/app/", {}, {}, "ui_page", V),
    ("GET", "/ui/app", {}, {}, "ui_page", V),
    ("GET", "/ui/app/index.html", {}, {}, "ui_page", V),
    ("GET", "/ui/app/filtered-studies", {}, {}, "ui_page", V),
    ("GET", "/ui/app/assets", {}, {}, "ui_page", V),  # the plugin's route takes it: not a file
    ("GET", "/ui/app/assets/", {}, {}, "ui_asset", V),  # ... but with the slash, OE2's does
    ("GET", "/ui/app/assets/main-B4uRKbgy.js", {}, {}, "ui_asset", V),
    ("GET", "/ui/app/customizable/custom.css", {}, {}, "ui_asset", V),
    ("GET", "/ui/app/favicon.ico", {}, {}, "ui_asset", V),
    ("GET", "/ui/app/token-landing.html", {}, {}, "ui_asset", V),
    ("GET", "/ui/app/inbox.html", {}, {}, "ui_asset", V),
    ("GET", "//ui/app/", {}, {}, "ui_asset", V),  # not the spelling the plugin's route takes
    ("GET", "/UI/app/", {}, {}, "ui_asset", V),
    ("POST", "/ui/app/filtered-studies", {}, {}, "ui_page", V),  # the plugin's route answers 405
    ("GET", "/plugins/explorer.js", {}, {}, "ui_asset", V),  # the plugins' additions to Explorer
    ("GET", "/Plugins/Explorer.js", {}, {}, "ui_asset", V),
    # -- the OHIF Viewer the plugin serves: pages (the app's routes) and files --------------------
    ("GET", "/ohif", {}, {}, "ohif_page", V),
    ("GET", "/ohif/", {}, {}, "ohif_page", V),
    ("GET", "/ohif/viewer", {"StudyInstanceUIDs": STUDY_UID}, {}, "ohif_page", V),
    ("GET", "/ohif/index.html", {}, {}, "ohif_page", V),
    ("GET", "/ohif/app-config.js", {}, {}, "ohif_asset", V),
    ("GET", "/ohif/assets/favicon.ico", {}, {}, "ohif_asset", V),
    ("GET", "/OHIF/app.bundle.css", {}, {}, "unknown", A),  # Orthanc's route is /ohif, case and all
    ("GET", "/Ohif/patients", {}, {}, "unknown", A),
    ("PUT", "/ohif/app-config.js", {}, {}, "ohif_asset", M),
    ("POST", "/ohif/viewer", {}, {}, "ohif_asset", M),  # only reads are the app's pages
    ("GET", "/ui", {}, {}, "unknown", A),
    ("GET", "/ui/api/configuration", {}, {}, "explorer2_config", V),  # built per caller by the plugin
    ("GET", "/ui/api/pre-login-configuration", {}, {}, "explorer2_config", V),
    ("GET", "/ui/api/Configuration", {}, {}, "unknown", A),
    ("POST", "/ui/api/emails/send", {}, {}, "unknown", A),
    # -- the Orthanc Web Viewer (orthanc-webviewer): series and images by Orthanc id ------------------
    ("GET", f"/web-viewer/series/{PID}", {}, {}, "web_viewer", V),
    ("GET", f"/web-viewer/is-stable-series/{PID}", {}, {}, "web_viewer", V),
    ("GET", f"/web-viewer/instances/jpeg95-{PID}_0", {}, {}, "web_viewer", V),
    ("GET", f"/web-viewer/instances/deflate-{PID}_12", {}, {}, "web_viewer", V),
    ("GET", f"/web-viewer//instances/jpeg100-{PID}_3/", {}, {}, "web_viewer", V),
    ("GET", f"/web-viewer/instances/png-{PID}_0", {}, {}, BAD, A),  # the plugin decodes no png
    ("GET", f"/web-viewer/instances/jpeg-{PID}_0", {}, {}, BAD, A),
    ("GET", f"/web-viewer/instances/jpeg95-{PID}", {}, {}, BAD, A),  # no frame
    ("GET", f"/web-viewer/instances/jpeg95-{PID}_0_1", {}, {}, BAD, A),
    ("GET", f"/web-viewer/instances/jpeg95-{PID.upper()}_0", {}, {}, BAD, A),
    ("GET", f"/web-viewer/instances/jpeg95-{PID}_x", {}, {}, BAD, A),
    ("GET", f"/web-viewer/instances/jpeg95_{PID}-0", {}, {}, BAD, A),
    ("GET", f"/web-viewer/instances/jpeg95-{PID}_0/x", {}, {}, BAD, A),  # the plugin's (.*) takes slashes
    ("GET", f"/web-viewer/series/{PID}/study", {}, {}, BAD, A),
    ("GET", "/web-viewer/series", {}, {}, BAD, A),
    ("GET", "/web-viewer/instances", {}, {}, BAD, A),
    ("POST", f"/web-viewer/series/{PID}", {}, {}, "web_viewer_admin", A),
    ("GET", f"/web-viewer/series/{PID}", {"_method": "DELETE"}, {}, "web_viewer_admin", A),
    ("GET", "/web-viewer/app/viewer.js", {}, {}, "ui_asset", V),
    ("GET", "/web-viewer/libs/cornerstone.min.js", {}, {}, "ui_asset", V),
    ("POST", "/web-viewer/app/viewer.css", {}, {}, "ui_asset", M),
    ("GET", "/web-viewer/app", {}, {}, "web_viewer_admin", A),
    ("GET", "/web-viewer/cache", {}, {}, "web_viewer_admin", A),
    ("GET", "/web-viewer", {}, {}, "web_viewer_admin", A),
    ("GET", f"/Web-Viewer/series/{PID}", {}, {}, "web_viewer_admin", A),  # not the plugin's (case-sensitive)
    # -- WADO-URI -----------------------------------------------------------------------------------
    ("GET", "/wado", {**WADO, "contentType": "image/jpeg"}, {}, "wado", V),
    ("GET", "/wado", {**WADO, "contentType": "image%2Fpng"}, {}, "wado", D),  # as sent: not an image type
    ("GET", "/wado", {**WADO, "contentType": "application/dicom"}, {}, "wado", D),
    ("GET", "/wado", WADO, {}, "wado", D),
    ("POST", "/wado", WADO, {}, "wado", M),
    ("GET", "/wado/extra", WADO, {}, "unknown", A),
    # -- DICOMweb -----------------------------------------------------------------------------------
    ("GET", "/dicom-web/studies", {"PatientID": "123"}, {}, "dicomweb_search", L),
    ("GET", "/dicom-web/studies", {"StudyInstanceUID": STUDY_UID}, {}, "dicomweb_search", L),
    ("GET", "/dicom-web/studies/", {}, {}, "dicomweb_search", L),
    ("POST", "/dicom-web/studies", {}, {}, "dicomweb_admin", A),  # STOW-RS into no study
    ("POST", f"/dicom-web/studies/{STUDY_UID}", {}, {}, "dicomweb", N),  # STOW-RS into one study
    ("PUT", f"/dicom-web/studies/{STUDY_UID}", {}, {}, "dicomweb", M),
    ("POST", f"/dicom-web/studies/{STUDY_UID}/series", {}, {}, "dicomweb", M),
    ("GET", f"/dicom-web/studies/{STUDY_UID}", {}, {}, "dicomweb", D),
    ("DELETE", f"/dicom-web/studies/{STUDY_UID}", {}, {}, "dicomweb", X),
    ("GET", f"/dicom-web/studies/{STUDY_UID}/series", {}, {}, "dicomweb", L),
    ("GET", f"/dicom-web/studies/{STUDY_UID}/series/{SERIES_UID}", {}, {}, "dicomweb", D),
    ("GET", f"/dicom-web/studies/{STUDY_UID}/series/{SERIES_UID}/instances", {}, {}, "dicomweb", L),
    ("GET", DW_INSTANCE, {}, {}, "dicomweb", D),
    ("GET", f"{DW_INSTANCE}/frames/1", {}, {}, "dicomweb", V),
    ("GET", f"{DW_INSTANCE}/metadata", {}, {}, "dicomweb", V),
    ("GET", f"{DW_INSTANCE}/rendered", {}, {}, "dicomweb", V),
    ("GET", f"{DW_INSTANCE}/bulk/7fe00010", {}, {}, "dicomweb", V),
    ("GET", f"/dicom-web/studies/{STUDY_UID}/metadata", {}, {}, "dicomweb", V),
    ("GET", f"/dicom-web/studies/{STUDY_UID}/thumbnail", {}, {}, "dicomweb", V),
    ("GET", "/dicom-web/series", {}, {}, "dicomweb_search", L),
    ("GET", "/dicom-web/instances", {"00100020": "123"}, {}, "dicomweb_search", L),
    ("POST", "/dicom-web/series", {}, {}, "dicomweb_admin", A),
    ("GET", f"/dicom-web/series/{SERIES_UID}", {}, {}, "dicomweb_admin", A),
    ("POST", "/dicom-web/servers/x/retrieve", {}, {}, "dicomweb_admin", A),
    ("GET", "/dicom-web/servers", {}, {}, "dicomweb_admin", A),
    ("GET", "/dicom-web/info", {}, {}, "dicomweb_admin", A),
    ("GET", "/dicom-web", {}, {}, "dicomweb_admin", A),
    # -- WebDAV ---------------------------------------------------------------------------------------
    ("PROPFIND", "/webdav/", {}, {}, "webdav", D),
    ("GET", "/webdav/by-patients/x/y/z/file.dcm", {}, {}, "webdav", D),
    ("PUT", "/webdav/uploads/new.dcm", {}, {}, "webdav", M),
    ("MKCOL", "/webdav/uploads/folder", {}, {}, "webdav", M),
    ("DELETE", "/webdav/by-uids/x", {}, {}, "webdav", X),
    # -- the plugin's own routes ----------------------------------------------------------------------
    ("GET", "/gate/health", {}, {}, "gate_public", P),
    ("GET", "/gate/login", {"next": "/app/explorer.html"}, {}, "gate_public", P),
    ("POST", "/gate/login", {}, {}, "gate_public", P),
    ("GET", "/gate/logout", {}, {}, "gate_public", P),  # "you are signed out", or the sign-out button
    # -- Orthanc's icon, which browsers ask for on every page ---------------------------------------
    ("GET", "/favicon.ico", {}, {}, "favicon", P),
    ("GET", "/app/images/favicon.ico", {}, {}, "favicon", P),
    ("POST", "/favicon.ico", {}, {}, "ui_asset", M),
    ("GET", "/favicon.ico/x", {}, {}, "ui_asset", V),
    ("GET", "/gate/static/gate.css", {}, {}, "gate_public", P),
    ("GET", "/gate/static", {}, {}, "gate", A),
    ("GET", "/gate/api/me", {}, {}, "gate", A),
    ("GET", "/gate/api/users", {}, {}, "gate", A),
    ("POST", "/gate/api/users/import", {}, {}, "gate", A),
    ("PUT", "/gate/api/users/drnkosi", {}, {}, "gate", A),
    ("DELETE", "/gate/api/users/drnkosi/sessions", {}, {}, "gate", A),
    ("DELETE", "/gate/api/users/drnkosi", {}, {}, "gate", A),
    ("POST", "/gate/api/api-keys", {}, {}, "gate", A),
    ("DELETE", "/gate/api/api-keys/7", {}, {}, "gate", A),
    ("POST", "/gate/logout", {}, {}, "gate_public", P),
    ("GET", "/gate/anything", {}, {}, "gate", A),
    # The welcome e-mail's set-password link: its page and its form, for anyone holding the token.
    ("GET", "/gate/set-password/Xq3_-9TkLm0aBcDeFgHiJkLmNoPqRsTuVwXyZ012345", {}, {}, "gate_public", P),
    ("POST", "/gate/set-password/Xq3_-9TkLm0aBcDeFgHiJkLmNoPqRsTuVwXyZ012345", {}, {}, "gate_public", P),
    ("GET", "/gate//set-password//tok/", {}, {}, "gate_public", P),
    ("PUT", "/gate/set-password/tok", {}, {}, "gate", A),
    ("DELETE", "/gate/set-password/tok", {}, {}, "gate", A),
    ("HEAD", "/gate/set-password/tok", {}, {}, "gate", A),
    ("GET", "/gate/set-password/tok", {"_method": "DELETE"}, {}, "gate", A),
    ("POST", "/gate/set-password/tok", {}, {"x-http-method-override": "PUT"}, "gate", A),
    ("GET", "/gate/set-password", {}, {}, "gate", A),
    ("POST", "/gate/set-password", {}, {}, "gate", A),
    ("GET", "/gate/set-password/tok/extra", {}, {}, "gate", A),
    ("GET", "/gate/Set-Password/tok", {}, {}, "gate", A),
    ("GET", "/gate/api/set-password/tok", {}, {}, "gate", A),
    ("GET", "/Gate/set-password/tok", {}, {}, "unknown", A),
    # The doctor dashboard and its reports: signed-in callers, decided by their handlers.
    ("GET", "/gate/doctor", {}, {}, "gate", A),
    ("GET", f"/gate/doctor/studies/{PID}/report", {}, {}, "gate", A),
    ("GET", "/share/tok", {}, {}, "share", V),
    # Orthanc Explorer 2's Share button, answered with our share links (handlers/shares.py).
    ("PUT", "/auth/tokens/stone-viewer-publication", {}, {}, "share_tokens", Action.SHARE),
    ("PUT", "/auth/user/profile", {}, {}, "unknown", A),
    ("GET", "/", {}, {}, "root", P),
    # -- unknown --------------------------------------------------------------------------------------
    ("GET", "/foo", {}, {}, "unknown", A),
    ("GET", "/Gate/health", {}, {}, "unknown", A),
    ("GET", "/GATE/login", {}, {}, "unknown", A),
    ("GET", "/Share/tok", {}, {}, "unknown", A),
    ("GET", "/stone-webviewer/index.html", {}, {}, "unknown", A),
    ("GET", "/%2e%2e/patients", {}, {}, "unknown", A),  # a literal "%2e%2e", as Orthanc's router sees it
    # -- tricks: slashes and case ---------------------------------------------------------------------
    ("GET", "/patients/", {}, {}, "resource_list", L),
    ("GET", "//patients", {}, {}, "resource_list", L),
    ("GET", f"/patients//{PID}///file/", {}, {}, "patients", D),
    ("GET", "/PATIENTS", {}, {}, "resource_list", L),
    ("GET", f"/Studies/{PID}/ARCHIVE", {}, {}, "studies", D),
    ("POST", "/TOOLS/FIND", {}, {}, "tools_find", L),
    ("GET", "/Changes", {}, {}, "changes", A),
    ("GET", "/DICOM-WEB/studies", {}, {}, "dicomweb_search", L),
    ("GET", "/WADO", {**WADO, "contentType": "image/jpeg"}, {}, "wado", V),
    ("GET", "/gate/health/", {}, {}, "gate_public", P),
    ("GET", "/gate//login", {}, {}, "gate_public", P),
    ("GET", "/gate/health?x=1", {}, {}, "gate_public", P),
    ("GET", f"/patients\\{PID}", {}, {}, "patients", V),
    # -- tricks: method overrides ---------------------------------------------------------------------
    ("GET", f"/patients/{PID}", {"_method": "DELETE"}, {}, "patients", X),
    ("GET", f"/patients/{PID}", {"_method": "delete"}, {}, "patients", X),
    ("GET", f"/patients/{PID}", {}, {"x-http-method-override": "DELETE"}, "patients", X),
    ("POST", f"/patients/{PID}", {}, {"x-http-method-override": " delete "}, "patients", X),
    ("GET", f"/patients/{PID}", {"_method": "DELETE"}, {"x-http-method-override": "DELETE"}, "patients", X),
    ("GET", f"/instances/{PID}/file", {"_method": "DELETE"}, {}, "instances", X),
    ("GET", f"/studies/{PID}/labels/x", {"_method": "PUT"}, {}, "studies", N),
    ("GET", f"/instances/{PID}/attachments/1025", {"_method": "DELETE"}, {}, "instances", R),
    ("GET", "/patients", {"_method": "DELETE"}, {}, "resource_list", X),
    ("GET", "/dicom-web/studies", {"_method": "POST"}, {}, "dicomweb_admin", A),
    ("POST", f"/patients/{PID}/modify", {"_method": "GET"}, {}, "patients", M),
    ("GET", f"/patients/{PID}", {"_method": ""}, {}, "patients", V),
    ("GET", f"/patients/{PID}", {"_method": "DELETE"}, {"x-http-method-override": "PUT"}, BAD, A),
    ("GET", f"/patients/{PID}", {"_method": "TRACE"}, {}, BAD, A),
    ("GET", f"/patients/{PID}", {}, {"x-http-method-override": "BREW"}, BAD, A),
    ("BREW", "/patients", {}, {}, BAD, A),
    # -- tricks: dot segments, control characters, backslashes ----------------------------------------
    ("GET", "/app/../patients", {}, {}, BAD, A),
    ("GET", "/app/./x", {}, {}, BAD, A),
    ("GET", f"/patients/{PID}/..", {}, {}, BAD, A),
    ("GET", "/gate/static/../../patients", {}, {}, BAD, A),
    ("GET", "/app\\..\\patients", {}, {}, BAD, A),
    ("GET", "/patients\x00/x", {}, {}, BAD, A),
    ("GET", "/patients\n", {}, {}, BAD, A),
    ("GET", "/gate/login\r\nX-Injected: 1", {}, {}, BAD, A),
    ("GET", "/pat\x7fients", {}, {}, BAD, A),
    ("GET", "/gate/health\t", {}, {}, BAD, A),
]

EXPECTED_FAMILIES = {
    "resource_list", "patients", "studies", "series", "instances",
    "tools_find", "tools_lookup", "tools_archive", "tools_bulk", "tools_other", "tools_labels", "explorer2_config",
    "changes", "exports", "jobs", "modalities", "peers", "queries", "plugins", "system", "statistics",
    "storage_commitment", "system_info",
    "ui_asset", "ui_page", "ohif_page", "ohif_asset", "wado", "dicomweb", "dicomweb_search", "dicomweb_admin",
    "webdav", "web_viewer", "web_viewer_admin", "favicon",
    "gate_public", "gate", "share", "share_tokens", "root", "unknown", "malformed",
}


def _row_id(row: tuple) -> str:
    method, path, query, headers, _family, _action = row
    extra = "&".join(f"{k}={v}" for k, v in query.items())
    over = headers.get("x-http-method-override")
    label = f"{method} {path!r}" + (f"?{extra}" if extra else "") + (f" [override {over!r}]" if over else "")
    return label


@pytest.mark.parametrize(("method", "path", "query", "headers", "family", "action"), ROUTES,
                         ids=[_row_id(r) for r in ROUTES])
def test_route_table(method, path, query, headers, family, action):
    route = classify(method, path, query, headers)
    assert (route.family, route.action) == (family, action)
    assert bool(route.malformed) == (family == BAD)


def _families_named_in_routes_module() -> set[str]:
    """Every family routes.py can return: RouteInfo("literal", ...), ("family", Action.X) pairs, tables."""
    tree = ast.parse(inspect.getsource(routes))
    named: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "RouteInfo":
            family = node.args[0] if node.args else next(k.value for k in node.keywords if k.arg == "family")
            # RouteInfo("a" if ... else "b", ...) can return either.
            choices = [family.body, family.orelse] if isinstance(family, ast.IfExp) else [family]
            named |= {c.value for c in choices if isinstance(c, ast.Constant)}
        # ("family", Action.X) pairs: the /tools table and its default.
        if isinstance(node, ast.Tuple) and len(node.elts) == 2 and isinstance(node.elts[0], ast.Constant) \
                and getattr(node.elts[1], "value", None) is not None \
                and getattr(node.elts[1].value, "id", None) == "Action":
            named.add(node.elts[0].value)
    named |= {name.replace("-", "_") for name in routes.ADMIN_FAMILIES}
    named |= set(routes.LEVELS)  # /{level}/{id} routes are named after their level's folder
    return named


def test_every_family_has_a_row():
    in_table = {family for *_, family, _action in ROUTES}
    assert in_table == EXPECTED_FAMILIES


def test_every_family_the_module_can_return_is_expected():
    named = _families_named_in_routes_module()
    assert "unknown" in named and "malformed" in named  # the reader of the module still works
    assert named == EXPECTED_FAMILIES


# -- what else a classification carries ------------------------------------------------------------


def test_resource_route_names_level_and_orthanc_id():
    route = classify("GET", f"/Studies/{PID}/archive", {}, {})
    assert (route.level, route.resource_id, route.path) == ("study", PID, f"/Studies/{PID}/archive")


def test_resource_list_names_level_without_id():
    route = classify("GET", "/series/", {}, {})
    assert (route.level, route.resource_id) == ("series", None)


def test_wado_names_instance_and_study_uids_as_sent():
    # Orthanc gives query values to the filter and to the WADO plugin alike, not decoded.
    route = classify("GET", "/wado", {**WADO, "objectUID": "1.2%2E3", "studyUID": "9.8"}, {})
    assert (route.level, route.resource_id, route.study_uid) == ("instance", "1.2%2E3", "9.8")


def test_dicomweb_names_the_study_uid():
    route = classify("GET", f"{DW_INSTANCE}/frames/1", {}, {})
    assert (route.level, route.study_uid, route.resource_id) == ("study", STUDY_UID, STUDY_UID)


def test_dicomweb_stow_names_no_study():
    assert classify("POST", "/dicom-web/studies", {}, {}).study_uid is None


def test_dicomweb_stow_into_a_study_names_it():
    route = classify("POST", f"/dicom-web/studies/{STUDY_UID}", {}, {})
    assert (route.level, route.study_uid) == ("study", STUDY_UID)


# -- trimmed routes: answered by the plugin, trimmed to the caller's grants ------------------------

# (method, path) of every row in ROUTES whose answer the plugin trims; no other row may be trimmed.
TRIMMED = {
    ("GET", "/patients"), ("GET", "/studies"), ("GET", "/series"),
    ("GET", "/patients/"), ("GET", "//patients"), ("GET", "/PATIENTS"),
    ("POST", "/tools/find"), ("POST", "/tools/count-resources"), ("POST", "/tools/lookup"), ("POST", "/TOOLS/FIND"),
    ("GET", "/statistics"), ("GET", "/tools/labels"), ("GET", "/peers"), ("GET", "/modalities"),
    ("GET", f"/patients/{PID}"),  # Orthanc Explorer's study page; other spellings need the patient's grant
}


def test_every_trimmed_route_is_in_the_table():
    assert TRIMMED <= {(method, path) for method, path, *_ in ROUTES}


@pytest.mark.parametrize(("method", "path", "query", "headers", "family", "action"), ROUTES,
                         ids=[_row_id(r) for r in ROUTES])
def test_only_the_routes_the_plugin_answers_are_trimmed(method, path, query, headers, family, action):
    try:
        executed = effective_method(method, query, headers)
    except MalformedRequest:
        executed = "malformed"
    trimmed = (method, path) in TRIMMED and executed == method
    assert classify(method, path, query, headers).trimmed is trimmed


@pytest.mark.parametrize(("method", "path", "query"), [
    ("GET", "/patients", {"_method": "DELETE"}),  # what runs is a DELETE, which nobody trims
    ("HEAD", "/studies", {}),
    ("POST", "/instances", {}),  # an upload
    ("POST", "/tools/find/extra", {}),
    ("POST", "/statistics", {}),
    ("GET", "/dicom-web/studies", {"PatientID": "123"}),  # answered by the DICOMweb plugin, not trimmed
    ("GET", f"/patients/{PID}/", {}),  # not the spelling the plugin's route takes
    ("GET", f"/PATIENTS/{PID}", {}),
    ("GET", f"/patients/{PID}/studies", {}),
    ("DELETE", f"/patients/{PID}", {}),
])
def test_routes_next_to_trimmed_ones_are_not_trimmed(method, path, query):
    assert not classify(method, path, query, {}).trimmed


def test_statistics_are_trimmed_and_carry_phi():
    route = classify("GET", "/statistics", {}, {})
    assert route.trimmed and route.carries_phi and not route.own_route


def test_system_info_carries_no_phi_and_is_not_trimmed():
    route = classify("GET", "/system", {}, {})
    assert not route.carries_phi and not route.trimmed and not route.own_route


# -- the search keys a route carries ---------------------------------------------------------------


def test_dicomweb_search_carries_its_locating_keys_as_sent():
    route = classify("GET", "/dicom-web/studies",
                     {"PatientID": "DOE+J1", "StudyInstanceUID": "1.2.3,4.5.6", "limit": "10", "includefield": "all"},
                     {})
    assert dict(route.query) == {"PatientID": "DOE+J1", "StudyInstanceUID": "1.2.3,4.5.6"}
    assert route.query_problem is None
    assert route.query_string == "PatientID=DOE+J1&StudyInstanceUID=1.2.3,4.5.6&limit=10&includefield=all"


@pytest.mark.parametrize(("key", "canonical"), [
    ("StudyInstanceUID", "StudyInstanceUID"), ("0020000D", "StudyInstanceUID"), ("0020000d", "StudyInstanceUID"),
    ("0020,000D", "StudyInstanceUID"), ("0020,000d", "StudyInstanceUID"), ("0020-000D", "StudyInstanceUID"),
    ("PatientID", "PatientID"), ("00100020", "PatientID"), ("0010,0020", "PatientID"), ("0010-0020", "PatientID"),
])
def test_dicomweb_search_carries_the_spellings_the_plugin_reads_under_one_name(key, canonical):
    route = classify("GET", "/dicom-web/studies", {key: "1.2.3"}, {})
    assert route.query == ((canonical, "1.2.3"),) and route.query_problem is None


def test_dicomweb_search_maps_tag_spellings_to_canonical_names():
    route = classify("GET", "/dicom-web/instances", {"0020000D": STUDY_UID, "00100020": "123"}, {})
    assert route.query == (("StudyInstanceUID", STUDY_UID), ("PatientID", "123"))


@pytest.mark.parametrize("query", [
    {"StudyInstanceUID": STUDY_UID, "0020000D": "9.9"},
    {"0020,000d": "9.9", "StudyInstanceUID": STUDY_UID},
    {"PatientID": "123", "00100020": "*", "0010,0020": "456"},
    {"PatientName": "A*", "00100010": "B*"},  # any tag, not only those the gate locates by
])
def test_dicomweb_search_naming_a_tag_twice_is_refused(query):
    """The DICOMweb plugin keeps the last spelling of a tag: which one is unknowable from a dict."""
    route = classify("GET", "/dicom-web/studies", query, {})
    assert route.query_problem and "twice" in route.query_problem


# Keys the plugin ignores (keywords are case-sensitive) or reads in ways the gate does not mirror
# (DCMTK's sscanf("%x,%x"), no percent-decoding): refused rather than guessed at.
@pytest.mark.parametrize("key", ["patientid", "PATIENTID", "PatientId", " PatientID", "PatientID ", "10,20",
                                 "0x10,0x20", "10010,20", " 10,20", "0010,0020x", "(0010,0020)", "Patient%49D",
                                 "StudyInstanceUIDs", "0020000D0", "Limit", "OtherPatientIDs",
                                 "RETIRED_OtherPatientIDs", "ReferencedStudySequence"])
def test_dicomweb_search_with_a_key_the_gate_cannot_read_exactly_is_refused(key):
    route = classify("GET", "/dicom-web/series", {"StudyInstanceUID": STUDY_UID, key: "x"}, {})
    assert route.query_problem and "not one the gate can read" in route.query_problem


@pytest.mark.parametrize("query", [
    {"StudyInstanceUID": "1.2%2C3.4"}, {"StudyInstanceUID": "1.2\\3"}, {"StudyInstanceUID": "*"},
    {"StudyInstanceUID": " 1.2"}, {"StudyInstanceUID": "1.2,"}, {"PatientID": "12*"}, {"PatientID": "12?"},
    {"PatientID": "12,34"}, {"PatientID": "12%2C34"}, {"PatientID": "12\\34"}, {"PatientID": " 12"},
    {"PatientID": "12\t"},
])
def test_dicomweb_search_with_a_locating_value_that_is_not_exact_is_refused(query):
    route = classify("GET", "/dicom-web/studies", query, {})
    assert route.query_problem and "must be" in route.query_problem


@pytest.mark.parametrize("key", ["SeriesInstanceUID", "SOPInstanceUID", "PatientName", "00100010", "0020000E",
                                 "limit", "includefield", "offset", "fuzzymatching", ""])
def test_dicomweb_search_leaves_out_keys_that_name_neither_tag(key):
    route = classify("GET", "/dicom-web/studies", {key: "1"}, {})
    assert route.query == () and route.query_problem is None


def test_dicomweb_search_without_keys_carries_none():
    route = classify("GET", "/dicom-web/studies", {"limit": "5"}, {})
    assert (route.query, route.level, route.resource_id, route.study_uid) == ((), None, None, None)


def test_a_search_within_a_study_is_held_to_the_same_reading_of_its_keys():
    path = f"/dicom-web/studies/{STUDY_UID}/series"
    assert classify("GET", path, {"Modality": "CT", "limit": "5"}, {}).query_problem is None
    assert "twice" in classify("GET", path, {"Modality": "CT", "00080060": "MR"}, {}).query_problem
    assert classify("GET", f"{path}/{SERIES_UID}/instances", {"10,20": "x"}, {}).query_problem


def test_create_archive_get_carries_its_resources_as_sent():
    route = classify("GET", "/tools/create-archive", {"resources": f"{PID},{PID[::-1]}", "transcode": "x"}, {})
    assert route.query == (("resources", f"{PID},{PID[::-1]}"),)
    assert (route.family, route.action, route.trimmed) == ("tools_archive", Action.DOWNLOAD, False)


@pytest.mark.parametrize("path", ["/tools/find", "/patients", f"/studies/{PID}", "/wado"])
def test_other_routes_carry_no_search_keys(path):
    assert classify("GET", path, {"PatientID": "123", "resources": PID}, {}).query == ()


@pytest.mark.parametrize("path", ["/", "/gate/health", "/gate/login", "/gate/static/gate.css", "/gate/api/me",
                                  "/share/tok", "/app/explorer.html", "/ohif/", "/ohif/viewer", "/gate/doctor",
                                  f"/gate/doctor/studies/{PID}/report", "/gate/set-password/tok"])
def test_own_routes_are_marked_and_carry_no_phi(path):
    route = classify("GET", path, {}, {})
    assert route.own_route and not route.carries_phi


@pytest.mark.parametrize("path", ["/patients", f"/instances/{PID}/file", "/tools/find", "/wado",
                                  "/dicom-web/studies", "/webdav/", "/changes", "/foo", "/jobs"])
def test_orthanc_routes_are_not_own_routes_and_carry_phi(path):
    route = classify("GET", path, {}, {})
    assert not route.own_route and route.carries_phi


def test_ohif_files_are_decided_by_the_filter_not_the_handler():
    route = classify("GET", "/ohif/app.bundle.css", {}, {})
    assert not route.own_route and not route.carries_phi and not route.trimmed


def test_ui_asset_read_carries_no_phi_but_a_write_does():
    assert not classify("GET", "/app/explorer.js", {}, {}).carries_phi
    assert classify("PUT", "/app/explorer.js", {}, {}).carries_phi


def test_every_ui_page_the_classifier_owns_is_a_route_of_the_plugin():
    for path in ("/app/explorer.html", "/app/x.html", "/web-viewer/app/viewer.html"):
        assert classify("GET", path, {}, {}).own_route
        assert any(re.fullmatch(regex, path) for regex, _handlers in OWNED), path
    for path in ("/app/explorer.HTML", "/app/.html", "/app/libs/x.html", "/web-viewer/libs/x.html"):
        assert not classify("GET", path, {}, {}).own_route
        assert not any(re.fullmatch(regex, path) for regex, _handlers in OWNED if "html" in regex), path


def test_anonymous_gate_routes_are_routes_of_the_plugin_with_those_methods():
    """What the classifier opens to anonymous callers under /gate/ is a route the plugin answers (its
    handler checks the token), and only for the methods that route has."""
    for method, path, query, headers, family, _action in ROUTES:
        if family != "gate_public" or query or headers or not path.startswith("/gate/set-password"):
            continue
        folded = normalise_path(path)
        owned = [handlers for regex, handlers in OWNED[:-1] if re.fullmatch(regex, folded)]  # not the catch-all
        assert owned and method in owned[0], (method, path)
    owned_methods = next(handlers for regex, handlers in OWNED if regex == "/gate/set-password/([^/]+)")
    assert set(owned_methods) == routes.SET_PASSWORD_METHODS


def test_the_method_recorded_is_the_one_orthanc_runs():
    route = classify("get", f"/patients/{PID}", {}, {"x-http-method-override": "delete"})
    assert route.method == "DELETE"


def test_path_is_normalised():
    assert classify("GET", "//patients//x///", {}, {}).path == "/patients/x"


def test_malformed_keeps_a_bounded_copy_of_the_raw_path():
    route = classify("GET", "/app/../" + "a" * 500, {}, {})
    assert route.malformed == "dot segment in path"
    assert len(route.path) == 200


def test_malformed_reason_names_the_problem():
    assert classify("GET", "/x", {"_method": "PUT"}, {"x-http-method-override": "DELETE"}).malformed == \
        "conflicting method overrides"
    assert classify("GET", "/x\x01", {}, {}).malformed == "control character in path"
    assert classify("FOO", "/x", {}, {}).malformed == "unknown method"


# -- the two helpers on their own ------------------------------------------------------------------


def test_effective_method_without_override_is_the_request_method_upper_cased():
    assert effective_method("post", {}, {}) == "POST"


def test_agreeing_overrides_are_accepted():
    assert effective_method("GET", {"_method": "put"}, {"x-http-method-override": "PUT"}) == "PUT"


def test_normalise_path_drops_the_query_string():
    assert normalise_path("/studies/?expand&_method=DELETE") == "/studies"


def test_normalise_path_folds_backslashes_into_slashes():
    assert normalise_path("\\patients\\x") == "/patients/x"


@pytest.mark.parametrize("uri", ["/..", "/a/.", "/a\\.\\b", "/a\x1b", "/a\x7f"])
def test_normalise_path_refuses_ambiguous_paths(uri):
    with pytest.raises(routes.MalformedRequest):
        normalise_path(uri)
