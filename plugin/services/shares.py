"""Patient share links, the practice's side: create (admins, and holders of `share` on every study
in it), list, look at one with its usage, revoke. The patient's side is services/share_visits.py.

A share names studies of one patient. Its token is shown once, in the answer to its creation (and in
the messages queued then); the store keeps its SHA-256 only, and the recipient's contact details
encrypted (ContactKeyFile).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cryptography.fernet import InvalidToken, MultiFernet
from sqlalchemy import select

from plugin.audit.record import AuditRecord, iso_utc
from plugin.config import GateConfig
from plugin.errors import BadRequest, Forbidden, NotFound, StoreUnavailable
from plugin.identity.secrets import hash_password
from plugin.notify.messages import share_messages
from plugin.policies.doctors import Invalid, page
from plugin.policies.levels import AccessLevel
from plugin.policies.outbox import mask_email, mask_phone
from plugin.policies.shares import (
    ShareFacts,
    ShareInvalid,
    ShareRequest,
    new_secret,
    read_share_request,
    secret_hash,
    state,
)
from plugin.policies.types import Principal
from plugin.services.access import ORTHANC_ID, AccessService, Located
from plugin.services.accounts import AuditSink
from plugin.store import outbox as outbox_store
from plugin.store import shares as share_store
from plugin.store.db import Store
from plugin.store.models import AuditEvent, Share

SHARE_PAGE = "/share/"
MAX_EVENTS = 200


def share_actor(share_id: int) -> str:
    """Who a patient's use of a share is audited as."""
    return f"share:{share_id}"


