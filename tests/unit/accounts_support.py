"""Accounts for unit tests, made through the one implementation the API and gatectl use
(services/users.py), as gatectl makes them."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from plugin.services import users
from plugin.store import accounts as account_rows
from plugin.store.db import Store
from plugin.store.models import User

NO_AUDIT: Callable = lambda _record: True  # noqa: E731


def add_user(store: Store, now: float, username: str, roles: Iterable[str], password: str | None = None, *,
             audit: Callable = NO_AUDIT, actor: str = "gatectl", must_change_password: bool = False) -> User:
    data = {"username": username, "roles": list(roles),
            **({"password": password, "must_change_password": must_change_password} if password is not None else {})}
    users.create_user(store, audit, None, _actor(actor), now, data)
    with store.read() as db:
        return account_rows.user_by_name(db, username)


def add_api_key(store: Store, now: float, name: str, username: str, *, audit: Callable = NO_AUDIT,
                actor: str = "gatectl") -> str:
    return users.create_api_key(store, audit, None, _actor(actor), now, {"name": name, "user": username})["key"]


def disable(store: Store, now: float, username: str, *, audit: Callable = NO_AUDIT, actor: str = "gatectl") -> None:
    users.disable_user(store, audit, _actor(actor), now, username)


def _actor(name: str) -> users.Actor:
    # As gatectl acts (shell access on the server), under the name the test gives.
    return users.Actor(name, via=users.GATECTL.via)
