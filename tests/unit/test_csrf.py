"""The CSRF rule: which state-changing requests may be trusted not to be forged by another site."""

from __future__ import annotations

import pytest

from plugin.policies.csrf import csrf_ok, same_origin

HOST = "pacs.example.org:8042"
SAME = f"https://{HOST}"
EVIL = "https://evil.example.com"
TOKEN = "s3ssion-csrf-token"
UNSAFE = ["POST", "PUT", "DELETE", "PROPPATCH", "MKCOL"]
SAFE = ["GET", "HEAD", "OPTIONS", "PROPFIND"]


def headers(**extra: str) -> dict[str, str]:
    return {"host": HOST, **{k.replace("_", "-"): v for k, v in extra.items()}}


# -- session cookie ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", UNSAFE)
def test_session_unsafe_without_token_or_origin_is_refused(method):
    assert not csrf_ok(method, "session", headers(), TOKEN)


def test_session_with_the_right_token_header_is_allowed():
    assert csrf_ok("POST", "session", headers(x_csrf_token=TOKEN), TOKEN)


def test_session_with_the_right_form_token_is_allowed():
    assert csrf_ok("POST", "session", headers(), TOKEN, form_token=TOKEN)


def test_session_with_a_wrong_token_and_no_origin_is_refused():
    assert not csrf_ok("POST", "session", headers(x_csrf_token="guess"), TOKEN)
    assert not csrf_ok("POST", "session", headers(), TOKEN, form_token="guess")


def test_session_without_a_csrf_secret_does_not_accept_an_empty_token():
    assert not csrf_ok("POST", "session", headers(x_csrf_token=""), None, form_token="")
    assert not csrf_ok("POST", "session", headers(x_csrf_token=""), "", form_token="")


def test_session_right_token_overrides_cross_site_origin():
    # The token proves the page was ours; a cross-site page cannot read it.
    assert csrf_ok("POST", "session", headers(x_csrf_token=TOKEN, origin=EVIL), TOKEN)


def test_session_same_origin_is_allowed_without_token():
    assert csrf_ok("POST", "session", headers(origin=SAME), TOKEN)


def test_session_same_origin_referer_is_allowed_without_token():
    assert csrf_ok("DELETE", "session", headers(referer=f"{SAME}/app/explorer.html#patient"), TOKEN)


def test_session_cross_site_origin_is_refused():
    assert not csrf_ok("POST", "session", headers(origin=EVIL), TOKEN)


def test_session_cross_site_referer_is_refused():
    assert not csrf_ok("POST", "session", headers(referer=f"{EVIL}/page"), TOKEN)


def test_session_cross_site_origin_wins_over_same_origin_referer():
    assert not csrf_ok("POST", "session", headers(origin=EVIL, referer=f"{SAME}/x"), TOKEN)


def test_session_null_origin_is_refused():
    assert not csrf_ok("POST", "session", headers(origin="null"), TOKEN)


def test_session_same_host_other_port_is_refused():
    assert not csrf_ok("POST", "session", headers(origin="https://pacs.example.org:9999"), TOKEN)


def test_session_origin_with_userinfo_trick_is_refused():
    assert not csrf_ok("POST", "session", headers(origin=f"https://evil.com@{HOST}"), TOKEN)


# -- Basic --------------------------------------------------------------------------------------------


def test_basic_with_cross_site_origin_is_refused():
    assert not csrf_ok("POST", "basic", headers(origin=EVIL), None)


def test_basic_with_cross_site_referer_is_refused():
    assert not csrf_ok("PUT", "basic", headers(referer=f"{EVIL}/form.html"), None)


def test_basic_without_origin_is_allowed():
    assert csrf_ok("POST", "basic", headers(), None)


def test_basic_with_same_origin_is_allowed():
    assert csrf_ok("DELETE", "basic", headers(origin=SAME), None)


# -- API keys, anonymous, safe methods -----------------------------------------------------------------


@pytest.mark.parametrize("extra", [{}, {"origin": EVIL}, {"referer": f"{EVIL}/x"}, {"origin": "null"}])
def test_api_key_is_always_allowed(extra):
    assert csrf_ok("POST", "api_key", headers(**extra), None)


@pytest.mark.parametrize("via", ["session", "basic", "api_key", "anonymous"])
@pytest.mark.parametrize("method", SAFE)
def test_safe_methods_are_always_allowed(method, via):
    assert csrf_ok(method, via, headers(origin=EVIL), TOKEN)


# -- same_origin on its own ----------------------------------------------------------------------------


def test_same_origin_compares_host_case_insensitively():
    assert same_origin({"host": "PACS.example.org:8042", "origin": "https://pacs.EXAMPLE.org:8042"})


def test_same_origin_needs_a_host_header():
    assert not same_origin({"origin": SAME})


def test_same_origin_needs_origin_or_referer():
    assert not same_origin({"host": HOST})