class ShareService:
    def __init__(self, store: Store, access: AccessService, config: GateConfig, cipher: MultiFernet,
                 audit: AuditSink, queued: Callable[[], None] = lambda: None) -> None:
        self._store = store
        self._access = access
        self._settings = config.shares
        self._public_url = config.public_url
        self._practice = config.practice_name
        self._cipher = cipher
        self._audit = audit  # durable: written before the answer
        self._queued = queued  # wakes the outbox worker

    def create(self, principal: Principal, data: dict[str, Any], now: float, ip: str) -> dict[str, Any]:
        """A new share: 201's body, with the token and the link (shown this once)."""
        if not self._settings.enabled:
            raise Forbidden("Patient share links are turned off on this server (Gate.Shares.Enabled)")
        try:
            wanted = read_share_request(data, now, self._settings.default_valid_hours, self._settings.max_valid_hours,
                                        principal.username or "")
        except ShareInvalid as exc:
            raise BadRequest(str(exc)) from None
        # One study named twice (by its UID and its Orthanc id) is shared once.
        studies = list({found.study_oid: found for found in (self.shareable(principal, ref, now)
                                                              for ref in wanted.studies)}.values())
        patients = {found.patient_id for found in studies}
        if len(patients) != 1:
            raise BadRequest("A share holds studies of one patient; these belong to several")
        token = new_secret()
        link = self._public_url + SHARE_PAGE + token
        with self._store.transaction() as db:
            share = share_store.add_share(db, self._row(wanted, token, patients.pop(), principal, now),
                                          [(found.study_uid or "", found.study_oid or "") for found in studies])
            queued = self._queue_messages(db, share, wanted, link, now)
            view = self._view(db, share, now)
        try:
            self._record(principal, ip, now, "share.create", share, view["studies"],
                         {"queued": queued, "expires_at": view["expires_at"], "password": view["password"],
                          "max_downloads": share.max_downloads, "one_time": share.one_time,
                          "consent": json.loads(share.consent)})
        except StoreUnavailable:
            self._withdraw(share.id, principal, now)
            raise
        if queued:
            self._queued()
        return {**view, "url": link, "token": token, "queued_messages": queued}

    def list(self, principal: Principal, query: dict[str, str], now: float) -> dict[str, Any]:
        """Admins see every share; anyone else the shares they created."""
        try:
            offset, limit = page(query.get("offset"), query.get("limit"))
        except Invalid as exc:
            raise BadRequest(str(exc)) from None
        with self._store.read() as db:
            rows, total = share_store.list_shares(db, None if principal.is_admin else principal.username,
                                                  offset, limit)
            shares = [self._view(db, row, now) for row in rows]
        return {"shares": shares, "total": total, "offset": offset, "limit": limit}

    def get(self, principal: Principal, share_id: int, now: float) -> dict[str, Any]:
        """One share with its usage: every open, password failure and download, from the audit."""
        with self._store.read() as db:
            share = self._visible(db, principal, share_id)
            view = self._view(db, share, now)
            events = db.execute(select(AuditEvent).where(AuditEvent.actor == share_actor(share_id))
                                .order_by(AuditEvent.id.desc()).limit(MAX_EVENTS)).scalars().all()
        view["events"] = [{"at": event.ts, "action": event.action, "outcome": event.outcome,
                           "reason": event.reason, "source_ip": event.source_ip, "count": event.count}
                          for event in events]
        return view

    def revoke(self, principal: Principal, share_id: int, now: float, ip: str) -> dict[str, Any]:
        """Stop the share now: its open viewing sessions answer 410 from their next request, its unused
        download tickets and its reminder are cancelled. Revoking twice answers the share as it is."""
        with self._store.transaction() as db:
            share = self._visible(db, principal, share_id)
            changed = share_store.revoke(db, share_id, principal.username or "", now)
            outbox_store.cancel_pending(db, [f"share-reminder:{share_id}:email", f"share-reminder:{share_id}:sms"])
            db.refresh(share)
            view = self._view(db, share, now)
        if changed:
            self._record(principal, ip, now, "share.revoke", share, view["studies"], {})
        return view

    # -- steps -------------------------------------------------------------------------------------

    def _withdraw(self, share_id: int, principal: Principal, now: float) -> None:
        """A share whose creation could not be audited must not work: it is revoked and its messages
        cancelled. Best effort: a store that refuses this refuses the outbox's claims too."""
        try:
            with self._store.transaction() as db:
                share_store.revoke(db, share_id, principal.username or "", now)
                outbox_store.cancel_pending(db, [f"{kind}:{share_id}:{channel}" for kind in ("share", "share-reminder")
                                                 for channel in ("email", "sms")])
        except StoreUnavailable:
            pass

    def shareable(self, principal: Principal, ref: str, now: float) -> Located:
        """A study the caller may share: 404 when they may not see it (or it is not there), 403 when
        they see it without holding `share` on it."""
        locator = self._access.locator
        found: tuple[Located, ...] = ()
        if ORTHANC_ID.match(ref):
            study = locator.by_orthanc_id("study", ref)
            found = (study,) if study is not None else ()
        if not found:
            found = locator.by_uid("study", ref)
        if len(found) > 1:
            raise BadRequest(f"StudyInstanceUID {ref!r} names several studies in Orthanc; name it by Orthanc id")
        if not found or found[0].study_oid is None:
            raise NotFound(f"No study {ref!r}")
        study = found[0]
        if principal.is_admin:
            return study
        level = self._access.level_on(principal, "study", study.study_oid, now)
        if level is None:
            raise NotFound(f"No study {ref!r}")
        if level < AccessLevel.SHARE:
            raise Forbidden(f"Sharing study {ref!r} needs the share level on it; you hold {level.label}")
        return study

    def _row(self, wanted: ShareRequest, token: str, patient_id: str, principal: Principal, now: float) -> Share:
        consent = wanted.consent.as_dict() if wanted.consent else None
        return Share(token_hash=secret_hash(token), patient_id=patient_id, created_by=principal.username or "",
                     created_at=now, expires_at=wanted.expires_at,
                     password_hash=hash_password(wanted.password) if wanted.password else None,
                     max_downloads=wanted.max_downloads, downloads=0, one_time=wanted.one_time, opens=0,
                     language=wanted.language,
                     recipient_email=self._encrypt(wanted.email), recipient_mobile=self._encrypt(wanted.mobile),
                     consent=json.dumps(consent))

    def _queue_messages(self, db: Any, share: Share, wanted: ShareRequest, link: str, now: float) -> int:
        if not wanted.notify:
            return 0
        has_password = wanted.password is not None
        queued = sum(outbox_store.enqueue(db, message, self._cipher, now) for message in share_messages(
            share.id, wanted.email, wanted.mobile, link, share.expires_at, share.language, self._practice,
            has_password))
        hours = self._settings.reminder_hours
        if hours is not None and share.expires_at - hours * 3600 > now:
            queued += sum(outbox_store.enqueue(db, message, self._cipher, now, send_at=share.expires_at - hours * 3600)
                          for message in share_messages(share.id, wanted.email, wanted.mobile, link, share.expires_at,
                                                        share.language, self._practice, has_password, reminder=True))
        return queued

    @staticmethod
    def _visible(db: Any, principal: Principal, share_id: int) -> Share:
        share = share_store.share_by_id(db, share_id)
        if share is None or not (principal.is_admin or share.created_by == principal.username):
            raise NotFound(f"No share {share_id}")
        return share

    def _view(self, db: Any, share: Share, now: float) -> dict[str, Any]:
        studies = share_store.studies_of(db, share.id)
        return {
            "id": share.id, "state": state(facts_of(share), now).value, "patient_id": share.patient_id,
            "studies": [{"study_uid": s.study_uid, "orthanc_id": s.orthanc_study_id} for s in studies],
            "created_by": share.created_by, "created_at": _iso(share.created_at),
            "expires_at": _iso(share.expires_at), "password": share.password_hash is not None,
            "max_downloads": share.max_downloads, "downloads": share.downloads, "one_time": share.one_time,
            "opens": share.opens, "first_opened_at": _iso(share.first_opened_at),
            "last_opened_at": _iso(share.last_opened_at), "language": share.language,
            "recipient": {"email": self._masked(share.recipient_email, mask_email),
                          "mobile": self._masked(share.recipient_mobile, mask_phone)},
            "consent": json.loads(share.consent), "revoked_at": _iso(share.revoked_at), "revoked_by": share.revoked_by,
        }

    def _encrypt(self, value: str) -> str | None:
        return self._cipher.encrypt(value.encode()).decode() if value else None

    def _masked(self, token: str | None, mask: Callable[[str], str]) -> str | None:
        if not token:
            return None
        try:
            return mask(self._cipher.decrypt(token.encode()).decode())
        except InvalidToken:
            return "(unreadable with the configured keys)"

    def _record(self, principal: Principal, ip: str, now: float, action: str, share: Share,
                studies: list[dict[str, str]], detail: dict[str, Any]) -> None:
        record = AuditRecord(ts=iso_utc(now), actor=principal.username or "", action=action, outcome="success",
                             reason=f"share {share.id}", roles=",".join(sorted(principal.roles)), source_ip=ip,
                             route_class="shares", level="study", patient_id=share.patient_id[:128],
                             study_uid=",".join(s["study_uid"] for s in studies)[:128],
                             detail=json.dumps({"share": share.id, "studies": [s["study_uid"] for s in studies],
                                                **detail}))
        if not self._audit(record):
            raise StoreUnavailable("The audit could not be written")


def facts_of(share: Share) -> ShareFacts:
    return ShareFacts(share.expires_at, share.revoked_at is not None, share.max_downloads, share.downloads,
                      share.one_time, share.opens)


def _iso(epoch: float | None) -> str | None:
    return iso_utc(epoch) if epoch is not None else None
