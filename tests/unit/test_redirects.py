"""policies/redirects.py: only a plain path of this server is a place to go back to."""

from __future__ import annotations

import pytest

from plugin.policies.redirects import local_path

HOME = "/app/explorer.html"


@pytest.mark.parametrize("target", [
    "/app/explorer.html", "/ui/app/", "/app/explorer.html#study?uuid=abc", "/gate/mfa", "/a/b?c=d&e=f",
])
def test_plain_paths_of_this_server_are_kept(target):
    assert local_path(target, HOME) == target


@pytest.mark.parametrize(("target", "decoded"), [
    ("%2Fapp%2Fexplorer.html", "/app/explorer.html"),
    ("/app/explorer.html%3Fx%3D1", "/app/explorer.html?x=1"),
])
def test_encoded_paths_are_checked_and_sent_decoded(target, decoded):
    assert local_path(target, HOME) == decoded


@pytest.mark.parametrize("target", [
    None, "", "//evil.example/x", "///evil.example", "/\\evil.example", "\\\\evil.example", "/\t/evil.example",
    "/\n/evil.example", "/%09/evil.example", "%2F%2Fevil.example", "/%2Fevil.example", "/%5Cevil.example",
    "/%0d%0aSet-Cookie:%20x=y", "/a b", "/a\x7fb", "/caf\u00e9", "/\u3000/evil", "http://evil.example/",
    "https:/evil.example", "evil.example", "javascript:alert(1)", " /app", "/%252F%252Fevil.example",
    "/%25252525252F", "/\x00",
])
def test_anything_else_goes_home(target):
    assert local_path(target, HOME) == HOME
