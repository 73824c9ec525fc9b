"""Plain HTTP values for handlers: request bodies, response helpers, the error-to-HTTP mapping."""

from __future__ import annotations

import json

import pytest

from plugin.errors import BadRequest, Conflict, Forbidden, NotFound, StoreUnavailable, Unauthenticated
from plugin.handlers.http import (
    SECURITY_HEADERS,
    BadBody,
    Request,
    Response,
    error_response,
    is_browser_session,
    sentence,
)


def request(body: bytes, content_type: str = "application/x-www-form-urlencoded", **headers: str) -> Request:
    return Request("POST", "/gate/login", headers={"content-type": content_type, **headers}, body=body)


def test_form_reads_urlencoded_bodies_keeping_blanks_and_the_first_value():
    form = request(b"username=dr+nkosi&password=p%26ss&next=&username=second").form()
    assert form == {"username": "dr nkosi", "password": "p&ss", "next": ""}


def test_form_reads_json_objects_turning_other_values_into_json():
    form = request(json.dumps({"username": "drnkosi", "roles": ["admin"], "n": 3}).encode(),
                   "application/json; charset=utf-8").form()
    assert form == {"username": "drnkosi", "roles": '["admin"]', "n": "3"}


def test_empty_json_body_is_an_empty_form():
    assert request(b"", "application/json").form() == {}


@pytest.mark.parametrize(("body", "content_type", "message"), [
    (b"\xff\xfe", "application/x-www-form-urlencoded", "not UTF-8"),
    (b"{not json", "application/json", "not valid JSON"),
    (b'["a", "b"]', "application/json", "JSON object"),
])
def test_bad_bodies_are_a_400(body, content_type, message):
    with pytest.raises(BadBody, match=message) as raised:
        request(body, content_type).form()
    assert raised.value.status == 400


@pytest.mark.parametrize(("headers", "expected"), [
    ({"content-type": "application/json"}, True),
    ({"accept": "text/html, application/json;q=0.9"}, True),
    ({"content-type": "application/x-www-form-urlencoded", "accept": "text/html"}, False),
    ({}, False),
])
def test_wants_json(headers, expected):
    assert Request("GET", "/", headers=headers).wants_json is expected


def test_html_responses_carry_the_security_headers_and_may_add_their_own():
    response = Response.html("<p>hi</p>", headers={"Set-Cookie": "a=b"})
    assert response.body == b"<p>hi</p>" and response.content_type.startswith("text/html")
    assert all(response.headers[k] == v for k, v in SECURITY_HEADERS.items())
    assert response.headers["Set-Cookie"] == "a=b"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_redirect_is_an_uncached_303():
    response = Response.redirect("/gate/login", {"Set-Cookie": "gate_session=; Max-Age=0"})
    assert response.status == 303
    assert response.headers == {"Location": "/gate/login", "Cache-Control": "no-store",
                                "Set-Cookie": "gate_session=; Max-Age=0"}


def test_json_response_copies_its_headers():
    headers = {"X-A": "1"}
    response = Response.json({"a": 1}, 201, headers)
    headers["X-B"] = "2"
    assert (response.status, json.loads(response.body), response.headers) == (201, {"a": 1}, {"X-A": "1"})


def test_unauthenticated_becomes_a_401_challenge_with_a_json_body():
    response = error_response(Unauthenticated("sign in first"))
    assert (response.status, response.challenge) == (401, "Orthanc Gate")
    assert json.loads(response.body) == {"error": "unauthenticated", "message": "Sign in first"}


@pytest.mark.parametrize(("headers", "browser"), [
    ({}, False),
    ({"authorization": "Basic eDp5"}, False),
    ({"cookie": "other=1"}, False),
    ({"cookie": "a=1; gate_session=ended"}, True),  # a browser's session, perhaps one that ended
    ({"x-requested-with": "XMLHttpRequest"}, True),  # a page's script
])
def test_a_browsers_session_gets_its_401_without_a_password_prompt(headers, browser):
    assert is_browser_session(headers) is browser
    response = error_response(Unauthenticated("sign in first"), is_browser_session(headers))
    assert response.status == 401 and (response.challenge is None) is browser


@pytest.mark.parametrize(("error", "status", "code"), [
    (BadRequest("bad"), 400, "bad_request"),
    (Forbidden("no"), 403, "forbidden"),
    (NotFound("no such route"), 404, "not_found"),
    (Conflict("exists"), 409, "conflict"),
    (StoreUnavailable("store unavailable: disk full"), 503, "store_unavailable"),
])
def test_typed_errors_map_to_status_code_and_message(error, status, code):
    response = error_response(error)
    assert response.status == status and response.content_type == "application/json"
    assert json.loads(response.body) == {"error": code, "message": error.message[:1].upper() + error.message[1:]}


@pytest.mark.parametrize(("written", "shown"), [
    ("no such route", "No such route"),
    ("Already a sentence.", "Already a sentence."),
    ("patient_id must be a DICOM identifier", "patient_id must be a DICOM identifier"),  # a field's name
    ("/gate/password is where to go", "/gate/password is where to go"),
    ('"hpcsa_number": bad', '"hpcsa_number": bad'),
    ("", ""),
])
def test_every_error_is_shown_as_a_sentence_unless_it_starts_with_a_name(written, shown):
    assert sentence(written) == shown
    assert json.loads(error_response(BadRequest(written)).body)["message"] == shown
