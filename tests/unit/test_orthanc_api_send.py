"""plugin/orthanc_api.py against a fake `orthanc` module: how Responses become output calls."""

from __future__ import annotations

import gc
import importlib
import json
import re
import sys
import types
import weakref
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plugin
from plugin.handlers.http import Response


class FakeHttpMethod:
    GET, POST, PUT, DELETE = 1, 2, 3, 4


class FakeChangeType:  # values of Orthanc's OrthancPluginChangeType
    DELETED = 1
    NEW_SERIES = 5
    NEW_STUDY = 6
    STABLE_SERIES = 8
    STABLE_STUDY = 9
    ORTHANC_STARTED = 10
    ORTHANC_STOPPED = 11


def fake_orthanc_module(version: str = "1.10.1") -> types.ModuleType:
    fake = types.ModuleType("orthanc")
    fake.RestApiGet = lambda uri: json.dumps({"Version": version}).encode() if uri == "/system" else b"{}"
    fake.HttpMethod = FakeHttpMethod
    fake.ChangeType = FakeChangeType
    fake.registered = {}
    fake.GetConfiguration = lambda: json.dumps({"Name": "test", "Gate": {"HomePage": "/ui/app/"}})
    for name in ("LogInfo", "LogWarning", "LogError", "RegisterIncomingHttpRequestFilter",
                 "RegisterReceivedInstanceCallback", "ExtendOrthancExplorer"):
        setattr(fake, name, lambda *args: None)
    fake.RegisterRestCallback = lambda regex, callback: fake.registered.setdefault("routes", []).append(regex)
    fake.RegisterOnChangeCallback = lambda callback: fake.registered.__setitem__("on_change", callback)
    return fake


@pytest.fixture
def api(request: pytest.FixtureRequest) -> Iterator[types.ModuleType]:
    """Import plugin.orthanc_api with a fake `orthanc` (Orthanc 1.10.1 unless the test is
    parametrised indirectly with another version); put sys.modules back afterwards."""
    saved = {name: sys.modules.get(name) for name in ("orthanc", "plugin.orthanc_api")}
    had_attribute = hasattr(plugin, "orthanc_api")
    saved_attribute = getattr(plugin, "orthanc_api", None)
    sys.modules["orthanc"] = fake_orthanc_module(getattr(request, "param", "1.10.1"))
    sys.modules.pop("plugin.orthanc_api", None)
    try:
        yield importlib.import_module("plugin.orthanc_api")
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        if had_attribute:
            plugin.orthanc_api = saved_attribute
        elif hasattr(plugin, "orthanc_api"):
            del plugin.orthanc_api


