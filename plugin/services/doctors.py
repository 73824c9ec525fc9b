"""The doctors registry: list, register, change and delete doctors. Every change is audited with who
made it.

A doctor tied to a username lends that login every grant naming the doctor. So changing or
clearing the username, or deleting the doctor, bumps the grant version in the same transaction
(every node then reloads who may see what), and deleting revokes the doctor's live grants with it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession

from plugin.audit.record import AuditRecord, iso_utc
from plugin.errors import BadRequest, Conflict, NotFound
from plugin.identity.mfa import Mfa
from plugin.policies import doctors as rules
from plugin.policies.types import Role
from plugin.services import users
from plugin.services.accounts import AuditSink, check_username
from plugin.services.users import Actor
from plugin.store import doctors, grants
from plugin.store.db import Store
from plugin.store.models import Doctor

ROUTE_CLASS = "doctor"
REFERRING_DOCTOR = Role.REFERRING_DOCTOR.value
Checked = TypeVar("Checked")


@dataclass(frozen=True)
class DoctorChange:
    doctor: dict[str, Any]
    reach_changed: bool  # the doctor's grants now reach another login, or none


def doctor_view(doctor: Doctor) -> dict[str, Any]:
    return {"id": doctor.id, **_audited(doctor), "created_at": iso_utc(doctor.created_at),
            "updated_at": iso_utc(doctor.updated_at)}


def list_doctors(store: Store, q: str = "", offset: str | None = None,
                 limit: str | None = None) -> list[dict[str, Any]]:
    """A page of doctors by last name, first name; `q` finds a part of a name, alias, practice or
    HPCSA number in any case. The arguments are the query's text, checked here."""
    needle = _checked(rules.search_text, q)
    first, count = _checked(rules.page, offset, limit)
    with store.read() as db:
        found = doctors.list_doctors(db, needle, rules.alias_search_fragment(needle), first, count)
        return [doctor_view(doctor) for doctor in found]


def get_doctor(store: Store, doctor_id: int) -> dict[str, Any]:
    with store.read() as db:
        return doctor_view(_existing(db, doctor_id))


# Queues a new doctor's welcome e-mail inside the registering transaction (services/notifications.py).
Welcome = Callable[[DbSession, Doctor, float], int]


def create_doctor(store: Store, audit: AuditSink, actor: Actor, now: float, prefixes: frozenset[str],
                  data: dict[str, Any], welcome: Welcome | None = None) -> dict[str, Any]:
    """Register a doctor; with `welcome`, their welcome e-mail is queued in the same transaction."""
    fields = _fields(data, prefixes, creating=True)
    with store.transaction() as db:
        _refuse_taken(db, fields)
        doctor = Doctor(title="", first_name="", email="", mobile="", practice="", username=None, disabled=False,
                        hpcsa_active=True, created_at=now, updated_at=now)
        _apply(doctor, {"aliases": [], **fields}, now)
        try:
            doctors.add_doctor(db, doctor)
        except IntegrityError as exc:  # registered by another request since the check above
            raise _taken(fields) from exc
        if welcome is not None:
            welcome(db, doctor, now)
        view = doctor_view(doctor)
    audit(_event(now, actor, "doctor.create", f"registered doctor {doctor.id} {doctor.hpcsa_number}",
                 {"after": _audited(doctor)}))
    return view


def update_doctor(store: Store, audit: AuditSink, actor: Actor, now: float, prefixes: frozenset[str],
                  doctor_id: int, data: dict[str, Any]) -> DoctorChange:
    """Change the fields given (the others stay as they are); audited with their before and after."""
    fields = _fields(data, prefixes, creating=False)
    with store.transaction() as db:
        doctor = _existing(db, doctor_id)
        _refuse_taken(db, fields, doctor.id)
        before = _audited(doctor)
        changed = {name: value for name, value in fields.items() if before[name] != value}
        if changed:
            _apply(doctor, changed, now)
            try:
                db.flush()
            except IntegrityError as exc:  # taken by another request since the check above
                raise _taken(changed) from exc
            if "username" in changed:
                grants.bump_grant_version(db)
        view = doctor_view(doctor)
    if changed:
        audit(_event(now, actor, "doctor.update",
                     f"changed {', '.join(changed)} of doctor {doctor_id} {doctor.hpcsa_number}",
                     {"before": {name: before[name] for name in changed}, "after": changed}))
    return DoctorChange(view, "username" in changed)


def delete_doctor(store: Store, audit: AuditSink, actor: Actor, now: float, doctor_id: int) -> dict[str, Any]:
    """Remove the doctor and revoke every live grant naming them, in one transaction."""
    with store.transaction() as db:
        doctor = _existing(db, doctor_id)
        before = _audited(doctor)
        live = grants.live_grants_of_doctor(db, doctor.id)
        if live:
            grants.revoke_grants(db, live, now, actor.username)
        doctors.delete_doctor(db, doctor)
        grants.bump_grant_version(db)  # a login tied to the doctor reaches none of their grants now
    audit(_event(now, actor, "doctor.delete", f"deleted doctor {doctor_id} {before['hpcsa_number']} and revoked "
                 f"{len(live)} grants", {"before": before, "revoked_grants": [grant.id for grant in live]}))
    return {"deleted": True, "id": doctor_id, "revoked_grants": len(live)}


