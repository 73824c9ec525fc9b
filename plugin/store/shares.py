"""Persistence of patient shares, their viewing sessions and download tickets.

Every count that limits a share (opens of a one-time link, downloads) moves by one conditional
UPDATE, so two nodes or two taps at once can never both take the last one.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session as DbSession

from plugin.store.models import AuditEvent, Share, ShareSession, ShareStudy, ShareTicket


def add_share(db: DbSession, share: Share, studies: list[tuple[str, str]]) -> Share:
    """The share and its studies, as (StudyInstanceUID, Orthanc id), in the order given."""
    db.add(share)
    db.flush()
    for position, (uid, oid) in enumerate(studies):
        db.add(ShareStudy(share_id=share.id, study_uid=uid, orthanc_study_id=oid, position=position))
    db.flush()
    return share


def share_by_id(db: DbSession, share_id: int) -> Share | None:
    return db.get(Share, share_id)


def share_by_token_hash(db: DbSession, token_hash: str) -> Share | None:
    return db.execute(select(Share).where(Share.token_hash == token_hash)).scalar_one_or_none()


def studies_of(db: DbSession, share_id: int) -> list[ShareStudy]:
    return list(db.execute(select(ShareStudy).where(ShareStudy.share_id == share_id)
                           .order_by(ShareStudy.position)).scalars())


def list_shares(db: DbSession, created_by: str | None, offset: int, limit: int) -> tuple[list[Share], int]:
    """Newest first; only `created_by`'s when given. With the total."""
    query = select(Share)
    counted = select(func.count()).select_from(Share)
    if created_by is not None:
        query = query.where(Share.created_by == created_by)
        counted = counted.where(Share.created_by == created_by)
    rows = db.execute(query.order_by(Share.id.desc()).offset(offset).limit(limit)).scalars().all()
    return list(rows), int(db.execute(counted).scalar_one())


def _working(now: float):  # noqa: ANN202 - SQL conditions
    return (Share.revoked_at.is_(None), Share.expires_at > now,
            (Share.max_downloads.is_(None)) | (Share.downloads < Share.max_downloads))


def count_open(db: DbSession, share_id: int, now: float) -> bool:
    """One more viewing session opened; False when the share stopped working (a one-time link that
    was opened already among the reasons)."""
    return db.execute(update(Share).where(Share.id == share_id, *_working(now),
                                          (Share.one_time.is_(False)) | (Share.opens == 0))
                      .values(opens=Share.opens + 1, last_opened_at=now,
                              first_opened_at=func.coalesce(Share.first_opened_at, now))
                      .execution_options(synchronize_session=False)).rowcount == 1


def count_download(db: DbSession, share_id: int, now: float) -> bool:
    """One more download; False when the share stopped working or its downloads were all taken."""
    return db.execute(update(Share).where(Share.id == share_id, *_working(now))
                      .values(downloads=Share.downloads + 1)
                      .execution_options(synchronize_session=False)).rowcount == 1


def revoke(db: DbSession, share_id: int, by: str, now: float) -> bool:
    """Stop the share now and spend its unused tickets; False when it was revoked already. Its viewing
    sessions are kept until their next request, which they answer 410 ("revoked"), then end."""
    changed = db.execute(update(Share).where(Share.id == share_id, Share.revoked_at.is_(None))
                         .values(revoked_at=now, revoked_by=by)
                         .execution_options(synchronize_session=False)).rowcount == 1
    db.execute(update(ShareTicket).where(ShareTicket.share_id == share_id, ShareTicket.used_at.is_(None))
               .values(expires_at=now).execution_options(synchronize_session=False))
    return changed


def add_session(db: DbSession, session: ShareSession) -> None:
    db.add(session)
    # Sessions that ended long ago are of no use to anyone.
    db.execute(delete(ShareSession).where(ShareSession.expires_at < session.created_at - 86400))


def session_by_hash(db: DbSession, session_hash: str) -> ShareSession | None:
    return db.get(ShareSession, session_hash)


def set_session_language(db: DbSession, session_hash: str, language: str) -> None:
    db.execute(update(ShareSession).where(ShareSession.id == session_hash).values(language=language)
               .execution_options(synchronize_session=False))


def end_session(db: DbSession, session_hash: str) -> None:
    db.execute(delete(ShareSession).where(ShareSession.id == session_hash))


def add_ticket(db: DbSession, ticket: ShareTicket) -> None:
    db.add(ticket)
    db.execute(delete(ShareTicket).where(ShareTicket.expires_at < ticket.created_at - 86400))


def ticket_by_hash(db: DbSession, ticket_hash: str) -> ShareTicket | None:
    return db.execute(select(ShareTicket).where(ShareTicket.ticket_hash == ticket_hash)).scalar_one_or_none()


def redeem_ticket(db: DbSession, ticket_hash: str, now: float) -> ShareTicket | None:
    """Spend a ticket: the ticket if it was unused and in time (it is used from now on), else None."""
    spent = db.execute(update(ShareTicket).where(ShareTicket.ticket_hash == ticket_hash,
                                                 ShareTicket.used_at.is_(None), ShareTicket.expires_at > now)
                       .values(used_at=now).execution_options(synchronize_session=False)).rowcount == 1
    if not spent:
        return None
    return db.execute(select(ShareTicket).where(ShareTicket.ticket_hash == ticket_hash)).scalar_one()


# What counts as having opened a patient's images, in the audit.
IMAGE_ACTIONS = ("view", "download", "share.open", "share.download", "share.report")


def image_reads(db: DbSession, patient_id: str, study_uids: list[str], limit: int) -> list[AuditEvent]:
    """Allowed reads of this patient's, or these studies', images, newest first."""
    about = (AuditEvent.patient_id == patient_id) | AuditEvent.study_uid.in_(study_uids)
    return list(db.execute(select(AuditEvent).where(about, AuditEvent.outcome.in_(("allow", "success")),
                                                    AuditEvent.action.in_(IMAGE_ACTIONS))
                           .order_by(AuditEvent.id.desc()).limit(limit)).scalars())
