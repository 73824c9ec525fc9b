"""Persistence of the doctors registry."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session as DbSession

from plugin.store.models import Doctor

LIKE_ESCAPE = "/"
SEARCHED_COLUMNS = (Doctor.first_name, Doctor.last_name, Doctor.practice, Doctor.hpcsa_number)


def doctor_by_id(db: DbSession, doctor_id: int) -> Doctor | None:
    return db.get(Doctor, doctor_id)


def doctor_by_hpcsa_number(db: DbSession, hpcsa_number: str) -> Doctor | None:
    return db.execute(select(Doctor).where(Doctor.hpcsa_number == hpcsa_number)).scalar_one_or_none()


def doctor_by_username(db: DbSession, username: str) -> Doctor | None:
    return db.execute(select(Doctor).where(Doctor.username == username)).scalar_one_or_none()


def add_doctor(db: DbSession, doctor: Doctor) -> Doctor:
    db.add(doctor)
    db.flush()
    return doctor


def delete_doctor(db: DbSession, doctor: Doctor) -> None:
    db.delete(doctor)
    db.flush()


def list_doctors(db: DbSession, needle: str = "", alias_fragment: str | None = None, offset: int = 0,
                 limit: int = 100) -> list[Doctor]:
    """Doctors by last name, first name; with a needle, those whose names, practice or HPCSA number
    contain it, or whose stored alias list contains `alias_fragment`, ignoring case."""
    query = select(Doctor).order_by(Doctor.last_name, Doctor.first_name, Doctor.id)
    if needle:
        matches = [_contains(column, needle) for column in SEARCHED_COLUMNS]
        if alias_fragment:
            matches.append(_contains(Doctor.aliases, alias_fragment))
        query = query.where(or_(*matches))
    return list(db.execute(query.offset(offset).limit(limit)).scalars())


def _contains(column: ColumnElement[str], text: str) -> ColumnElement[bool]:
    """The database lower-cases both sides, so the two agree on what case means (SQLite's lower()
    knows only ASCII letters: there, É finds É but not é)."""
    pattern = "%" + text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace(
        "_", LIKE_ESCAPE + "_") + "%"
    return func.lower(column).like(func.lower(pattern), escape=LIKE_ESCAPE)
