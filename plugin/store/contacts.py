"""Everything kept encrypted with the contact-details key (ContactKeyFile), re-encrypted with the
first key of the cipher: what `gatectl contacts-reencrypt` runs after a new key is put first."""

from __future__ import annotations

from cryptography.fernet import InvalidToken, MultiFernet
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from plugin.store.models import OutboxMessage, Share, User

# (model, its encrypted columns)
ENCRYPTED = ((OutboxMessage, ("recipient", "payload")), (Share, ("recipient_email", "recipient_mobile")),
             (User, ("totp_secret",)))


def reencrypt(db: DbSession, cipher: MultiFernet) -> tuple[int, int]:
    """Rewrite every encrypted value with the cipher's first key: (values rewritten, values that no
    configured key reads, left as they are)."""
    done = unreadable = 0
    for model, columns in ENCRYPTED:
        for row in db.execute(select(model)).scalars():
            for column in columns:
                value = getattr(row, column)
                if not value:
                    continue
                try:
                    setattr(row, column, cipher.rotate(value.encode()).decode())
                    done += 1
                except InvalidToken:
                    unreadable += 1
    return done, unreadable