class Output:
    """Records the calls made on Orthanc's output object (its method names; plugin 4.2+ signatures)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def AnswerBuffer(self, body, content_type):
        self.calls.append(("AnswerBuffer", body, content_type))

    def SendUnauthorized(self, realm):
        self.calls.append(("SendUnauthorized", realm))

    def SendMethodNotAllowed(self, allowed):
        self.calls.append(("SendMethodNotAllowed", allowed))

    def SetHttpHeader(self, name, value):
        self.calls.append(("SetHttpHeader", name, value))

    def SendHttpStatusCode(self, status):
        self.calls.append(("SendHttpStatusCode", status))

    def SendHttpStatus(self, status, body):
        self.calls.append(("SendHttpStatus", status, body))


class OldOutput(Output):
    """Python plugin before 4.2: SendHttpStatus(status, body: str, size)."""

    def SendHttpStatus(self, status, body, size):
        if not isinstance(body, str):
            raise TypeError("body must be str")
        self.calls.append(("SendHttpStatus", status, body, size))


# Every answer of the plugin carries these first (handlers/http.py ANSWER_HEADERS).
NO_STORE = ("SetHttpHeader", "Cache-Control", "no-store")
NOSNIFF = ("SetHttpHeader", "X-Content-Type-Options", "nosniff")


def names(output: Output) -> list[str]:
    return [call[0] for call in output.calls]


# -- send -----------------------------------------------------------------------------------------


def test_200_answers_the_buffer_after_its_headers(api):
    output = Output()
    api.send(output, Response(200, b"body", "text/css", {"Cache-Control": "max-age=3600"}))
    assert output.calls == [("SetHttpHeader", "Cache-Control", "max-age=3600"), NOSNIFF,
                            ("AnswerBuffer", b"body", "text/css")]


def test_200_json_keeps_its_content_type(api):
    output = Output()
    api.send(output, Response.json({"ok": True}))
    assert output.calls == [NO_STORE, NOSNIFF, ("AnswerBuffer", b'{"ok": true}', "application/json")]


def test_401_carries_the_challenge_and_a_json_body(api):
    output = Output()
    api.send(output, Response(401, b'{"error": "unauthenticated"}', "application/json", challenge="Orthanc Gate"))
    assert ("SetHttpHeader", "WWW-Authenticate", 'Basic realm="Orthanc Gate", charset="UTF-8"') in output.calls
    assert output.calls[-1] == ("SendHttpStatus", 401, b'{"error": "unauthenticated"}')
    assert "SendUnauthorized" not in names(output)


def test_405_names_the_allowed_methods(api):
    output = Output()
    api.send(output, Response(405, headers={"Allow": "GET,POST"}))
    assert output.calls == [("SendMethodNotAllowed", "GET,POST")]


def test_303_sets_location_and_sends_the_status_code(api):
    output = Output()
    api.send(output, Response.redirect("/gate/login?next=/app/explorer.html", {"Set-Cookie": "gate_session=x"}))
    assert ("SetHttpHeader", "Location", "/gate/login?next=/app/explorer.html") in output.calls
    assert ("SetHttpHeader", "Set-Cookie", "gate_session=x") in output.calls
    assert output.calls[-1] == ("SendHttpStatusCode", 303)
    assert "AnswerBuffer" not in names(output) and "SendHttpStatus" not in names(output)


def test_404_uses_the_two_argument_form(api):
    output = Output()
    api.send(output, Response.json({"error": "not_found"}, 404))
    assert output.calls == [NO_STORE, NOSNIFF, ("SetHttpHeader", "Content-Type", "application/json"),
                            ("SendHttpStatus", 404, b'{"error": "not_found"}')]


def test_404_falls_back_to_the_three_argument_form_on_old_plugins(api):
    output = OldOutput()
    body = "pas trouvé"  # the size is in bytes, not characters
    api.send(output, Response(404, body.encode("utf-8"), "text/plain; charset=utf-8"))
    assert output.calls == [NO_STORE, NOSNIFF, ("SetHttpHeader", "Content-Type", "text/plain; charset=utf-8"),
                            ("SendHttpStatus", 404, body, len(body.encode("utf-8")))]


def test_503_carries_the_security_headers_of_an_html_page(api):
    output = Output()
    api.send(output, Response.html("<p>down</p>", 503))
    assert ("SetHttpHeader", "X-Frame-Options", "DENY") in output.calls
    assert output.calls[-1] == ("SendHttpStatus", 503, b"<p>down</p>")


# -- methods, configuration, stop -------------------------------------------------------------------


@pytest.mark.parametrize(("method", "name"), [(1, "GET"), (2, "POST"), (3, "PUT"), (4, "DELETE"), (99, "UNKNOWN"),
                                              ("get", "GET"), ("Delete", "DELETE"), ("PROPFIND", "PROPFIND")])
def test_method_name(api, method, name):
    assert api.method_name(method) == name


def test_method_name_accepts_int_like_enums(api):
    class Method:
        def __int__(self) -> int:
            return 3

    assert api.method_name(Method()) == "PUT"


def test_configuration_is_parsed_from_orthanc(api):
    assert api.configuration()["Gate"] == {"HomePage": "/ui/app/"}


def test_each_change_reaches_its_own_callback_and_others_none(api, monkeypatch):
    monkeypatch.setattr(api.atexit, "register", lambda function: function)
    seen: list[tuple] = []
    api.register_on_change(lambda: seen.append(("stop",)), lambda study: seen.append(("new", study)),
                           lambda: seen.append(("deleted",)), lambda: seen.append(("started",)),
                           lambda: seen.append(("stable",)))
    on_change = sys.modules["orthanc"].registered["on_change"]
    on_change(FakeChangeType.NEW_SERIES, 2, "series-1")
    on_change(FakeChangeType.STABLE_SERIES, 2, "series-1")
    assert seen == []
    on_change(FakeChangeType.STABLE_STUDY, 1, "x")
    on_change(FakeChangeType.ORTHANC_STARTED, 0, "")
    on_change(FakeChangeType.NEW_STUDY, 1, "study-1")
    on_change(FakeChangeType.DELETED, 2, "series-1")
    on_change(FakeChangeType.ORTHANC_STOPPED, 0, "")
    assert seen == [("stable",), ("started",), ("new", "study-1"), ("deleted",), ("stop",)]


def test_every_registered_callback_stays_referenced(api, monkeypatch):
    # Python plugin 4.3+ (5.0 on Debian 13) drops its reference to REST callbacks without the GIL
    # when Orthanc stops: a callback nothing else holds (a closure) would be freed there, and
    # Orthanc dies with SIGSEGV. The fake orthanc here keeps no reference, like that finaliser.
    monkeypatch.setattr(api.atexit, "register", lambda function: function)

    def closure():
        def callback(*args, **kwargs):
            return None
        return callback

    refs = []
    for register in (lambda cb: api.register_route("/x", cb), api.register_filter,
                     api.register_received_instance):
        cb = closure()
        refs.append(weakref.ref(cb))
        register(cb)
        del cb
    api.register_on_change(closure(), closure(), closure(), closure(), closure())
    gc.collect()
    assert all(ref() is not None for ref in refs)
    assert sys.modules["orthanc"].registered["on_change"] in api._registered


def test_the_stop_callback_runs_at_interpreter_exit_too(api, monkeypatch):
    at_exit: list = []
    monkeypatch.setattr(api.atexit, "register", at_exit.append)
    on_stop = lambda: None  # noqa: E731
    api.register_on_change(on_stop, lambda study: None, lambda: None, lambda: None, lambda: None)
    assert at_exit == [on_stop]


def route_table(api: types.ModuleType) -> tuple[object, list[tuple]]:
    """A RouteTable of three overlapping routes; each call it dispatches is recorded with its route."""
    answered: list[tuple] = []

    def route(name: str):  # noqa: ANN202
        return lambda output, uri, **request: answered.append((name, uri, request["groups"], request["method"]))

    table = api.RouteTable([("/gate/api/users/import", route("import")), ("/gate/api/users/([^/]+)", route("user")),
                            ("/ohif/(.*)", route("ohif")), ("/gate/(.*)", route("catch-all"))])
    return table, answered


def test_the_first_route_that_matches_answers_with_its_own_groups(api):
    table, answered = route_table(api)
    for uri in ("/gate/api/users/import", "/gate/api/users/bob", "/gate/api/users/bob/sessions", "/ohif/a\nb"):
        table(Output(), uri, method="GET", groups=("whatever", "Orthanc", "matched"))
    assert answered == [("import", "/gate/api/users/import", (), "GET"),
                        ("user", "/gate/api/users/bob", ("bob",), "GET"),
                        ("catch-all", "/gate/api/users/bob/sessions", ("api/users/bob/sessions",), "GET"),
                        ("ohif", "/ohif/a\nb", ("a\nb",), "GET")]  # boost's "." matches a newline too


@pytest.mark.parametrize("uri", ["/", "/gate", "/gate/", "/gate/api/users/bob", "/ohif/", "/ohif", "/instances/x/file",
                                 "/patients", "//gate/x", "gate/x", "/ui/app/x", "/ui/app/favicon.ico",
                                 "/ui/app/favicon.ico\nx"])
def test_orthanc_is_given_one_regex_matching_exactly_what_some_route_does(api, uri):
    table, _ = route_table(api)
    regexes = (*table.regexes, r"/ui/app/(?!assets/|favicon\.ico$)(.*)")
    registered = sys.modules["orthanc"].registered
    api.register_routes([(regex, lambda *args, **kwargs: None) for regex in regexes])
    [regex] = registered["routes"]
    assert bool(re.fullmatch(regex, uri, api.BOOST_PERL)) == any(re.fullmatch(r, uri, api.BOOST_PERL) for r in regexes)


def test_anchors_match_at_a_newline_as_in_boost(api):
    answered: list[str] = []
    table = api.RouteTable([(r"/ui/app/(?!favicon\.ico$)(.*)", lambda output, uri, **request: answered.append(uri)),
                            ("/ui/(.*)", lambda output, uri, **request: answered.append("other"))])
    table(Output(), "/ui/app/favicon.ico\nx", method="GET")
    table(Output(), "/ui/app/page", method="GET")
    assert answered == ["other", "/ui/app/page"]


def real_route_regexes() -> tuple[str, ...]:
    from plugin.handlers.routes import DICOMWEB_SEARCH_ROUTES, ROUTES
    return tuple(regex for regex, _ in (*DICOMWEB_SEARCH_ROUTES, *ROUTES))


def uris_near_the_routes() -> st.SearchStrategy[str]:
    """URIs each route matches, and the same with a character added, removed or changed (a newline too)."""
    matching = st.sampled_from(real_route_regexes()).flatmap(
        lambda regex: st.from_regex(re.compile(regex, re.DOTALL), fullmatch=True))
    extra = st.sampled_from(["\n", "/", ".", "x", "$", "%", "assets/", "favicon.ico", "\x00"])

    def mutate(uri: str, where: int, what: str, how: int) -> str:
        where = where % (len(uri) + 1)
        before, after = uri[:where], uri[where:]
        return (before + what + after, before + after[1:], before + what + after[1:])[how]
    mutated = st.builds(mutate, matching, st.integers(0, 200), extra, st.integers(0, 2))
    return st.one_of(matching, mutated, st.text(max_size=30).map(lambda text: "/" + text))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(uri=uris_near_the_routes())
def test_the_gates_own_table_is_one_regex_that_matches_what_its_routes_do(api, uri):
    """The real routes, not a toy list: the regex Orthanc is given matches a URI iff one route does,
    and the URI reaches the first of them, as Orthanc's own route-by-route order would have it."""
    regexes = real_route_regexes()
    answered: list[str] = []
    table = api.RouteTable([(regex, lambda output, uri, regex=regex, **request: answered.append(regex))
                            for regex in regexes])
    first = next((regex for regex in regexes if re.fullmatch(regex, uri, api.BOOST_PERL)), None)
    assert bool(re.fullmatch(table.regex, uri, api.BOOST_PERL)) == (first is not None)
    if first is not None:
        table(Output(), uri, method="GET")
        assert answered == [first]


