"""Orthanc Explorer 2's routes the Gate owns (registered before OE2's, so they answer instead):
its configuration documents, built per caller (services/explorer2.py), and its app's HTML entry
page, which sends a browser without a session to sign in and back, and carries the Gate's script
for OE2 (plugin/static/oe2-extension.js: who is signed in, sign-out, what a refusal means)."""

from __future__ import annotations

import dataclasses

from plugin.errors import NotFound
from plugin.handlers.http import Request, Response
from plugin.handlers.shared import caller, ui_page_at
from plugin.policies.explorer2 import PRE_LOGIN
from plugin.services.explorer2 import Explorer2
from plugin.services.runtime import Runtime
from plugin.services.ui_pages import OE2_INDEX

APP = "/ui/app"
# OE2 answers every path of its app with this page, but for its files and its other pages, which
# it keeps (the Gate's route leaves them out, so OE2's own routes, registered after, take them).
APP_ROUTE = r"/ui/app/(?!assets/|customizable/|favicon\.ico$|token-landing\.html$|retrieve-and-view\.html$" \
            r"|inbox\.html$)(.*)"


def configuration(runtime: Runtime, request: Request) -> Response:
    principal = caller(runtime, request)
    return Response.json(_loaded(runtime).document(principal, runtime.clock()))


def pre_login_configuration(runtime: Runtime, request: Request) -> Response:
    caller(runtime, request)
    _loaded(runtime)
    return Response.json(PRE_LOGIN)


def _loaded(runtime: Runtime) -> Explorer2:
    if runtime.explorer2 is None or not runtime.explorer2.loaded():
        raise NotFound("Orthanc Explorer 2 is not loaded")
    return runtime.explorer2


def app_page(runtime: Runtime, request: Request, _route: str = "") -> Response:
    """OE2's one page, for every route of its app, served as the other UIs' entry pages are
    (pages.ui_page_at: a browser without a session goes to sign in and comes back here)."""
    if request.path == APP:
        # Orthanc hands "/ui/app/" over as "/ui/app": the way back must keep the slash, or the
        # page's relative links to its files would miss (at /ui/assets/...).
        request = dataclasses.replace(request, path=APP + "/")
    return ui_page_at(runtime, request, OE2_INDEX)
