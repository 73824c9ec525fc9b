"""Route classification: what will Orthanc execute for this request, and on which resource.

The gate classifies what Orthanc *executes*, not what the request looks like: duplicate and
trailing slashes are folded, method overrides (`?_method=`, `X-HTTP-Method-Override`) are applied,
family names are matched without regard to case, and anything ambiguous (dot segments, control
characters, unknown or conflicting override methods) is marked malformed so the policy denies it.
"""

from __future__ import annotations

import dataclasses
import re

from plugin.policies.qido import read_query
from plugin.policies.types import Action, RouteInfo

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PROPFIND",
                           "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND"})

LEVELS = {"patients": "patient", "studies": "study", "series": "series", "instances": "instance"}

# Sub-routes of /{level}/{id}/... that hand out original DICOM or whole-study bundles.
DOWNLOAD_SUBROUTES = frozenset({"file", "archive", "media", "attachments"})
# Sub-routes that change data whatever the method says.
MODIFY_SUBROUTES = frozenset({"reconstruct"})
# Sub-routes that reach beyond the resource: export writes a file anywhere on the server; merge
# moves into the study resources named in its body; modify, anonymize and split write new
# objects whose PatientID and study the body names (into another patient's record, perhaps), in a
# job the gate cannot follow. The request filter is never shown the body: admins only.
ADMIN_SUBROUTES = frozenset({"export", "merge", "modify", "anonymize", "split"})
# Changing these sub-routes of a study adds to it without altering its images.
ANNOTATE_SUBROUTES = frozenset({"metadata", "labels"})
REPORT_SUBROUTES = frozenset({"attachments"})

# Searches the plugin answers itself (handlers/orthanc.py), trimmed to the caller's grants.
# /tools/labels: every label for admins, none for others (labels do not grant access here).
TRIMMED_TOOLS = frozenset({"find", "count-resources", "lookup", "labels"})
TOOLS_FAMILIES = {
    "find": ("tools_find", Action.LIST),
    "count-resources": ("tools_find", Action.LIST),
    "lookup": ("tools_lookup", Action.LIST),
    "labels": ("tools_labels", Action.LIST),
    "create-archive": ("tools_archive", Action.DOWNLOAD),
    "create-media": ("tools_archive", Action.DOWNLOAD),
    "create-media-extended": ("tools_archive", Action.DOWNLOAD),
    "bulk-content": ("tools_bulk", Action.VIEW),
    "bulk-modify": ("tools_bulk", Action.MODIFY),
    "bulk-anonymize": ("tools_bulk", Action.MODIFY),
    "bulk-delete": ("tools_bulk", Action.DELETE),
}

# Top-level Orthanc REST families that are administrative (jobs, network, server control).
ADMIN_FAMILIES = frozenset({"changes", "exports", "jobs", "modalities", "peers", "queries",
                            "plugins", "system", "statistics", "storage-commitment"})
# GET /peers and GET /modalities (the collections only): answered by the plugin, empty for non-admins.
NETWORK_LISTS = frozenset({"peers", "modalities"})
# The sign-out page is as public as the sign-in page: signed out, it says so.
PUBLIC_GATE_PATHS = frozenset({"/gate/health", "/gate/login", "/gate/logout"})
# Orthanc's own icon (the core redirects /favicon.ico to the second): a browser asks for it on every
# page, signed in or not; it is the same picture for everyone.
FAVICONS = frozenset({"/favicon.ico", "/app/images/favicon.ico"})
# The welcome e-mail's link, /gate/set-password/{token}: whoever holds the token may open it and
# post its form (the handler checks the token); nothing else under /gate/set-password/.
SET_PASSWORD = "set-password"  # noqa: S105 - a path segment, not a password
SET_PASSWORD_METHODS = frozenset({"GET", "POST"})
# The OHIF Viewer the plugin serves (handlers/ohif.py).
OHIF_PREFIX = "ohif"

# Orthanc Explorer 2 (handlers/explorer2.py): the documents the Gate builds per caller, and what
# under /ui/app/ stays OE2's own (its files, and pages the Gate does not serve) rather than the app's
# entry page, which the Gate serves.
EXPLORER2_DOCUMENTS = frozenset({"configuration", "pre-login-configuration"})
EXPLORER2_OWN_FILES = frozenset({"assets", "customizable"})
EXPLORER2_OWN_PAGES = frozenset({"favicon.ico", "token-landing.html", "retrieve-and-view.html", "inbox.html"})