def test_a_route_regex_must_start_with_a_slash(api):
    with pytest.raises(ValueError, match="start with /"):
        api.RouteTable([("/gate/x", None), ("share/(.*)", None)])


def test_fixture_leaves_no_fake_orthanc_behind():
    assert "orthanc" not in sys.modules or not hasattr(sys.modules["orthanc"], "registered")


@pytest.mark.parametrize("api", ["1.12.2", "1.12.7", "mainline"], indirect=True)
def test_from_orthanc_1_12_2_the_core_labels_status_bodies_so_we_do_not(api):
    output = Output()
    api.send(output, Response.json({"error": "not_found"}, 404))
    assert output.calls == [NO_STORE, NOSNIFF, ("SendHttpStatus", 404, b'{"error": "not_found"}')]


@pytest.mark.parametrize("api", ["1.10.1", "1.12.1"], indirect=True)
def test_before_orthanc_1_12_2_we_label_status_bodies(api):
    output = Output()
    api.send(output, Response.json({"error": "not_found"}, 404))
    assert output.calls[2] == ("SetHttpHeader", "Content-Type", "application/json")


@pytest.mark.parametrize("api", ["1.12.2", "mainline"], indirect=True)
def test_from_orthanc_1_12_2_an_error_page_goes_as_its_readable_text(api):
    """The core sends a status's body as text/plain: a share link's 410 page is sent as its words
    (and the practice's contacts), not as markup a browser would show raw."""
    page = ('<!doctype html><html lang="af"><head><title>Weg</title><style>p{x:y}</style></head><body>'
            '<h1>Hierdie skakel werk nie meer nie</h1><p>Kontak die praktyk &amp; vra vir \n  \'n nuwe een.</p>'
            '<footer><a href="tel:+27315550100">+27 31 555 0100</a></footer><script>x()</script></body></html>')
    output = Output()
    api.send(output, Response.html(page, 410))
    assert not any(call[:2] == ("SetHttpHeader", "Content-Type") for call in output.calls)
    text = b"Hierdie skakel werk nie meer nie\nKontak die praktyk & vra vir 'n nuwe een.\n+27 31 555 0100\n"
    assert output.calls[-1] == ("SendHttpStatus", 410, text)


