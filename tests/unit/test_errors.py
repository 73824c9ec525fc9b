"""The texts of the errors users see start with a capital where they are written (issue 15), not only
where handlers/http.sentence mends them on the way out: a scan of plugin/ for every error made with a
literal text, so a new lower-case one fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from plugin.errors import unavailable_message
from plugin.handlers.http import sentence

PLUGIN = Path(__file__).resolve().parents[2] / "plugin"
# Errors whose text a user reads: GateError's family, and the validation errors of policies/ whose
# text becomes a BadRequest's (policies/doctors.Invalid and its subclasses).
ROOTS = frozenset({"GateError", "Invalid"})


def _error_classes(trees: dict[Path, ast.Module]) -> set[str]:
    bases: dict[str, set[str]] = {}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases[node.name] = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
    found = set(ROOTS)
    while grown := {name for name, of in bases.items() if name not in found and of & found}:
        found |= grown
    return found


def _leading_texts(node: ast.expr | None) -> list[str]:
    """The literal start of a message: a string, an f-string that starts with text, the left side of
    a concatenation, both sides of a conditional. An f-string that starts with a value (`{field} ...`,
    a name of ours) has none."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return [str(node.values[0].value)]
    if isinstance(node, ast.BinOp):
        return _leading_texts(node.left)
    if isinstance(node, ast.IfExp):
        return _leading_texts(node.body) + _leading_texts(node.orelse)
    if isinstance(node, ast.BoolOp):  # `failure or "Sign in ..."`
        return [text for value in node.values for text in _leading_texts(value)]
    return []


def _made_error(node: ast.Call, errors: set[str], within: set[ast.Call]) -> bool:
    name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
    return name in errors or node in within


def _messages(tree: ast.Module, errors: set[str]) -> list[tuple[int, str]]:
    """(line, text) of every error made with a literal text (named, or by its class's own
    `super().__init__(...)`), and of every literal "message" of a JSON error answer built by hand."""
    within = {node for cls in ast.walk(tree) if isinstance(cls, ast.ClassDef) and cls.name in errors
              for node in ast.walk(cls) if isinstance(node, ast.Call) and ast.unparse(node.func) == "super().__init__"}
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if _made_error(node, errors, within):
                given = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "message"),
                                                             None)
                found += [(node.lineno, text) for text in _leading_texts(given)]
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "message":
                    found += [(node.lineno, text) for text in _leading_texts(value)]
    return found


def _plugin_messages() -> list[tuple[str, int, str]]:
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in sorted(PLUGIN.rglob("*.py"))}
    errors = _error_classes(trees)
    return [(str(path.relative_to(PLUGIN.parent)), line, text)
            for path, tree in trees.items() for line, text in _messages(tree, errors)]


def test_every_error_text_written_in_plugin_starts_with_a_capital():
    messages = _plugin_messages()
    assert len(messages) > 150, "the scan finds the errors of plugin/ (it found too few: is it broken?)"
    lower = [f"{path}:{line}: {text!r}" for path, line, text in messages if sentence(text) != text]
    assert not lower, "error texts that start in lower case:\n" + "\n".join(lower)


@pytest.mark.parametrize("source", [
    'raise BadRequest("no such study")',
    'raise NotFound(f"no study {uid}")',
    'raise Conflict("user " + name + " exists")',
    'raise Forbidden("fine" if ok else "refused")',
    'raise Unauthenticated(message="sign in first")',
    'class ShareInvalid(Invalid): ...\nraise ShareInvalid("send a JSON object")',
    'raise Unauthenticated(failure or "sign in or send credentials")',
    'class ShareGone(GateError):\n    def __init__(self):\n        super().__init__("this link no longer works")',
    'Response.json({"error": "not_found", "message": "no such file"}, 404)',
])
def test_the_scan_sees_a_lower_case_error_however_it_is_written(source):
    tree = ast.parse(source)
    errors = _error_classes({PLUGIN: tree}) | {"BadRequest", "NotFound", "Conflict", "Forbidden", "Unauthenticated"}
    assert [text for _, text in _messages(tree, errors) if sentence(text) != text]


@pytest.mark.parametrize("source", [
    'raise BadRequest("No such study")',
    'raise BadRequest(f"{field} must be a number")',  # starts with a name of ours
    'raise BadRequest("patient_id must be a DICOM identifier")',
    'raise BadRequest(problem)',
])
def test_the_scan_lets_sentences_and_names_of_ours_be(source):
    assert not [text for _, text in _messages(ast.parse(source), {"BadRequest"}) if sentence(text) != text]


def test_the_directory_outage_message_starts_with_a_capital():
    said = unavailable_message("directory unavailable: timed out")
    assert said.startswith("The directory is unavailable (timed out)")