# The Orthanc Web Viewer plugin (Debian's orthanc-webviewer, Plugin/Plugin.cpp) registers
# /web-viewer/{series,is-stable-series,instances,libs,app}/(.*), case-sensitively. An image is
# named "{compression}-{instance id}_{frame}", which the plugin reads with this very expression
# (DecodedImageAdapter::ParseUri) and accepts only for deflate and jpeg0..jpeg100.
WEB_VIEWER_SERIES_ROUTES = frozenset({"series", "is-stable-series"})
WEB_VIEWER_ASSETS = frozenset({"app", "libs"})
WEB_VIEWER_IMAGE = re.compile(r"^([a-z0-9]+)-([a-z0-9-]+)_([0-9]+)$")
WEB_VIEWER_COMPRESSION = re.compile(r"^(deflate|jpeg[0-9]{1,3})$")


# C0 controls and DEL; one regex search instead of a Python loop over every character, since
# this runs for every request that is not remembered (a viewer's every new frame).
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


class MalformedRequest(ValueError):
    """The request cannot be understood unambiguously; the gate denies it."""


def effective_method(method: str, query: dict[str, str], headers: dict[str, str]) -> str:
    """The HTTP method Orthanc will run, after `?_method=` and `X-HTTP-Method-Override`.

    Orthanc honours either override; we apply whichever is present and refuse a request whose two
    overrides disagree or name a method we do not know, so no override can slip past the policy.
    """
    method = method.upper()
    overrides = {v.strip().upper() for v in (query.get("_method"), headers.get("x-http-method-override")) if v}
    if len(overrides) > 1:
        raise MalformedRequest("conflicting method overrides")
    if overrides:
        method = overrides.pop()
    if method not in KNOWN_METHODS:
        raise MalformedRequest("unknown method")
    return method


