"""Every route the plugin answers itself, with its handler per method: the one table that entry.py
registers with Orthanc and that the tests walk."""

from __future__ import annotations

from plugin.handlers import (
    admin,
    admin_audit,
    admin_records,
    admin_server,
    api,
    audit,
    dashboard,
    dicomweb,
    doctors,
    explorer2,
    grants,
    ohif,
    orthanc,
    outbox,
    pages,
    referrals,
    shares,
    users,
)

HEALTH = "/gate/health"

# (regex, {method: handler}); the catch-all for /gate/ must stay last.
ROUTES = (
    ("/", {"GET": pages.root}),
    (HEALTH, {"GET": None}),  # served by _health, which also works when start-up failed
    ("/gate/login", {"GET": pages.login_page, "POST": pages.login}),
    ("/gate/logout", {"GET": pages.logout_page, "POST": pages.logout}),
    ("/gate/password", {"GET": pages.password_page, "POST": pages.change_password}),
    ("/gate/mfa", {"GET": pages.mfa_page, "POST": pages.mfa_confirm}),
    ("/gate/static/([^/]+)", {"GET": pages.static}),
    # The welcome e-mail's set-password link: open to anonymous callers (policies/routes.py).
    ("/gate/set-password/([^/]+)", {"GET": pages.set_password_page, "POST": pages.set_password}),
    # The doctor dashboard and the PDF report of a study it lists (handlers/dashboard.py).
    ("/gate/doctor", {"GET": dashboard.doctor_page}),
    ("/gate/doctor/studies/([^/]+)/report", {"GET": dashboard.report}),
    ("/gate/doctor/studies/([^/]+)/share", {"GET": dashboard.share_study, "POST": dashboard.share_study}),
    # The admin console: admins in a browser session with a one-time code proved (handlers/admin*.py).
    ("/gate/admin/?", {"GET": admin.dashboard_page}),
    ("/gate/admin/users", {"GET": admin.users_page, "POST": admin.users_page}),
    ("/gate/admin/import", {"GET": admin.import_page, "POST": admin.import_page}),
    ("/gate/admin/users/([^/]+)", {"GET": admin.user_page}),
    ("/gate/admin/users/([^/]+)/([a-z-]+)", {"POST": admin.user_action}),
    ("/gate/admin/doctors", {"GET": admin_records.doctors_page, "POST": admin_records.doctors_page}),
    ("/gate/admin/doctors/([0-9]+)", {"GET": admin_records.doctor_page, "POST": admin_records.doctor_page}),
    ("/gate/admin/doctors/([0-9]+)/sign-in", {"POST": admin_records.doctor_sign_in}),
    ("/gate/admin/grants", {"GET": admin_records.grants_page}),
    ("/gate/admin/grants/bulk", {"POST": admin_records.grant_bulk}),
    ("/gate/admin/grants/study", {"GET": admin_records.study_access_page}),
    ("/gate/admin/grants/([0-9]+)/revoke", {"POST": admin_records.grant_revoke}),
    ("/gate/admin/shares", {"GET": admin_records.shares_page}),
    ("/gate/admin/shares/([0-9]+)/revoke", {"POST": admin_records.share_revoke}),
    ("/gate/admin/review", {"GET": admin_records.review_page}),
    ("/gate/admin/review/([0-9]+)/resolve", {"POST": admin_records.review_resolve}),
    ("/gate/admin/audit", {"GET": admin_audit.audit_page}),
    ("/gate/admin/audit/patient", {"GET": admin_audit.patient_report_page}),
    ("/gate/admin/audit/breach", {"GET": admin_audit.breach_report_page}),
    ("/gate/admin/audit/verify", {"GET": admin_audit.verify_page}),
    ("/gate/admin/server", {"GET": admin_server.server_page}),
    ("/gate/admin/server/restart", {"POST": admin_server.restart}),
    ("/gate/api/me", {"GET": api.me}),
    ("/gate/api/users", {"GET": users.users_collection, "POST": users.users_collection}),
    ("/gate/api/users/import", {"POST": users.import_users}),  # before the username route, which would take it
    # PUT is the partial change API.md calls PATCH: Orthanc refuses PATCH itself (handlers/users.py).
    ("/gate/api/users/([^/]+)", {"GET": users.user_resource, "PUT": users.user_resource,
                                 "DELETE": users.user_resource}),
    ("/gate/api/users/([^/]+)/sessions", {"DELETE": users.user_sessions}),
    ("/gate/api/users/([^/]+)/unlock", {"POST": users.user_unlock}),
    ("/gate/api/users/([^/]+)/mfa-reset", {"POST": users.user_mfa_reset}),
    ("/gate/api/api-keys", {"POST": users.api_keys}),
    ("/gate/api/api-keys/([0-9]+)", {"DELETE": users.api_key}),
    ("/gate/api/doctors", {"GET": doctors.doctors_collection, "POST": doctors.doctors_collection}),
    # PUT is the partial change API.md calls PATCH, as for users.
    ("/gate/api/doctors/([0-9]+)", {"GET": doctors.doctor_resource, "PUT": doctors.doctor_resource,
                                   "DELETE": doctors.doctor_resource}),
    ("/gate/api/doctors/([0-9]+)/sign-in", {"POST": doctors.doctor_sign_in}),
    ("/gate/api/grants", {"GET": grants.grants_collection, "POST": grants.grants_collection}),
    ("/gate/api/grants/bulk", {"POST": grants.grants_bulk}),
    ("/gate/api/grants/([0-9]+)", {"DELETE": grants.grant_resource}),
    ("/gate/api/check", {"GET": grants.check}),
    ("/gate/api/referrals", {"GET": referrals.referrals}),
    ("/gate/api/review", {"GET": referrals.review_items}),
    ("/gate/api/review/([0-9]+)/resolve", {"POST": referrals.resolve}),
    ("/gate/api/shares", {"GET": shares.shares_collection, "POST": shares.shares_collection}),
    ("/gate/api/shares/([0-9]+)", {"GET": shares.share_resource, "DELETE": shares.share_resource}),
    # Orthanc Explorer 2's Share button, answered with one of our share links (handlers/shares.py).
    ("/auth/tokens/([^/]+)", {"PUT": shares.explorer_share}),
    # The audit, for admins: search, export, the chain's proof, and the POPIA reports.
    ("/gate/api/audit", {"GET": audit.search}),
    ("/gate/api/audit/verify", {"GET": audit.verify}),
    (r"/gate/api/audit/export\.csv", {"GET": audit.export_csv}),
    ("/gate/api/audit/patient-report", {"GET": audit.patient_report}),
    ("/gate/api/audit/breach-report", {"GET": audit.breach_report}),
    ("/gate/api/outbox", {"GET": outbox.list_messages}),
    ("/gate/api/outbox/([0-9]+)/retry", {"POST": outbox.retry}),
    # Orthanc's own lists and searches, answered here so they can be trimmed (handlers/orthanc.py).
    # Not /instances: its POST is the core's upload (ORTHANC-FACTS.md), so the core keeps it.
    ("/(patients|studies|series)", {"GET": orthanc.resource_list}),
    # A patient, trimmed to the studies a doctor holds (Orthanc Explorer's study page asks for it).
    # The route takes DELETE from the core too, so it passes that on for admins.
    ("/patients/([^/]+)", {"GET": orthanc.patient_resource, "DELETE": orthanc.patient_delete}),
    # Restarting as Orthanc would, but without loading the Python plugin twice (handlers/orthanc.py).
    ("/tools/reset", {"POST": orthanc.tools_reset}),
    ("/tools/find", {"POST": orthanc.tools_find}),
    ("/tools/count-resources", {"POST": orthanc.tools_find}),
    ("/tools/lookup", {"POST": orthanc.tools_lookup}),
    ("/statistics", {"GET": orthanc.statistics}),
    ("/tools/labels", {"GET": orthanc.tools_labels}),
    ("/peers", {"GET": orthanc.network_list}),
    ("/modalities", {"GET": orthanc.network_list}),
    # The UIs' HTML entry pages: a browser without a session is sent to sign in and brought back
    # (the request filter could only refuse it); signed in, the page as Orthanc serves it.
    (r"/app/([^/]+\.html)", {"GET": pages.ui_page}),
    (r"/web-viewer/app/([^/]+\.html)", {"GET": pages.ui_page}),
    # Orthanc Explorer 2: its configuration, built per caller, and its app's entry page (for every
    # route of the app but its files and other pages); the Python plugin must be listed before OE2.
    ("/ui/api/configuration", {"GET": explorer2.configuration}),
    ("/ui/api/pre-login-configuration", {"GET": explorer2.pre_login_configuration}),
    (explorer2.APP, {"GET": explorer2.app_page}),
    (explorer2.APP_ROUTE, {"GET": explorer2.app_page}),
    # The OHIF Viewer: its pages (any route of the app answers its index.html) and files.
    ("/ohif", {"GET": ohif.viewer}),
    ("/ohif/(.*)", {"GET": ohif.viewer}),
    # A patient's share pages: the viewing session's own pages first, then the link itself (a token
    # is 43 characters and never one of these words), then one "not a valid link" page for the rest.
    ("/share/view", {"GET": shares.view}),
    ("/share/preview/([^/]+)", {"GET": shares.preview}),
    ("/share/report/([^/]+)", {"GET": shares.report}),
    ("/share/download", {"POST": shares.download}),
    ("/share/close", {"POST": shares.close}),
    ("/share/([^/]+)", {"GET": shares.link, "POST": shares.link}),
    ("/share/(.*)", {"GET": shares.not_found}),
    ("/gate/(.*)", {"GET": api.not_found, "POST": api.not_found, "PUT": api.not_found,
                    "DELETE": api.not_found}),
)

# The DICOMweb plugin's search routes, answered here where that plugin would search past every
# plugin (services/dicomweb_search.py): registered only then, before the plugin's own (entry.py).
# Its other routes stay the plugin's; so does STOW-RS, the POST of /dicom-web/studies (see
# handlers/dicomweb.store_instances).
DICOMWEB_ROOT = "/dicom-web/"
DICOMWEB_SEARCH_ROUTES = (
    ("/dicom-web/studies", {"GET": dicomweb.search_studies, "POST": dicomweb.store_instances}),
    ("/dicom-web/series", {"GET": dicomweb.search_series}),
    ("/dicom-web/instances", {"GET": dicomweb.search_instances}),
    ("/dicom-web/studies/([^/]*)/series", {"GET": dicomweb.search_series}),
    ("/dicom-web/studies/([^/]*)/instances", {"GET": dicomweb.search_instances}),
    ("/dicom-web/studies/([^/]*)/series/([^/]*)/instances", {"GET": dicomweb.search_instances}),
)
