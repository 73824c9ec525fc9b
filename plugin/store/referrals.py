"""Persistence of referrals, the review queue and how far Orthanc's change log has been read."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session as DbSession

from plugin.store.models import ChangeCursor, Doctor, Referral, ReviewItem


def change_cursor(db: DbSession) -> int | None:
    """The last change sequence number handled, None before the first start."""
    return db.execute(select(ChangeCursor.last_seq).where(ChangeCursor.id == 1)).scalar_one_or_none()


def set_change_cursor(db: DbSession, seq: int) -> None:
    """Move the cursor forward (never back: another node may be ahead)."""
    if db.execute(update(ChangeCursor).where(ChangeCursor.id == 1, ChangeCursor.last_seq < seq)
                  .values(last_seq=seq)).rowcount == 0 and change_cursor(db) is None:
        db.add(ChangeCursor(id=1, last_seq=seq))
        db.flush()


def add_referral(db: DbSession, referral: Referral) -> None:
    """Raises IntegrityError when the study has its referral already (another node, or a replay,
    decided first): call it inside a savepoint."""
    db.add(referral)
    db.flush()


def referral_of_study(db: DbSession, study_uid: str) -> Referral | None:
    return db.execute(select(Referral).where(Referral.study_uid == study_uid)).scalar_one_or_none()


def referrals_of_orthanc_study(db: DbSession, orthanc_study_id: str) -> list[Referral]:
    return list(db.execute(select(Referral).where(Referral.orthanc_study_id == orthanc_study_id)).scalars())


def list_referrals(db: DbSession, *, status: str | None = None, doctor_id: int | None = None,
                   study_uid: str | None = None, offset: int = 0, limit: int = 100) -> list[Referral]:
    query = select(Referral).order_by(Referral.id.desc())
    if status is not None:
        query = query.where(Referral.status == status)
    if doctor_id is not None:
        query = query.where(Referral.doctor_id == doctor_id)
    if study_uid is not None:
        query = query.where(Referral.study_uid == study_uid)
    return list(db.execute(query.offset(offset).limit(limit)).scalars())


def add_review_item(db: DbSession, item: ReviewItem) -> ReviewItem:
    db.add(item)
    db.flush()
    return item


def review_item(db: DbSession, item_id: int) -> ReviewItem | None:
    return db.get(ReviewItem, item_id)


def list_review_items(db: DbSession, *, status: str | None = "open", kind: str | None = None,
                      offset: int = 0, limit: int = 100) -> list[ReviewItem]:
    query = select(ReviewItem).order_by(ReviewItem.id)
    if status is not None:
        query = query.where(ReviewItem.status == status)
    if kind is not None:
        query = query.where(ReviewItem.kind == kind)
    return list(db.execute(query.offset(offset).limit(limit)).scalars())


def all_doctors(db: DbSession) -> list[Doctor]:
    """Every registered doctor: the referral matcher weighs them all (a practice has hundreds, not millions)."""
    return list(db.execute(select(Doctor)).scalars())