def normalise_path(uri: str) -> str:
    """Fold a request path the way Orthanc's router sees it; refuse ambiguous ones.

    Orthanc's web server hands the filter a path that is already percent-decoded with dot
    segments removed, so it is not decoded again here (a literal "%2e" stays a literal, as it
    does for Orthanc's router). Dot segments and control characters that still arrive are refused.
    """
    path = uri.split("?", 1)[0]
    if _CONTROL_CHARACTER.search(path):
        raise MalformedRequest("control character in path")
    segments = [s for s in path.replace("\\", "/").split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise MalformedRequest("dot segment in path")
    return "/" + "/".join(segments)


def classify(method: str, uri: str, query: dict[str, str], headers: dict[str, str]) -> RouteInfo:
    """Classify one request. Never raises: a request it cannot classify comes back malformed."""
    try:
        executed = effective_method(method, query, headers)
        path = normalise_path(uri)
    except MalformedRequest as exc:
        return RouteInfo(family="malformed", action=Action.ADMIN, method=method.upper(), path=uri[:200],
                         malformed=str(exc))
    route = _classify_path(executed, path, query)
    if route.family == "patients" and route.trimmed and uri.split("?", 1)[0] != path:
        # Only the path as registered reaches the plugin's trimmed answer: any other spelling is
        # decided on the patient's own grant, whoever answers it.
        return dataclasses.replace(route, trimmed=False)
    if route.family == "ui_page" and not _page_route_as_sent(uri.split("?", 1)[0], path):
        # Orthanc matches the plugin's route on the path as sent: one it would not route to the Gate
        # is left to the gate's rule for Orthanc Explorer's files.
        return RouteInfo("ui_asset", _action_for_method(executed, Action.VIEW), executed, path,
                         carries_phi=executed not in SAFE_METHODS)
    return route


def _page_route_as_sent(raw: str, path: str) -> bool:
    """Whether the path as sent reaches the Gate's route for the page at `path`. Orthanc matches
    routes on the path as sent; OE2's app route also takes a trailing slash, but for the folders of
    OE2's own files, whose routes then take it."""
    if raw == path:
        return True
    folder = path.split("/")[3:4]  # under /ui/app/, if any
    return path.startswith("/ui/app") and raw == path + "/" and not (folder and folder[0] in EXPLORER2_OWN_FILES)


def _action_for_method(method: str, read: Action) -> Action:
    if method in SAFE_METHODS:
        return read
    if method == "DELETE":
        return Action.DELETE
    return Action.MODIFY


def _classify_path(method: str, path: str, query: dict[str, str]) -> RouteInfo:
    segments = path.split("/")[1:] if path != "/" else []
    if not segments:
        return RouteInfo("root", Action.PUBLIC, method, path, carries_phi=False, own_route=True)
    head = segments[0]
    if head == "gate":
        return _classify_gate(method, path)
    if path in FAVICONS and method == "GET":
        return RouteInfo("favicon", Action.PUBLIC, method, path, carries_phi=False)
    if head == "share":
        # Share pages authorise themselves by token; they audit every access.
        return RouteInfo("share", Action.VIEW, method, path, carries_phi=False, own_route=True)
    if head == "ui" and len(segments) > 1:
        explorer2 = _classify_explorer2(method, path, segments)
        if explorer2 is not None:
            return explorer2
    if _is_ui_page(segments):
        # handlers/routes.py owns these (any method): a browser without a session is sent to sign in.
        return RouteInfo("ui_page", Action.VIEW, method, path, carries_phi=False, own_route=True)
    lower = head.lower()
    if lower in LEVELS:
        return _classify_resource(method, path, segments)
    if lower == "tools":
        sub = segments[1].lower() if len(segments) > 1 else ""
        family, action = TOOLS_FAMILIES.get(sub, ("tools_other", Action.ADMIN))
        if family in ("tools_archive", "tools_bulk") and method != "GET":
            # The resources are in the body, which Orthanc's request filter is not given (1.10 and
            # 1.12): only `GET ...?resources=` can be checked against grants.
            action = Action.ADMIN
        return RouteInfo(family, action, method, path, trimmed=sub in TRIMMED_TOOLS and len(segments) == 2,
                         query=(("resources", query.get("resources", "")),) if family == "tools_archive" else ())
    if lower == "jobs" and len(segments) >= 3 and segments[2].lower() == "archive":
        return RouteInfo("jobs", Action.DOWNLOAD, method, path)
    if len(segments) == 1 and lower in ("system", "statistics") and method == "GET":
        # The server's name and version (Orthanc Explorer asks first); statistics answered by
        # the plugin, counting only what the caller may see.
        if lower == "system":
            return RouteInfo("system_info", Action.VIEW, method, path, carries_phi=False)
        return RouteInfo("statistics", Action.LIST, method, path, trimmed=True)
    if lower == "plugins" and path.lower() == "/plugins/explorer.js" and method in SAFE_METHODS:
        # Orthanc Explorer loads the plugins' additions to its pages as one script.
        return RouteInfo("ui_asset", Action.VIEW, method, path, carries_phi=False)
    if head in NETWORK_LISTS and len(segments) == 1 and method == "GET":
        # The remote servers' names: the plugin answers admins with Orthanc's list, anyone else
        # with none (Orthanc Explorer 2 asks for them at start-up). Exact case, as Orthanc matches
        # the handler's route.
        return RouteInfo(head, Action.LIST, method, path, carries_phi=False, trimmed=True)
    if lower in ADMIN_FAMILIES:
        return RouteInfo(lower.replace("-", "_"), Action.ADMIN, method, path)
    if head == "auth" and len(segments) == 3 and segments[1] == "tokens" and segments[2]:
        # Orthanc Explorer 2's Share button (PUT /auth/tokens/{type}): handlers/shares.py answers it
        # with one of our share links, identifying the caller and checking each study it names (the
        # filter never sees a body). Exact case, as Orthanc matches the handler's route.
        return RouteInfo("share_tokens", Action.SHARE, method, path, carries_phi=False, own_route=True)
    if head == OHIF_PREFIX:
        # Exact case, as Orthanc matches the handler's route: /OHIF/ is nobody's route.
        return _classify_ohif(method, path, segments)
    if lower == "wado" and len(segments) == 1:
        return _classify_wado(method, path, query)
    if lower == "dicom-web":
        return _classify_dicomweb(method, path, segments, query)
    if lower == "web-viewer":
        return _classify_web_viewer(method, path, segments)
    if lower == "webdav":
        action = _action_for_method(method, Action.DOWNLOAD)
        return RouteInfo("webdav", action, method, path)
    if lower == "app" or lower == "favicon.ico" or (lower == "ui" and len(segments) > 1
                                                     and segments[1].lower() == "app"):
        # Orthanc Explorer's (and Explorer 2's) static files: no patient data, but not for anonymous.
        return RouteInfo("ui_asset", _action_for_method(method, Action.VIEW), method, path,
                         carries_phi=method not in SAFE_METHODS)
    return RouteInfo("unknown", Action.ADMIN, method, path)


def _classify_explorer2(method: str, path: str, segments: list[str]) -> RouteInfo | None:
    """Orthanc Explorer 2's routes that handlers/explorer2.py owns (exact case, as Orthanc matches
    a route's expression): its configuration documents, built per caller, and its app's entry page
    (every path of the app but its files and its other pages, which stay OE2's: ui_asset). None for
    the rest of /ui/, classified as before."""
    if segments[1] == "api" and len(segments) == 3 and segments[2] in EXPLORER2_DOCUMENTS:
        return RouteInfo("explorer2_config", Action.VIEW, method, path, carries_phi=False, own_route=True)
    if segments[1] == "app" and not (len(segments) > 3 and segments[2] in EXPLORER2_OWN_FILES) \
            and not (len(segments) == 3 and segments[2] in EXPLORER2_OWN_PAGES):
        return RouteInfo("ui_page", Action.VIEW, method, path, carries_phi=False, own_route=True)
    return None


def _is_ui_page(segments: list[str]) -> bool:
    """The paths handlers/routes.py owns as UI entry pages: a name ending in .html directly under
    /app/ or /web-viewer/app/ (Orthanc matches a route's regular expression case-sensitively)."""
    folder, name = segments[:-1], segments[-1] if segments else ""
    return folder in (["app"], ["web-viewer", "app"]) and len(name) > len(".html") and name.endswith(".html")


def _classify_gate(method: str, path: str) -> RouteInfo:
    segments = path.split("/")[1:]
    set_password = len(segments) == 3 and segments[1] == SET_PASSWORD and method in SET_PASSWORD_METHODS
    if path in PUBLIC_GATE_PATHS or path.startswith("/gate/static/") or set_password:
        return RouteInfo("gate_public", Action.PUBLIC, method, path, carries_phi=False, own_route=True)
    # Our own API and pages authenticate, authorise and audit in their handlers.
    return RouteInfo("gate", Action.ADMIN, method, path, carries_phi=False, own_route=True)


def is_viewer_page(segments: list[str]) -> bool:
    """Whether a path under /ohif/ is one of the viewer's pages (its HTML, or one of the routes of
    the single-page app, which have no file extension) rather than one of its files."""
    last = segments[-1] if len(segments) > 1 else ""
    return "." not in last or last.lower().endswith(".html")


def _classify_ohif(method: str, path: str, segments: list[str]) -> RouteInfo:
    if method in SAFE_METHODS and is_viewer_page(segments):
        # Its handler sends a browser without a session to sign in and back; a filter cannot.
        return RouteInfo("ohif_page", Action.VIEW, method, path, carries_phi=False, own_route=True)
    # The viewer's code, styles and codecs: no patient data, but nothing for anonymous callers.
    return RouteInfo("ohif_asset", _action_for_method(method, Action.VIEW), method, path,
                     carries_phi=method not in SAFE_METHODS)


def _classify_resource(method: str, path: str, segments: list[str]) -> RouteInfo:
    level = LEVELS[segments[0].lower()]
    if len(segments) == 1:
        if level == "instance":
            # Orthanc's core keeps /instances (its POST is how images are uploaded, and only the
            # core stores them with their Origin, RemoteIP and HttpUsername, decodes gzip and
            # multipart): so the flat list of every instance cannot be trimmed, and is for admins.
            return RouteInfo("resource_list", Action.ADMIN if method in SAFE_METHODS else
                             _action_for_method(method, Action.LIST), method, path, level=level)
        # GET is answered by the plugin, trimmed.
        return RouteInfo("resource_list", _action_for_method(method, Action.LIST), method, path,
                         level=level, trimmed=method == "GET")
    resource_id = segments[1]
    sub = segments[2].lower() if len(segments) > 2 else ""
    if sub == "attachments" and len(segments) == 3 and method in SAFE_METHODS:
        # The list of a resource's attachments: their names and numbers, which Orthanc Explorer
        # shows on every page; what they hold stays a download (/attachments/{name}/data).
        action = Action.VIEW
    elif sub in ("archive", "media") or (sub in DOWNLOAD_SUBROUTES and method in SAFE_METHODS):
        action = Action.DOWNLOAD
    elif sub in ADMIN_SUBROUTES and method not in SAFE_METHODS:
        action = Action.ADMIN
    elif sub in MODIFY_SUBROUTES or sub in ADMIN_SUBROUTES:
        action = Action.MODIFY
    elif sub in ANNOTATE_SUBROUTES and method in ("PUT", "DELETE") and len(segments) > 3:
        action = Action.ANNOTATE
    elif sub in REPORT_SUBROUTES and method not in SAFE_METHODS and len(segments) > 3:
        action = Action.REPORT
    else:
        action = _action_for_method(method, Action.VIEW)
    # GET /patients/{id}, exactly as handlers/routes.py registers it, is answered by the plugin,
    # trimmed to the studies the caller holds (classify() checks the path came as written).
    return RouteInfo(segments[0].lower(), action, method, path, level=level, resource_id=resource_id,
                     trimmed=method == "GET" and len(segments) == 2 and segments[0] == "patients")


def _classify_web_viewer(method: str, path: str, segments: list[str]) -> RouteInfo:
    """The Orthanc Web Viewer: a series' description and its images by Orthanc id, decided on
    their study's grant; its static files for anyone signed in; the rest admins only.

    The plugin's routes take everything after their prefix (`(.*)`), slashes included, and hand
    it to the core as an id: an id of more than one segment, or an image name the plugin would not
    read as exactly one instance and frame, is refused.
    """
    sub = segments[1] if len(segments) > 1 else ""
    if segments[0] != "web-viewer" or (sub not in WEB_VIEWER_ASSETS and method not in SAFE_METHODS):
        return RouteInfo("web_viewer_admin", Action.ADMIN, method, path)
    if sub in WEB_VIEWER_ASSETS and len(segments) > 2:
        return RouteInfo("ui_asset", _action_for_method(method, Action.VIEW), method, path,
                         carries_phi=method not in SAFE_METHODS)
    if sub in WEB_VIEWER_SERIES_ROUTES or sub == "instances":
        if len(segments) != 3:
            return RouteInfo("malformed", Action.ADMIN, method, path,
                             malformed="web viewer route with other than one id")
        if sub != "instances":
            return RouteInfo("web_viewer", Action.VIEW, method, path, level="series", resource_id=segments[2])
        image = WEB_VIEWER_IMAGE.match(segments[2])
        if image is None or not WEB_VIEWER_COMPRESSION.match(image.group(1)):
            return RouteInfo("malformed", Action.ADMIN, method, path,
                             malformed="web viewer image not named {compression}-{instance}_{frame}")
        return RouteInfo("web_viewer", Action.VIEW, method, path, level="instance", resource_id=image.group(2))
    return RouteInfo("web_viewer_admin", Action.ADMIN, method, path)


def _classify_wado(method: str, path: str, query: dict[str, str]) -> RouteInfo:
    # Query values as Orthanc hands them to the filter and to every plugin alike: not decoded.
    content_type = query.get("contentType", "").lower()
    action = Action.VIEW if content_type.startswith("image/") else Action.DOWNLOAD
    return RouteInfo("wado", action if method in SAFE_METHODS else Action.MODIFY, method, path,
                     level="instance", resource_id=query.get("objectUID") or None,
                     study_uid=query.get("studyUID") or None)


def _classify_dicomweb(method: str, path: str, segments: list[str], query: dict[str, str]) -> RouteInfo:
    rest = [s.lower() for s in segments[1:]]
    if len(rest) == 1 and rest[0] in ("studies", "series", "instances") and method in SAFE_METHODS:
        # QIDO searches over the whole server: the DICOMweb plugin answers them, so a caller
        # who is not an admin must name what they search for (see services/access.py), with keys
        # the gate reads exactly as the plugin does (policies/qido.py).
        search = read_query(query)
        return RouteInfo("dicomweb_search", Action.LIST, method, path, query=search.locating,
                         query_problem=search.problem, query_string=_query_string(query))
    if not rest or rest[0] != "studies":
        # /dicom-web/servers/... pushes and pulls through remote servers.
        return RouteInfo("dicomweb_admin", Action.ADMIN, method, path)
    study_uid = segments[2] if len(segments) > 2 else None
    if method not in SAFE_METHODS:
        # STOW-RS into one study stores annotations or key images in it; into none, admins only.
        action = Action.ANNOTATE if method == "POST" and len(rest) == 2 else _action_for_method(method, Action.VIEW)
        return RouteInfo("dicomweb" if study_uid else "dicomweb_admin", action if study_uid else Action.ADMIN,
                         method, path, level="study", study_uid=study_uid)
    last = rest[-1]
    if last in ("series", "instances"):
        # A search within the study (the plugin filters by the study in the path after the query's
        # keys, so the path wins); its keys are held to the same reading all the same.
        return RouteInfo("dicomweb", Action.LIST, method, path, level="study", resource_id=study_uid,
                         study_uid=study_uid, query_problem=read_query(query).problem,
                         query_string=_query_string(query))
    elif last in ("metadata", "rendered", "thumbnail") or "frames" in rest or "bulk" in rest:
        action = Action.VIEW
    else:
        action = Action.DOWNLOAD  # WADO-RS retrieve of whole DICOM objects
    return RouteInfo("dicomweb", action, method, path, level="study", resource_id=study_uid,
                     study_uid=study_uid)


def _query_string(query: dict[str, str]) -> str:
    """A search's query as received (what the audit records), bounded."""
    return "&".join(f"{key}={value}" for key, value in query.items())[:1000]
