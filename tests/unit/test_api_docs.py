"""docs/api.md documents every JSON route the plugin answers under /gate/ (handlers/routes.py), each
method with a heading of its own ("### GET /gate/api/users/{username}"): a new route without its
documentation fails here."""

from __future__ import annotations

import re
from pathlib import Path

from plugin.handlers.routes import ROUTES

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
# The /gate/ routes that answer JSON besides /gate/api/ (the rest of /gate/ are pages, listed there too).
JSON_PAGES = {"/gate/login": {"POST"}, "/gate/logout": {"POST"}, "/gate/password": {"POST"}, "/gate/mfa": {"POST"},
              "/gate/health": {"GET"}}


def spelled(regex: str) -> str:
    """A route's regex as the docs spell its path: each group a {placeholder}."""
    return re.sub(r"\([^)]*\)", "{}", regex).replace("\\.", ".")


def documented() -> set[tuple[str, str]]:
    headings = re.findall(r"^### ([A-Z]+) (\S+)$", DOC.read_text(), re.M)
    return {(method, re.sub(r"\{[^}]*\}", "{}", path)) for method, path in headings}


def json_routes() -> set[tuple[str, str]]:
    routes = set()
    for regex, handlers in ROUTES:
        if regex.startswith("/gate/api/"):
            routes |= {(method, spelled(regex)) for method in handlers}
        elif regex in JSON_PAGES:
            routes |= {(method, regex) for method in JSON_PAGES[regex]}
    return routes


def test_every_json_route_has_its_heading():
    missing = json_routes() - documented()
    assert not missing, f"not in docs/api.md: {sorted(missing)}"


def test_the_docs_name_no_route_that_does_not_exist():
    known = json_routes() | {("PUT", "/auth/tokens/{}")}
    assert documented() - known == set()


def test_each_documented_route_has_an_example_or_says_what_it_answers():
    sections = re.split(r"^### ", DOC.read_text(), flags=re.M)[1:]
    for section in sections:
        assert "```http" in section or "Answers" in section or "answered" in section, section.splitlines()[0]
