"""What the doctor dashboard reads from the store beyond the grant sets: when each live grant was made."""

from __future__ import annotations

from sqlalchemy import Row, or_, select
from sqlalchemy.orm import Session as DbSession

from plugin.store.grants import doctor_ids_of_user
from plugin.store.models import Grant


def grant_times_of_user(db: DbSession, username: str, now: float) -> list[Row]:
    """(patient_id, study_uid, created_at) of the unrevoked, unexpired grants naming the user or a
    doctor tied to the user (the same grants store/grants.py's active_grants_of_user reads)."""
    columns = (Grant.patient_id, Grant.study_uid, Grant.created_at)
    live = [Grant.revoked_at.is_(None), or_(Grant.expires_at.is_(None), Grant.expires_at > now)]
    subjects = [Grant.subject_user == username]
    doctor_ids = doctor_ids_of_user(db, username)
    if doctor_ids:
        subjects.append(Grant.subject_doctor_id.in_(doctor_ids))
    return list(db.execute(select(*columns).where(or_(*subjects), *live)))