@pytest.mark.parametrize("api", ["1.10.1"], indirect=True)
def test_before_orthanc_1_12_2_an_error_page_stays_html(api):
    output = Output()
    api.send(output, Response.html("<p>gone</p>", 410))
    assert ("SetHttpHeader", "Content-Type", "text/html; charset=utf-8") in output.calls
    assert output.calls[-1] == ("SendHttpStatus", 410, b"<p>gone</p>")


# -- errors of Orthanc's core become the status the core itself would answer ----------------------------


class FakeOrthancException(Exception):
    """The Python plugin's orthanc.OrthancException: args (error code, description)."""


@pytest.mark.parametrize(("code", "status"), [
    (2, 501),  # NotImplemented
    (3, 400),  # ParameterOutOfRange (a Limit or Since out of range)
    (5, 400),  # BadParameterType
    (6, 400),  # BadSequenceOfCalls
    (7, 404),  # InexistentItem
    (8, 400),  # BadRequest
    (12, 400),  # UriSyntax
    (13, 404),  # InexistentFile
    (15, 400),  # BadFileFormat
    (17, 404),  # UnknownResource
    (21, 404),  # InexistentTag
    (27, 400),  # UnknownDicomTag
    (28, 400),  # BadJson
    (29, 401),  # Unauthorized
    (33, 400),  # EmptyRequest
    (34, 406),  # NotAcceptable
    (41, 416),  # BadRange
    (1, 500), (11, 500), (9999, 500),  # Plugin, Database, and codes without a status of their own
])
@pytest.mark.parametrize("call", ["get", "post"])
def test_a_core_error_carries_the_status_orthanc_answers_it_with(api, monkeypatch, code, status, call):
    from plugin.services.core import CoreError

    def refuse(*_args):
        raise FakeOrthancException(code, "described by Orthanc")

    monkeypatch.setattr(api.orthanc, "OrthancException", FakeOrthancException, raising=False)
    monkeypatch.setattr(api.orthanc, "RestApiGet", refuse)
    monkeypatch.setattr(api.orthanc, "RestApiPost", refuse, raising=False)
    core = api.CoreApi()
    with pytest.raises(CoreError) as raised:
        core.get("/studies/x") if call == "get" else core.post("/tools/find", "{}")
    assert (raised.value.status, raised.value.message) == (status, "described by Orthanc")


def test_a_core_error_without_a_code_is_a_500(api, monkeypatch):
    from plugin.services.core import CoreError

    def refuse(*_args):
        raise FakeOrthancException()

    monkeypatch.setattr(api.orthanc, "OrthancException", FakeOrthancException, raising=False)
    monkeypatch.setattr(api.orthanc, "RestApiGet", refuse)
    with pytest.raises(CoreError) as raised:
        api.CoreApi().get("/x")
    assert (raised.value.status, raised.value.message) == (500, "error in Orthanc")
