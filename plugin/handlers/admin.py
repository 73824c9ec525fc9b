"""The admin console's pages for accounts: /gate/admin/users (list, create, CSV import) and one
user's page with its actions. Every action is the one the JSON API and gatectl use
(services/users.py); each page answers JSON too, for a script that asks for it."""

from __future__ import annotations

from urllib.parse import quote

from plugin.errors import BadRequest, GateError, NotFound
from plugin.handlers.http import Request, Response
from plugin.handlers.shared import ConsoleVisit, console_page, console_visit
from plugin.policies.types import ROLE_NAMES
from plugin.services import users
from plugin.services.runtime import Runtime
from plugin.services.user_import import BadCsv

# What a user's page says after an action (PRG: the action redirects here with ?done=...).
DONE = {"created": "The account was created.", "disabled": "The account is disabled; its sessions ended.",
        "enabled": "The account is enabled again.", "unlocked": "The sign-in lockout is lifted.",
        "not_locked": "The account was not locked; its failed sign-ins are forgotten.",
        "password": "The password is set; it must be changed at the next sign-in.",
        "password_kept": "The password is set, to be kept (a service account's).",
        "mfa_reset": "Two-step sign-in is reset; the user sets it up again at the next sign-in.",
        "signed_out": "Every session of the account has ended.", "roles": "The roles are saved.",
        "key_revoked": "The API key is revoked."}


def _disable(runtime: Runtime, visit: ConsoleVisit, username: str) -> str:
    users.disable_user(runtime.store, runtime.audit_now, visit.actor, runtime.clock(), username)
    return "disabled"


def _enable(runtime: Runtime, visit: ConsoleVisit, username: str) -> str:
    _update(runtime, visit, username, {"disabled": False})
    return "enabled"


def _unlock(runtime: Runtime, visit: ConsoleVisit, username: str) -> str:
    was_locked = users.unlock_user(runtime.store, runtime.audit_now, visit.actor, runtime.clock(), username)
    return "unlocked" if was_locked else "not_locked"


def _password(runtime: Runtime, visit: ConsoleVisit, username: str) -> str:
    if visit.form.get("password", "") != visit.form.get("confirm", ""):
        raise BadRequest("The two passwords differ; type the same one twice")
    changes: dict[str, object] = {"password": visit.form.get("password", "")}
    if visit.form.get("keep_password"):
        changes["must_change_password"] = False
    _update(runtime, visit, username, changes)
    return "password_kept" if visit.form.get("keep_password") else "password"


def _mfa_reset(runtime: Runtime, visit: ConsoleVisit, username: str) -> str:
    users.reset_mfa(runtime.store, runtime.audit_now, runtime.mfa, visit.actor, runtime.clock(), username)
    return "mfa_reset"


def _sign_out(runtime: Runtime, visit: ConsoleVisit, username: str) -> str:
    users.sign_out_everywhere(runtime.store, runtime.audit_now, visit.actor, runtime.clock(), username)
    return "signed_out"


def _roles(runtime: Runtime, visit: ConsoleVisit, username: str) -> str:
    _update(runtime, visit, username, {"roles": [r for r in sorted(ROLE_NAMES) if visit.form.get(f"role_{r}")]})
    return "roles"


def _revoke_key(runtime: Runtime, visit: ConsoleVisit, username: str) -> str:
    key_id = visit.form.get("key_id", "")
    if not key_id.isdigit() or not any(k["id"] == int(key_id) for k in users.api_keys_of(runtime.store, username)):
        raise BadRequest("That API key is not one of this account's")
    users.revoke_api_key(runtime.store, runtime.audit_now, visit.actor, runtime.clock(), int(key_id))
    return "key_revoked"


def _update(runtime: Runtime, visit: ConsoleVisit, username: str, changes: dict[str, object]) -> None:
    users.update_user(runtime.store, runtime.audit_now, runtime.mfa, visit.actor, runtime.clock(), username, changes)


# Each action of a user's page, by the last part of its address: the services the API calls too.
ACTIONS = {"disable": _disable, "enable": _enable, "unlock": _unlock, "password": _password,
           "mfa-reset": _mfa_reset, "sign-out": _sign_out, "roles": _roles, "revoke-key": _revoke_key}


