"""Persistence of grants and of the grant version that tells every node to reload them."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Row, or_, select, update
from sqlalchemy.orm import Session as DbSession

from plugin.store.models import Doctor, Grant, GrantVersion


def bump_grant_version(db: DbSession) -> None:
    """Call in the same transaction as any change to who may see what (grants, doctor logins)."""
    db.execute(update(GrantVersion).where(GrantVersion.id == 1).values(version=GrantVersion.version + 1))


def grant_version(db: DbSession) -> int:
    return db.execute(select(GrantVersion.version).where(GrantVersion.id == 1)).scalar_one()


def doctor_ids_of_user(db: DbSession, username: str) -> list[int]:
    return list(db.execute(select(Doctor.id).where(Doctor.username == username)).scalars())


def active_grants_of_user(db: DbSession, username: str, now: float) -> list[Row]:
    """(patient_id, study_uid, orthanc_id, level, expires_at) of the unrevoked, unexpired grants naming
    the user or a doctor tied to the user: two indexed queries, plain rows (no ORM objects: this runs
    on the request path whenever a caller's grants are not cached)."""
    columns = (Grant.patient_id, Grant.study_uid, Grant.orthanc_id, Grant.level, Grant.expires_at)
    live = [Grant.revoked_at.is_(None), or_(Grant.expires_at.is_(None), Grant.expires_at > now)]
    rows = list(db.execute(select(*columns).where(Grant.subject_user == username, *live)))
    doctor_ids = doctor_ids_of_user(db, username)
    if doctor_ids:
        rows += db.execute(select(*columns).where(Grant.subject_doctor_id.in_(doctor_ids), *live))
    return rows


def add_grants(db: DbSession, grants: Iterable[Grant]) -> list[Grant]:
    added = list(grants)
    db.add_all(added)
    db.flush()
    bump_grant_version(db)
    return added


def grant_by_id(db: DbSession, grant_id: int) -> Grant | None:
    return db.get(Grant, grant_id)


def revoke_grants(db: DbSession, grants: Iterable[Grant], now: float, by: str) -> None:
    for grant in grants:
        grant.revoked_at = now
        grant.revoked_by = by
    db.flush()
    bump_grant_version(db)


def live_grants_of_doctor(db: DbSession, doctor_id: int) -> list[Grant]:
    return list(db.execute(select(Grant).where(Grant.subject_doctor_id == doctor_id,
                                               Grant.revoked_at.is_(None))).scalars())


def list_grants(db: DbSession, *, user: str | None = None, doctor_id: int | None = None,
                patient_id: str | None = None, study_uid: str | None = None, include_revoked: bool = False,
                offset: int = 0, limit: int = 100) -> list[Grant]:
    query = select(Grant).order_by(Grant.id)
    if user is not None:
        query = query.where(Grant.subject_user == user)
    if doctor_id is not None:
        query = query.where(Grant.subject_doctor_id == doctor_id)
    if patient_id is not None:
        query = query.where(Grant.patient_id == patient_id)
    if study_uid is not None:
        query = query.where(Grant.study_uid == study_uid)
    if not include_revoked:
        query = query.where(Grant.revoked_at.is_(None))
    return list(db.execute(query.offset(offset).limit(limit)).scalars())
