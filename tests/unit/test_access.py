"""The access decision, as a table: (who, route) -> allowed?, with the reason the audit records."""

from __future__ import annotations

import pytest

from plugin.policies.access import decide
from plugin.policies.routes import classify
from plugin.policies.types import ANONYMOUS, Principal, Role
from tests.unit.test_routes import ROUTES

NON_ADMIN_ROLES = [r.value for r in Role if r is not Role.ADMIN]
ADMIN = Principal("root1", frozenset({"admin"}), "session")
ADMIN_MUST_CHANGE = Principal("admin", frozenset({"admin"}), "session", must_change_password=True)
ALL_NON_ADMIN = Principal("everyone", frozenset(NON_ADMIN_ROLES), "basic")
NO_ROLES = Principal("nobody", frozenset(), "api_key")

OWN_FAMILIES = {"root", "gate_public", "gate", "share"}
# Everything Orthanc itself serves, except its user interface's static files.
ORTHANC_FAMILIES = {family for *_, family, _action in ROUTES} - OWN_FAMILIES - {"ui_asset", "malformed"}


def _first_row_per_family() -> dict[str, tuple]:
    rows: dict[str, tuple] = {}
    for method, path, query, headers, family, _action in ROUTES:
        rows.setdefault(family, (method, path, query, headers))
    return rows


SAMPLE = _first_row_per_family()


def route_of(family: str):
    method, path, query, headers = SAMPLE[family]
    route = classify(method, path, query, headers)
    assert route.family == family
    return route


def member(role: str) -> Principal:
    return Principal(f"user-{role}", frozenset({role}), "session")


def test_the_samples_cover_every_orthanc_family():
    assert {"patients", "tools_find", "wado", "dicomweb", "webdav", "jobs", "unknown"} <= ORTHANC_FAMILIES


# -- admin ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path,query,headers,family,_action", ROUTES,
                         ids=[f"{r[0]} {r[1]!r}" for r in ROUTES])
def test_admin_is_allowed_everything_but_malformed_requests(method, path, query, headers, family, _action):
    decision = decide(ADMIN, classify(method, path, query, headers))
    assert decision.allowed == (family != "malformed")


def test_admin_reason_names_admin_on_orthanc_routes():
    assert decide(ADMIN, route_of("patients")).reason == "admin"


def test_admin_who_must_change_password_is_refused_orthanc_routes():
    decision = decide(ADMIN_MUST_CHANGE, route_of("patients"))
    assert not decision.allowed and "password" in decision.reason


@pytest.mark.parametrize("family", sorted(OWN_FAMILIES))
def test_admin_who_must_change_password_may_use_own_routes(family):
    assert decide(ADMIN_MUST_CHANGE, route_of(family)).allowed


# -- non-admin roles --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", NON_ADMIN_ROLES)
@pytest.mark.parametrize("family", sorted(ORTHANC_FAMILIES))
def test_non_admin_role_is_denied_orthanc_data_and_unknown_routes(role, family):
    decision = decide(member(role), route_of(family))
    assert not decision.allowed
    expected = "unknown route" if family == "unknown" else "no grant"
    assert expected in decision.reason


@pytest.mark.parametrize("family", sorted(ORTHANC_FAMILIES))
def test_holding_every_non_admin_role_at_once_grants_nothing(family):
    assert not decide(ALL_NON_ADMIN, route_of(family)).allowed


@pytest.mark.parametrize("family", sorted(ORTHANC_FAMILIES))
def test_user_without_roles_is_denied(family):
    assert not decide(NO_ROLES, route_of(family)).allowed


@pytest.mark.parametrize("role", NON_ADMIN_ROLES)
def test_ui_asset_read_is_allowed_for_signed_in_non_admin(role):
    decision = decide(member(role), classify("GET", "/app/explorer.html", {}, {}))
    assert decision.allowed and "interface" in decision.reason


@pytest.mark.parametrize("role", NON_ADMIN_ROLES)
def test_ui_asset_write_is_denied_for_non_admin(role):
    assert not decide(member(role), classify("POST", "/app/explorer.html", {}, {})).allowed


def test_ui_asset_is_denied_to_a_user_who_must_change_password():
    user = Principal("doc", frozenset({"radiologist"}), "session", must_change_password=True)
    assert not decide(user, classify("GET", "/ui/app/index.html", {}, {})).allowed


@pytest.mark.parametrize("role", NON_ADMIN_ROLES)
@pytest.mark.parametrize("family", sorted(OWN_FAMILIES))
def test_own_routes_are_left_to_their_handlers_for_non_admin(role, family):
    assert decide(member(role), route_of(family)).allowed


# -- anonymous --------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(ORTHANC_FAMILIES | {"ui_asset"}))
def test_anonymous_is_denied_everything_orthanc_serves(family):
    decision = decide(ANONYMOUS, route_of(family))
    assert not decision.allowed and "authentication" in decision.reason


@pytest.mark.parametrize("path", ["/", "/gate/health", "/gate/login", "/gate/static/gate.css"])
def test_public_routes_are_allowed_for_anonymous(path):
    decision = decide(ANONYMOUS, classify("GET", path, {}, {}))
    assert decision.allowed and decision.reason == "public route"


@pytest.mark.parametrize("path", ["/gate/api/me", "/gate/anything", "/share/tok"])
def test_own_routes_are_allowed_for_anonymous_and_left_to_their_handlers(path):
    decision = decide(ANONYMOUS, classify("GET", path, {}, {}))
    assert decision.allowed and "handler" in decision.reason


# -- malformed ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", [ANONYMOUS, ADMIN, member("radiologist")], ids=["anonymous", "admin", "doctor"])
@pytest.mark.parametrize("path", ["/gate/static/../../patients", "/app/./x", "/gate/login\n"])
def test_malformed_is_denied_for_everyone_even_when_it_looks_public(who, path):
    decision = decide(who, classify("GET", path, {}, {}))
    assert not decision.allowed and decision.reason.startswith("malformed request")