def users_page(runtime: Runtime, request: Request) -> Response:
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    error, entered = "", {}
    if request.method == "POST":
        entered = visit.form
        try:
            created = users.create_user(runtime.store, runtime.audit_now, runtime.mfa, visit.actor, runtime.clock(),
                                        _new_user(entered, request))
            return Response.redirect(f"/gate/admin/users/{quote(created['username'])}?done=created")
        except GateError as exc:
            error = exc.message
    states = users.account_states(runtime.store, runtime.clock())
    return console_page(runtime, request, "admin/users.html", visit, section="Users", users=states, error=error,
                        roles=sorted(ROLE_NAMES), entered=entered, json={"users": states})


def user_page(runtime: Runtime, request: Request, username: str) -> Response:
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    return _user(runtime, request, visit, username, notice=DONE.get(request.query.get("done", ""), ""))


def user_action(runtime: Runtime, request: Request, username: str, action: str) -> Response:
    """POST a user's action: the same implementation as the API's (services/users.py)."""
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    act = ACTIONS.get(action)
    try:
        if action == "api-key":  # the key is shown once, on the page this answers
            created = users.create_api_key(runtime.store, runtime.audit_now, runtime.mfa, visit.actor,
                                           runtime.clock(), {"name": visit.form.get("name", ""), "user": username})
            return _user(runtime, request, visit, username, new_key=created)
        if act is None:
            return console_page(runtime, request, "admin/refused.html", visit, 404, message="There is no such action.")
        done = act(runtime, visit, username)
    except GateError as exc:
        return _user(runtime, request, visit, username, exc.message)
    finally:
        runtime.authenticator.invalidate()  # roles, state, keys and sessions count at once on this node
    return Response.redirect(f"/gate/admin/users/{quote(username)}?done={done}")


def import_page(runtime: Runtime, request: Request) -> Response:
    """Paste (or load) a CSV; check it without writing, then import it."""
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    text, report, error, imported = visit.form.get("csv", ""), None, "", None
    if request.method == "POST":
        dry_run = visit.form.get("mode") != "import"
        try:
            count = users.import_users(runtime.store, runtime.audit_now, visit.actor, runtime.clock(), text, dry_run)
            report = {"dry_run": dry_run, "count": count}
            imported = None if dry_run else count
        except BadCsv as exc:
            error, report = exc.message, {"rows": exc.rows()}
        except GateError as exc:
            error = exc.message
    return console_page(runtime, request, "admin/import.html", visit, section="Users", csv=text, report=report,
                        error=error, notice=f"{imported} accounts imported." if imported is not None else "",
                        json={"report": report, "error": error or None})


def _user(runtime: Runtime, request: Request, visit: ConsoleVisit, username: str, error: str = "",
          notice: str = "", new_key: dict | None = None) -> Response:
    """One account's page: its state and keys, with what an action said (an error, or the key made)."""
    try:
        state = users.account_state(runtime.store, runtime.clock(), username)
    except NotFound:
        return console_page(runtime, request, "admin/refused.html", visit, 404, message="There is no such account.")
    keys = users.api_keys_of(runtime.store, username)
    # An action's answer (its error, the key made once) is the page itself, never its data alone.
    data = {} if error or new_key else {"json": {"user": state, "api_keys": keys}}
    return console_page(runtime, request, "admin/user.html", visit, section="Users", user=state, keys=keys,
                        roles=sorted(ROLE_NAMES), error=error, notice=notice, new_key=new_key, **data)


def _new_user(form: dict[str, str], request: Request) -> dict[str, object]:
    """The create form as the API's body: roles are the ticked boxes."""
    roles = [name for name in sorted(ROLE_NAMES) if form.get(f"role_{name}")]
    data: dict[str, object] = {"username": form.get("username", ""), "roles": roles}
    for name in ("email", "display_name", "password"):
        if form.get(name):
            data[name] = form[name]
    if form.get("password") and form.get("keep_password"):
        data["must_change_password"] = False
    if form.get("otp"):
        data[users.OTP_FIELD] = form["otp"]
    return data


def dashboard_page(runtime: Runtime, request: Request) -> Response:
    """/gate/admin/: the server at a glance, and what needs an admin."""
    visit = console_visit(runtime, request)
    if isinstance(visit, Response):
        return visit
    if runtime.server_status is None:
        return console_page(runtime, request, "admin/refused.html", visit, 503,
                            message="The dashboard is not available.")
    review_open = len(runtime.review.items({"status": "open", "limit": "1000"}))
    figures = runtime.server_status.dashboard(review_open)
    return console_page(runtime, request, "admin/dashboard.html", visit, section="Dashboard", figures=figures,
                        json=figures)