def create_sign_in(store: Store, audit: AuditSink, mfa: Mfa | None, actor: Actor, now: float, doctor_id: int,
                   username: str, welcome: Welcome | None = None) -> dict[str, Any]:
    """Give a registered doctor a login: a local referring-doctor account (no password yet) tied to
    the doctor, and, when the doctor has an e-mail address, a welcome e-mail with a link to choose
    the password, queued with the change. Without an address the admin sets a first password."""
    with store.read() as db:
        doctor = _existing(db, doctor_id)
        if doctor.username:
            raise Conflict(f"Doctor {doctor_id} signs in as {doctor.username!r} already", "username")
        _refuse_taken(db, {"username": username}, doctor.id)
        name = " ".join(part for part in (doctor.title, doctor.first_name, doctor.last_name) if part)
        email = doctor.email
    user = users.create_user(store, audit, mfa, actor, now, {"username": username, "roles": [REFERRING_DOCTOR],
                                                             "email": email, "display_name": name[:128]})
    with store.transaction() as db:
        doctor = _existing(db, doctor_id)
        if doctor.username:
            raise Conflict(f"Doctor {doctor_id} signs in as {doctor.username!r} already", "username")
        _refuse_taken(db, {"username": username}, doctor.id)
        _apply(doctor, {"username": username}, now)
        grants.bump_grant_version(db)
        queued = welcome(db, doctor, now) if welcome is not None else 0
        view = doctor_view(doctor)
    audit(_event(now, actor, "doctor.update", f"tied doctor {doctor_id} {doctor.hpcsa_number} to the new login "
                 f"{username}", {"before": {"username": None}, "after": {"username": username}}))
    return {"doctor": view, "user": user, "welcome_queued": queued}


# -- helpers -------------------------------------------------------------------------------------


def _fields(data: dict[str, Any], prefixes: frozenset[str], creating: bool) -> dict[str, Any]:
    fields = _checked(rules.doctor_fields, data, prefixes, creating=creating)
    if fields.get("username") is not None:
        check_username(fields["username"])
    return fields


def _checked(rule: Callable[..., Checked], *args: Any, **kwargs: Any) -> Checked:
    try:
        return rule(*args, **kwargs)
    except rules.Invalid as exc:
        raise BadRequest(str(exc), exc.field) from exc


def _existing(db: DbSession, doctor_id: int) -> Doctor:
    doctor = doctors.doctor_by_id(db, doctor_id)
    if doctor is None:
        raise NotFound(f"No doctor {doctor_id}")
    return doctor


def _refuse_taken(db: DbSession, fields: dict[str, Any], doctor_id: int | None = None) -> None:
    """409 if another doctor has the HPCSA number or the username."""
    number, username = fields.get("hpcsa_number"), fields.get("username")
    holder = doctors.doctor_by_hpcsa_number(db, number) if number else None
    if holder is not None and holder.id != doctor_id:
        raise Conflict(f"HPCSA number {number} is registered already, to doctor {holder.id}", "hpcsa_number")
    holder = doctors.doctor_by_username(db, username) if username else None
    if holder is not None and holder.id != doctor_id:
        raise Conflict(f"Username {username!r} is tied to doctor {holder.id} already", "username")


def _taken(fields: dict[str, Any]) -> Conflict:
    taken = [f"HPCSA number {fields['hpcsa_number']}" if fields.get("hpcsa_number") else "",
             f"username {fields['username']!r}" if fields.get("username") else ""]
    named = " or the ".join(t for t in taken if t) or "HPCSA number or username"
    return Conflict(f"Another doctor has the {named} already")


def _apply(doctor: Doctor, fields: dict[str, Any], now: float) -> None:
    for name, value in fields.items():
        setattr(doctor, name, rules.encode_aliases(value) if name == "aliases" else value)
    doctor.updated_at = now


def _audited(doctor: Doctor) -> dict[str, Any]:
    """The doctor's fields as the API shows them (without id and times)."""
    return {"hpcsa_number": doctor.hpcsa_number, "title": doctor.title, "first_name": doctor.first_name,
            "last_name": doctor.last_name, "email": doctor.email, "mobile": doctor.mobile,
            "practice": doctor.practice, "aliases": rules.decode_aliases(doctor.aliases),
            "username": doctor.username, "disabled": doctor.disabled, "hpcsa_active": doctor.hpcsa_active}


def _event(now: float, actor: Actor, action: str, reason: str, detail: dict[str, Any]) -> AuditRecord:
    return AuditRecord(ts=iso_utc(now), actor=actor.username, action=action, outcome="success", reason=reason[:512],
                       source_ip=actor.ip, roles=",".join(sorted(actor.roles)), route_class=ROUTE_CLASS,
                       detail=json.dumps(detail))
