"""The routes the plugin registers (handlers/routes.py) and what the classifier (policies/routes.py)
says the plugin answers agree, both ways:

- every request the classifier marks as answered by the plugin (`own_route`: it authorises itself)
  or trimmed by it (`trimmed`: the plugin answers with only the caller's part) reaches the plugin's
  route (its handler for the method, or the plugin's 405); else the core would answer it,
  unchecked or untrimmed;
- every route and method the plugin registers is classified as its own, or trimmed, or is one of
  the few the plugin answers after the gate decided as it decides for the core (GATE_DECIDED), and
  the route of a trimmed family is never one the gate lets through unchecked.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugin.handlers.routes import DICOMWEB_SEARCH_ROUTES, ROUTES
from plugin.policies.qido import trimmed_search
from plugin.policies.routes import classify
from tests.unit.test_routes import ROUTES as CLASSIFIED

# Python's reading of Orthanc's (boost's) route regexes, as orthanc_api.RouteTable reads them.
BOOST_PERL = re.DOTALL | re.MULTILINE
TABLE = (*DICOMWEB_SEARCH_ROUTES, *ROUTES)
TABLE_OF = dict(TABLE)
# Registered routes the gate decides as it would for the core (the handler then does what the core
# or the DICOMweb plugin would): deleting a patient (the route's GET is trimmed), an admin's
# restart, STOW-RS (the uploads rule), the searches within one study (the study's grant), and the
# OHIF viewer's files (signed-in callers; its pages, under the same route, are the plugin's own).
GATE_DECIDED = {("DELETE", "/patients/([^/]+)"), ("POST", "/tools/reset"), ("POST", "/dicom-web/studies"),
                ("GET", "/dicom-web/studies/([^/]*)/series"), ("GET", "/dicom-web/studies/([^/]*)/instances"),
                ("GET", "/dicom-web/studies/([^/]*)/series/([^/]*)/instances"), ("GET", "/ohif/(.*)")}


def route_for(path: str) -> tuple[str, dict] | None:
    """The route of the plugin's table this path reaches (the first that matches), if any."""
    for regex, handlers in TABLE:
        if re.fullmatch(regex, path, BOOST_PERL):
            return regex, handlers
    return None


@pytest.mark.parametrize("method, path, query, headers, family, action", CLASSIFIED)
def test_whatever_the_classifier_gives_the_plugin_reaches_a_plugin_handler(method, path, query, headers, family,
                                                                          action):
    route = classify(method, path, query, headers)
    if not (route.own_route or route.trimmed):
        return
    if route_for(route.path) is None:
        # The classifier reads a route's name in any case (to refuse disguises); Orthanc's own
        # routes are case-sensitive, so a spelling the plugin does not answer, nobody does (404).
        assert route.path != route.path.lower() and route_for(route.path.lower()) is not None, \
            f"{method} {path} ({route.family}) reaches the core"


def registered() -> list[tuple[str, str]]:
    return [(method, regex) for regex, handlers in TABLE for method in handlers]


def paths_of(regex: str) -> st.SearchStrategy[str]:
    """Plain paths a route's regex matches (what a client sends as a path: printable, no dot segments, no
    query or fragment)."""
    return st.from_regex(re.compile(regex, re.DOTALL), fullmatch=True).filter(
        lambda path: path.isprintable() and "//" not in path and "/./" not in path and "/../" not in path
        and not path.endswith(("/.", "/..")) and "%" not in path and "\\" not in path and "?" not in path
        and "#" not in path)


@pytest.mark.parametrize("method, regex", registered())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.filter_too_much])
@given(data=st.data())
def test_every_registered_route_is_the_plugins_in_the_classifiers_eyes(method, regex, data):
    path = data.draw(paths_of(regex))
    if route_for(path)[0] != regex:
        return  # an earlier route of the table takes this path
    route = classify(method, path, {}, {})
    if route.malformed:
        return  # refused before anyone answers
    if route.family == "dicomweb_search" and (regex, TABLE_OF[regex]) in DICOMWEB_SEARCH_ROUTES:
        route = trimmed_search(route)  # as the gate reads them once these routes are registered (entry.py)
    assert route.own_route or route.trimmed or (method, regex) in GATE_DECIDED, \
        f"{method} {path}: registered, but classified {route.family} as the core's"


def test_the_gate_decided_exceptions_are_registered_routes():
    assert GATE_DECIDED <= set(registered())
