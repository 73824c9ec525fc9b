"""Orthanc Explorer 2's configuration document, built per caller: which of its buttons they see.

OE2 (the plugin) serves `/ui/api/configuration`, and enables each of its `UiOptions.Enable*`
switches for everyone alike unless the official authorization plugin is loaded, which the Gate
replaces. So the Gate owns that route (the Python plugin is listed before OE2 in "Plugins", and
the first plugin to register a route answers it) and builds the whole document itself, for the
OE2 version below: what OE2 1.14.1 would answer from the same "OrthancExplorer2" section, with
each switch then allowed only where the caller's role and access levels allow what it does.
Every button OE2 shows then leads to something the request filter lets the caller do; whatever a
switch hides, the filter refuses all the same.

The defaults are those OE2 1.14.1 applies to a key its section does not set (its
DefaultConfiguration.json); keys added by later OE2 versions are missing here and the app then
uses its own fallbacks, so a new OE2 version is checked against this table before it is pinned
(tests/oe2/ compares the admin's document with OE2's own).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plugin.policies.levels import AccessLevel

OE2_VERSION = "1.14.1"
ROOT = "/ui/"

# UiOptions as OE2 1.14.1 sets them when its configuration section is silent.
DEFAULT_UI_OPTIONS: dict[str, Any] = {
    "EnableStudyList": True, "EnableUpload": True, "EnableDicomModalities": True,
    "EnableDicomWebServers": True, "EnableDeleteResources": True, "EnableDownloadZip": True,
    "EnableDownloadDicomDir": False, "EnableDownloadDicomFile": True, "EnableAnonymization": True,
    "EnableModification": True, "EnableSendTo": True, "EnableApiViewMenu": False, "EnableWorklists": True,
    "EnableSettings": True, "EnableAuditLogs": True, "EnableJobsList": True, "EnableLinkToLegacyUi": True,
    "EnableChangePassword": True, "EnableViewerQuickButton": True, "EnableReportQuickButton": False,
    "EnableEditLabels": True, "AvailableLabels": [], "EnableLabelsCount": True,
    "EnableMultiLabelsSearch": False, "EnableShares": False, "ShareDuration": 15,
    "EnableSharesByEmail": False, "ShareEmailContentTemplate": "TO BE DEFINED",
    "ShareEmailLayoutTemplate": None, "ShareEmailTitle": "TO BE DEFINED", "EnableAddSeries": True,
    "AddSeriesDefaultTags": {
        "pdf": {"SeriesDescription": "Report", "Modality": "DOC", "SeriesDate": "$TODAY$"},
        "image": {"SeriesDescription": "Picture", "Modality": "XC", "SeriesDate": "$TODAY$"},
        "stl": {"SeriesDescription": "Model", "Modality": "M3D", "SeriesDate": "$TODAY$"},
    },
    "EnableOpenInOhifViewer": False, "OhifViewerPublicRoot": "http://to-be-defined/",
    "EnableOpenInOhifViewer3": False, "OhifViewer3PublicRoot": "/ohif/",
    "EnableOpenInMedDreamViewer": False, "MedDreamViewerPublicRoot": "http://to-be-defined/",
    "EnableOpenInWeasisViewer": False,
    "ViewersIcons": {
        "osimis-web-viewer": "bi bi-eye", "stone-webviewer": "bi bi-eye-fill", "ohif": "bi bi-grid",
        "ohif-vr": "bi bi-grid-1x2", "ohif-tmtv": "bi bi-grid-3x3-gap", "ohif-seg": "fa-solid fa-shapes fa-button",
        "ohif-micro": "fa-solid fa-microscope fa-button", "meddream": "bi bi-columns-gap", "volview": "bi bi-box",
        "wsi": "fa-solid fa-microscope fa-button", "stl": "fa-solid fa-cubes", "weasis": "bi bi-eye",
    },
    "ViewersOrdering": ["stone-webviewer", "ohif", "ohif-vr", "ohif-tmtv", "ohif-seg", "meddream", "volview",
                        "wsi", "stl", "weasis"],
    "MaxStudiesDisplayed": 100, "PageLoadSize": 50, "MaxMyJobsHistorySize": 5,
    "StudyListSearchMode": "search-as-you-type", "StudyListSearchAsYouTypeMinChars": 3,
    "StudyListSearchAsYouTypeDelay": 400, "StudyListContentIfNoSearch": "default-ordering",
    "DefaultOrdering": "Metadata,LastUpdate,DESC", "AutoAddWildcardsToSearchFields": True,
    "ShowOrthancName": True,
    "UploadReportTags": ["PatientName", "StudyDescription", "PatientID", "AccessionNumber", "StudyDate"],
    "UploadReportMaxTags": 2,
    "StudyListColumns": ["PatientBirthDate", "PatientName", "PatientID", "StudyDescription", "StudyDate",
                         "modalities", "AccessionNumber", "seriesAndInstancesCount"],
    "PatientMainTags": ["PatientID", "PatientName", "PatientBirthDate", "PatientSex", "OtherPatientIDs"],
    "StudyMainTags": ["StudyDate", "StudyTime", "StudyDescription", "AccessionNumber", "StudyID",
                      "StudyInstanceUID", "RequestingPhysician", "ReferringPhysicianName", "InstitutionName"],
    "SeriesMainTags": ["SeriesDate", "SeriesTime", "SeriesDescription", "SeriesNumber", "BodyPartExamined",
                       "ProtocolName", "SeriesInstanceUID"],
    "ModalitiesFilter": ["CR", "CT", "DOC", "DR", "DX", "KO", "MG", "MR", "NM", "OT", "PR", "PT", "PX", "RTDOSE",
                         "RTSTRUCT", "RTPLAN", "SEG", "SR", "US", "XA", "XC"],
    "WorklistsColumns": ["PatientBirthDate", "PatientName", "PatientID", "startDate", "description",
                         "modalities", "AccessionNumber"],
    "NewWorklistDefaultTags": {
        "AccessionNumber": {"Required": True, "DefaultValue": "$NOW$"},
        "PatientID": {"Required": True},
        "PatientBirthDate": {},
        "PatientName": {"Required": True},
        "PatientSex": {"Choices": ["F", "M", "U", "O"]},
        "StudyInstanceUID": {"DefaultValue": "$GENERATE_DICOM_UUID$", "Editable": False},
        "InstitutionName": {},
        "ScheduledProcedureStepSequence": {"DefaultValue": [{
            "ScheduledProcedureStepStartDate": {"DefaultValue": "$TODAY$", "Required": True},
            "Modality": {"Choices": ["CR", "CT", "DR", "DX", "MG", "MR", "OT", "PT", "US", "XA", "XC"]},
            "ScheduledProcedureStepDescription": {},
        }]},
    },
    "AvailableLanguages": ["en", "ar", "de", "es", "fr", "hu", "it", "ja", "ka", "pt", "ro", "ru", "si", "uk",
                           "vi", "zh"],
    "DefaultLanguage": None, "TranslateDicomTags": True, "DateFormat": "yyyyMMdd",
    "PatientNameCapture": r"([^\^]+)\^?([^\^]+)?\^?([^\^]+)?\^?([^\^]+)?\^?([^\^]+)?",
    "Modifications": {
        "AllowedModes": ["modify-new-uids", "modify-keep-uids", "duplicate"], "DefaultMode": "modify-new-uids",
        "SeriesAllowedModes": ["modify-new-uids", "modify-keep-uids", "duplicate"],
        "SeriesDefaultMode": "modify-new-uids",
    },
    "ShowSamePatientStudiesFilter": ["PatientID"],
    "DownloadStudyFileNameTemplate": "{PatientID}-{PatientName}-{StudyDate}-{StudyDescription}.zip",
    "DownloadSeriesFileNameTemplate": "{PatientID}-{PatientName}-{SeriesDate}-{SeriesDescription}.zip",
    "DownloadInstanceFileNameTemplate":
        "{PatientID}-{PatientName}-{StudyDate}-{SeriesDescription}-{InstanceNumber}.dcm",
    "CustomButtons": {"study": [], "instance": [], "series": [], "bulk-studies": []},
}
DEFAULT_TOKENS: dict[str, Any] = {"InstantLinksValidity": 200, "ShareType": "stone-viewer-publication"}
DEFAULT_ADVANCED: dict[str, Any] = {"DownloadInstantLinksUseRestApiWithAuthHeaders": False,
                                    "AdaptUiOnReadOnlySystems": True}

# Who may use what each switch shows. ADMIN: the admin role only (the filter refuses the routes
# behind it to everyone else: uploads, jobs, settings, labels, peers, modalities, modify and
# anonymize, whose bodies it is never shown). A level: admins, and others who hold at least that
# level on some study (on a study they hold below it, the filter refuses). Unlisted switches are
# about viewing and stay as configured.
ADMIN = "admin"
SWITCHES: dict[str, str | AccessLevel] = {
    "EnableUpload": ADMIN, "EnableAddSeries": ADMIN, "EnableDicomModalities": ADMIN,
    "EnableDicomWebServers": ADMIN, "EnableSendTo": ADMIN, "EnableWorklists": ADMIN, "EnableSettings": ADMIN,
    "EnableJobsList": ADMIN, "EnableApiViewMenu": ADMIN, "EnableAuditLogs": ADMIN, "EnableEditLabels": ADMIN,
    "EnableLabelsCount": ADMIN, "EnableMultiLabelsSearch": ADMIN, "EnablePermissionsEdition": ADMIN,
    "EnableModification": ADMIN, "EnableAnonymization": ADMIN, "EnableSharesByEmail": ADMIN,
    "EnableDeleteResources": AccessLevel.FULL,
    "EnableDownloadZip": AccessLevel.DOWNLOAD, "EnableDownloadDicomDir": AccessLevel.DOWNLOAD,
    "EnableDownloadDicomFile": AccessLevel.DOWNLOAD,
    "EnableShares": AccessLevel.SHARE,
}


@dataclass(frozen=True)
class Explorer2Caller:
    """Who asks for the document: their account, whether they are an admin, the best access level
    they hold on any study (None: none), whether they may change their password here, and whether
    share links are on (Gate.Shares.Enabled)."""

    username: str
    display_name: str
    admin: bool
    best_level: AccessLevel | None
    local_password: bool
    shares_enabled: bool


def merged(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `changes` applied as OE2 applies its configuration section to its defaults:
    objects merge key by key, anything else replaces."""
    result = copy.deepcopy(dict(base))
    for key, value in changes.items():
        if isinstance(result.get(key), dict) and isinstance(value, dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def allowed(switch: str, caller: Explorer2Caller) -> bool:
    """Whether `caller` may use what `switch` shows (True for switches about viewing)."""
    need = SWITCHES.get(switch)
    if need is None or caller.admin:
        return True
    if need == ADMIN:
        return False
    return caller.best_level is not None and caller.best_level >= need


def ui_options(section: Mapping[str, Any], caller: Explorer2Caller, read_only: bool = False) -> dict[str, Any]:
    """The UiOptions `caller` gets: OE2's defaults, the section's own, then each switch allowed only
    where `allowed` says so."""
    configured = section.get("UiOptions") if isinstance(section.get("UiOptions"), dict) else {}
    options = merged(DEFAULT_UI_OPTIONS, configured)
    if "EnableAnonimization" in configured and "EnableAnonymization" not in configured:
        options["EnableAnonymization"] = configured["EnableAnonimization"]  # OE2 reads its old spelling too
    if "ShareDuration" not in options and "DefaultShareDuration" in options:
        options["ShareDuration"] = options["DefaultShareDuration"]
    # The Share button makes one of the Gate's share links (handlers/shares.py), never OE2's tokens.
    options["EnableShares"] = caller.shares_enabled and configured.get("EnableShares") is not False
    options["EnableSharesByEmail"] = False  # OE2 would send its own e-mail; the Gate's link has its own
    options["EnablePermissionsEdition"] = False  # the authorization service's roles: not the Gate's
    options["EnableAuditLogs"] = False  # the authorization plugin's log; the Gate's audit is /gate/api/audit
    options["EnableChangePassword"] = bool(options.get("EnableChangePassword")) and caller.local_password
    if read_only:
        for switch in ("EnableUpload", "EnableAddSeries", "EnableDeleteResources", "EnableModification",
                       "EnableAnonymization", "EnableEditLabels"):
            options[switch] = False
    for switch in SWITCHES:
        options[switch] = bool(options.get(switch)) and allowed(switch, caller)
    if not caller.admin:
        options["AvailableLabels"] = []
    return options


def profile(caller: Explorer2Caller) -> dict[str, Any]:
    """The user profile OE2 shows in its side bar ("signed in as", with the sign-out under it).
    Labels are not how the Gate grants access: an admin sees them all, others none."""
    permissions = sorted(switch for switch in SWITCHES if allowed(switch, caller))
    return {"name": caller.display_name or caller.username, "user-id": caller.username,
            "permissions": permissions, "authorized-labels": ["*"] if caller.admin else [], "groups": []}


def configuration(section: Mapping[str, Any], plugins: Mapping[str, Any], caller: Explorer2Caller,
                  read_only: bool = False) -> dict[str, Any]:
    """The whole `/ui/api/configuration` document for `caller`. `plugins` is OE2's "Plugins" part,
    as `plugins_part` makes it."""
    tokens = merged(DEFAULT_TOKENS, section.get("Tokens") if isinstance(section.get("Tokens"), dict) else {})
    tokens["RequiredForLinks"] = False  # the session cookie opens viewers; no token in links
    advanced = merged(DEFAULT_ADVANCED, section.get("AdvancedOptions")
                      if isinstance(section.get("AdvancedOptions"), dict) else {})
    options = ui_options(section, caller, read_only and bool(advanced["AdaptUiOnReadOnlySystems"]))
    plugins = copy.deepcopy(dict(plugins))
    if options["EnableShares"]:
        # OE2 shows its Share button only beside an enabled authorization plugin, whose one use in
        # the app that is; the Gate answers the button's request (handlers/shares.py).
        plugins["authorization"] = {"ID": "authorization", "Enabled": True,
                                    "Description": "Orthanc Gate: share links to patients"}
    document: dict[str, Any] = {
        "Plugins": plugins, "UiOptions": options, "Tokens": tokens,
        "AdvancedOptions": advanced, "Keycloak": None, "Profile": profile(caller),
        "HasCustomLogo": bool(section.get("CustomLogoPath") or section.get("CustomLogoUrl")),
    }
    if isinstance(section.get("CustomLogoUrl"), str):
        document["CustomLogoUrl"] = section["CustomLogoUrl"]
    if isinstance(section.get("CustomTitle"), str):
        document["CustomTitle"] = section["CustomTitle"]
    return document


# Sign-in is the Gate's (no Keycloak); the token landing page and the inbox are OE2 features the
# Gate does not offer (their tokens and anonymous uploads are not its own).
PRE_LOGIN: dict[str, Any] = {"Keycloak": None, "TokensLandingOptions": None, "Inbox": None}

# Plugins whose "Enabled" OE2 reads from a configuration section: (section, key, default when the
# section exists); a plugin not named here is enabled when loaded.
ENABLED_BY_SECTION: dict[str, tuple[str, str | None, bool]] = {
    "dicom-web": ("DicomWeb", "Enable", False), "delayed-deletion": ("DelayedDeletion", "Enable", False),
    "gdcm": ("Gdcm", "Enable", True), "worklists": ("Worklists", "Enable", False),
    "orthanc-worklists": ("Worklists", "Enable", False), "tcia": ("Tcia", "Enable", False),
    "postgresql-index": ("PostgreSQL", "EnableIndex", False),
    "postgresql-storage": ("PostgreSQL", "EnableStorage", False),
    "mysql-index": ("MySQL", "EnableIndex", False), "mysql-storage": ("MySQL", "EnableStorage", False),
    "odbc-index": ("Odbc", "EnableIndex", False), "odbc-storage": ("Odbc", "EnableStorage", False),
    "advanced-storage": ("AdvancedStorage", "Enable", False), "serve-folders": ("ServeFolders", None, True),
    "osimis-web-viewer": ("WebViewer", None, True), "AWS S3 Storage": ("AwsS3Storage", None, True),
    "Azure Blob Storage": ("AzureBlobStorage", None, True),
    "Google Cloud Storage": ("GoogleCloudStorage", None, True),
}


def plugin_enabled(name: str, orthanc_config: Mapping[str, Any]) -> bool:
    """Whether OE2 counts loaded plugin `name` as enabled, from Orthanc's configuration."""
    if name == "authorization":
        return False  # never loaded with the Gate; its part is the Gate's
    if name == "python":
        return isinstance(orthanc_config.get("PythonScript"), str)
    if name == "multitenant-dicom":
        servers = (orthanc_config.get("MultitenantDicom") or {}).get("Servers")
        return isinstance(servers, list) and bool(servers)
    rule = ENABLED_BY_SECTION.get(name)
    if rule is None:
        return True
    section_name, key, default = rule
    section = orthanc_config.get(section_name)
    if not isinstance(section, dict):
        return False
    return bool(section.get(key, default)) if key else True


def plugins_part(infos: Mapping[str, Mapping[str, Any]], orthanc_config: Mapping[str, Any]) -> dict[str, Any]:
    """OE2's "Plugins" part: each loaded plugin's `/plugins/{name}` description, its RootUri made
    relative to OE2's app (one "../" per part of the root), and whether it is enabled."""
    prefix = "../" * len([part for part in ROOT.split("/") if part])
    part: dict[str, Any] = {}
    for name, info in infos.items():
        if name == "explorer.js":
            continue
        entry = dict(info)
        if entry.get("RootUri"):
            entry["RootUri"] = prefix + str(entry["RootUri"])
        entry["Enabled"] = plugin_enabled(name, orthanc_config)
        part[name] = entry
    return part
