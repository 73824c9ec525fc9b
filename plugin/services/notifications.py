"""What the Gate tells doctors, queued in the outbox inside the transaction that caused it: "study
ready" when a linked study is complete, and a welcome when a doctor is registered (with a link to
choose a password when their account is a local one that has none yet)."""

from __future__ import annotations

from cryptography.fernet import MultiFernet
from sqlalchemy.orm import Session as DbSession

from plugin.config import GateConfig
from plugin.notify.messages import StudyNotice, study_ready_messages, welcome_messages
from plugin.policies.types import Role
from plugin.services import password_links
from plugin.services.referrals import Arrival
from plugin.store import accounts
from plugin.store import outbox as outbox_store
from plugin.store.models import Doctor

SET_PASSWORD_PATH = "/gate/set-password/"  # noqa: S105 - a path, not a password


class Notifications:
    def __init__(self, config: GateConfig, cipher: MultiFernet) -> None:
        self._cipher = cipher
        self._public_url = config.public_url
        self._practice = config.practice_name
        self._link_hours = config.outbox.welcome_link_hours

    def study_ready(self, db: DbSession, doctor: Doctor, arrival: Arrival, now: float) -> int:
        """Queue the doctor's "study ready" e-mail and SMS; the number that were new."""
        notice = StudyNotice(arrival.study_uid, arrival.study_oid, arrival.study_date,
                             tuple(m for m in arrival.modality.split("\\") if m), arrival.description,
                             arrival.referral.accession_number)
        messages = study_ready_messages(doctor.id, doctor.email, doctor.mobile, notice, self._public_url,
                                        self._practice)
        return sum(outbox_store.enqueue(db, message, self._cipher, now) for message in messages)

    def welcome(self, db: DbSession, doctor: Doctor, now: float) -> int:
        """Queue a newly registered doctor's welcome e-mail; the number that were new."""
        if not doctor.email:
            return 0
        url = None
        if self._may_set_password(db, doctor.username):
            url = self._public_url + SET_PASSWORD_PATH + password_links.issue(db, doctor.username, now,
                                                                              self._link_hours)
        name = " ".join(part for part in (doctor.title, doctor.first_name, doctor.last_name) if part)
        messages = welcome_messages(doctor.id, doctor.email, name, url, self._public_url, self._practice,
                                    username=doctor.username, link_hours=self._link_hours if url else None)
        return sum(outbox_store.enqueue(db, message, self._cipher, now) for message in messages)

    @staticmethod
    def _may_set_password(db: DbSession, username: str | None) -> bool:
        """Only a local account that has no password of its own yet, and is no admin's: the link goes
        to the address typed into the doctor's record, which must not be a way into an account."""
        user = accounts.user_by_name(db, username) if username else None
        return (user is not None and user.source == "local" and not user.disabled and Role.ADMIN not in user.role_set
                and (user.password_hash is None or user.must_change_password))
