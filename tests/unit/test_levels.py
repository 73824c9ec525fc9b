"""Access levels: their order, their names, and the action -> lowest level table."""

from __future__ import annotations

import pytest

from plugin.policies.levels import LEVEL_NAMES, REQUIRED_LEVEL, AccessLevel, parse_level
from plugin.policies.types import Action

ORDER = ["view_only", "download", "annotate", "report", "share", "full"]


def test_levels_are_ordered_lowest_first():
    assert [level.label for level in sorted(AccessLevel)] == ORDER
    assert list(LEVEL_NAMES) == ORDER


@pytest.mark.parametrize(("lower", "higher"), list(zip(ORDER, ORDER[1:], strict=False)))
def test_each_level_is_below_the_next(lower, higher):
    assert parse_level(lower) < parse_level(higher)


def test_full_is_the_highest_and_view_only_the_lowest():
    assert max(AccessLevel) is AccessLevel.FULL and min(AccessLevel) is AccessLevel.VIEW_ONLY


@pytest.mark.parametrize("name", ORDER)
def test_parse_level_accepts_the_six_lower_case_names(name):
    level = parse_level(name)
    assert isinstance(level, AccessLevel) and level.label == name


@pytest.mark.parametrize("name", ["VIEW_ONLY", "Download", "FULL", "view-only", "viewonly", "view only", "",
                                  " full", "full ", "admin", "read", "1", "none", "label", "__class__"])
def test_parse_level_refuses_anything_else(name):
    assert parse_level(name) is None


@pytest.mark.parametrize("value", [None, 1, 6, 1.0, ["full"], {"full": 1}, AccessLevel.FULL])
def test_parse_level_refuses_what_is_not_a_string(value):
    # JSON bodies hand the services whatever the caller sent; an AccessLevel is an int, not a name.
    assert parse_level(value) is None  # type: ignore[arg-type]


def test_required_level_covers_every_action_but_admin_and_public():
    assert set(REQUIRED_LEVEL) == set(Action) - {Action.ADMIN, Action.PUBLIC}


# The table as the docs (docs/access-levels.md) state it: a change to levels.py must change this too.
@pytest.mark.parametrize(("action", "level"), [
    (Action.LIST, AccessLevel.VIEW_ONLY),
    (Action.VIEW, AccessLevel.VIEW_ONLY),
    (Action.DOWNLOAD, AccessLevel.DOWNLOAD),
    (Action.ANNOTATE, AccessLevel.ANNOTATE),
    (Action.REPORT, AccessLevel.REPORT),
    (Action.SHARE, AccessLevel.SHARE),
    (Action.MODIFY, AccessLevel.FULL),
    (Action.DELETE, AccessLevel.FULL),
])
def test_required_level_of_each_action(action, level):
    assert REQUIRED_LEVEL[action] is level
