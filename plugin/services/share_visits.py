"""Patient share links, the patient's side: the landing page (counts nothing: e-mail scanners and
link previews open links), the password, the viewing session, previews, the report, the counted
download, and the patient's own access log.

- A wrong or malformed token is one answer whatever the reason (404), counted per address, which is
  throttled past Gate.Shares.BadLinksPerAddress.
- Wrong passwords lock the share for PasswordLockMinutes after PasswordFailures of them.
- A viewing session is a cookie scoped to /share/, kept as a hash, checked against its share at every
  request: revoking, expiry or the last download end it at once, on every node.
- Everything a session shows is of the share's studies, checked by locating what a URL names (an
  instance, a study) in Orthanc, never by trusting the URL. The session never reaches a core route.
- The download is counted, then handed to the core as a single-use ticket for exactly one archive
  route, which Orthanc streams itself: nothing of the ZIP passes through Python (the Python plugin on
  Orthanc 1.10 can only answer whole buffers). Several studies on an Orthanc before 1.12.2, whose
  archive routes name one resource per GET, are the exception: that ZIP is built in memory.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from plugin.audit.log import AuditLog
from plugin.audit.record import AuditRecord, iso_utc
from plugin.config import GateConfig
from plugin.errors import GateError, StoreUnavailable
from plugin.identity.secrets import verify_password
from plugin.policies.lockout import Attempts, LockoutRule, after_failure, retry_after
from plugin.policies.shares import (
    LANGUAGE_CODES,
    MAX_PASSWORD,
    TICKET_SECONDS,
    State,
    archive_target,
    cookie_value,
    encodable,
    looks_like_token,
    new_secret,
    redacted_path,
    same_hash,
    secret_hash,
    state,
    ticket_opens,
)
from plugin.policies.types import Role
from plugin.services.access import ORTHANC_ID, ResourceLocator
from plugin.services.core import Core, CoreError
from plugin.services.shares import facts_of, share_actor
from plugin.services.study_contents import report_pdf, study_contents
from plugin.store import accounts
from plugin.store import attempts as attempt_rows
from plugin.store import shares as share_store
from plugin.store.db import Store
from plugin.store.doctors import doctor_by_username
from plugin.store.models import Share, ShareSession, ShareStudy, ShareTicket

SESSION_COOKIE = "gate_share"
TICKET_COOKIE = "gate_download"
PREVIEW_SIZE = 320
MAX_PREVIEWS_PER_STUDY = 8
ACCESS_LOG_ROWS = 100


class ShareUnknown(GateError):
    """A token that opens nothing: the same for every reason (malformed, never issued, mistyped)."""

    status = 404
    code = "not_found"


class ShareGone(GateError):
    """A real share that stopped working: expired, revoked, used (one-time) or out of downloads."""

    status = 410
    code = "gone"

    def __init__(self, reason: State) -> None:
        super().__init__(f"This link no longer works ({reason.value})")
        self.reason = reason


class ShareThrottled(GateError):
    status = 403
    code = "rate_limited"

    def __init__(self, retry_after: float) -> None:
        super().__init__("Too many wrong links from this address; try again later")
        self.retry_after = retry_after


class SessionOver(GateError):
    """No viewing session (never opened here, closed, timed out): open the link again."""

    status = 403
    code = "no_share_session"


@dataclass(frozen=True)
class Landing:
    share: Share
    study_count: int


@dataclass(frozen=True)
class PasswordRefused:
    locked: bool
    retry_after: float
    # What the landing page shows again with its message (not part of what the refusal is).
    landing: Landing | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Opened:
    cookie: str
    max_age: int
    language: str


@dataclass(frozen=True)
class Visit:
    """An open viewing session and its share (as read at this request)."""

    session_hash: str
    csrf_token: str
    language: str
    share: Share
    studies: tuple[ShareStudy, ...]

    @property
    def study_oids(self) -> frozenset[str]:
        return frozenset(s.orthanc_study_id for s in self.studies)


@dataclass(frozen=True)
class StudyCard:
    orthanc_id: str
    study_date: str  # DICOM DA
    modalities: tuple[str, ...]
    description: str
    previews: tuple[str, ...]  # instance ids
    has_report: bool


@dataclass(frozen=True)
class AccessEntry:
    at: float
    role: str  # doctor | radiologist | admin | staff | patient (this link) | patient_link (another link)
    name: str
    practice: str
    what: str  # viewed | downloaded


@dataclass(frozen=True)
class Download:
    """A counted download: a redirect to `target` carrying the ticket, or the ZIP itself."""

    target: str | None = None
    ticket: str | None = None
    archive: bytes | None = None


class ShareVisits:
    def __init__(self, store: Store, core: Core, locator: ResourceLocator, config: GateConfig, audit: AuditLog,
                 clock: Callable[[], float]) -> None:
        self._store = store
        self._core = core
        self._locator = locator
        self._settings = config.shares
        self._practice = config.practice_name
        self._audit = audit
        self._clock = clock
        minutes = self._settings.bad_link_minutes * 60
        self._bad_link_rule = LockoutRule(self._settings.bad_links_per_address, minutes, minutes)
        lock = self._settings.password_lock_minutes * 60
        self._password_rule = LockoutRule(self._settings.password_failures, lock, lock)

    # -- the link ----------------------------------------------------------------------------------

    def landing(self, token: str, ip: str, path: str) -> Landing:
        """What the landing page shows; raises ShareUnknown, ShareGone or ShareThrottled."""
        now = self._clock()
        # As for opening: a one-time link opened once already is gone here too (nothing is counted).
        share = self._share_of_token(token, ip, path, now, opening=True)
        self._note(share, ip, path, now, "share.landing", "allow", "landing page (counts nothing)")
        return self._landing_of(share)

    def _landing_of(self, share: Share) -> Landing:
        with self._store.read() as db:
            return Landing(share, len(share_store.studies_of(db, share.id)))

    def open(self, token: str, password: str, language: str | None, ip: str, path: str) -> Opened | PasswordRefused:
        """The landing form posted: check the password (if the share has one), then open a viewing
        session in `language` (none or unknown: the share's). Counts an open; a one-time link opens once."""
        now = self._clock()
        share = self._share_of_token(token, ip, path, now, opening=True)
        language = language if language in LANGUAGE_CODES else share.language
        key = f"share:{share.id}"
        if share.password_hash is not None:
            with self._store.read() as db:
                held = attempt_rows.load(db, [key]).get(key)
            wait = retry_after(held, now) if held else 0.0
            if wait > 0:
                self._note(share, ip, path, now, "share.password", "deny", "locked after wrong passwords",
                           durable=True)
                return PasswordRefused(True, wait, self._landing_of(share))
            if not _password_ok(share.password_hash, password):
                locked = self._count_failure(key, self._password_rule, now)
                self._note(share, ip, path, now, "share.password", "failure",
                           "wrong password; share locked" if locked else "wrong password", durable=True)
                wait = self._password_rule.lock if locked else 0.0
                return PasswordRefused(locked, wait, self._landing_of(share))
        cookie, csrf = new_secret(), secrets.token_urlsafe(24)
        minutes = self._settings.session_minutes
        expires = min(now + minutes * 60, share.expires_at)
        with self._store.transaction() as db:
            if not share_store.count_open(db, share.id, now):
                raise ShareGone(self._state_now(share.id, now, opening=True))
            share_store.add_session(db, ShareSession(id=secret_hash(cookie), share_id=share.id, csrf_token=csrf,
                                                     language=language, source_ip=ip[:64], created_at=now,
                                                     expires_at=expires))
            attempt_rows.forget(db, key)
        self._note(share, ip, path, now, "share.open", "success", "viewing session opened", durable=True)
        return Opened(cookie, max(1, int(expires - now)), language)

    # -- the viewing session -----------------------------------------------------------------------

    def visit(self, cookie_header: str, language: str | None = None) -> Visit:
        """The session this browser holds, with its share; SessionOver when none, ShareGone when
        its share stopped working (the session ends with it). `language` switches its language."""
        now = self._clock()
        cookie = cookie_value(cookie_header, SESSION_COOKIE)
        if not cookie:
            raise SessionOver("No viewing session: open the link in your message again")
        session_hash = secret_hash(cookie)
        with self._store.read() as db:
            session = share_store.session_by_hash(db, session_hash)
            share = share_store.share_by_id(db, session.share_id) if session is not None else None
            studies = tuple(share_store.studies_of(db, share.id)) if share is not None else ()
        if session is None or share is None or session.expires_at <= now:
            raise SessionOver("The viewing session ended: open the link in your message again")
        stopped = state(facts_of(share), now)
        if stopped is not State.ACTIVE:
            with self._store.transaction() as db:
                share_store.end_session(db, session_hash)
            raise ShareGone(stopped)
        if language and language != session.language:
            with self._store.transaction() as db:
                share_store.set_session_language(db, session_hash, language)
        return Visit(session_hash, session.csrf_token, language or session.language, share, studies)

    def studies(self, visit: Visit, ip: str, path: str) -> list[StudyCard]:
        """The share's studies as the page shows them (audited as one view of them)."""
        now = self._clock()
        cards = []
        for study in visit.studies:
            try:
                found = self._core.get(f"/studies/{study.orthanc_study_id}")
            except CoreError:
                continue  # deleted from Orthanc since it was shared
            tags = found.get("MainDicomTags") or {}
            contents = study_contents(self._core, study.orthanc_study_id)
            cards.append(StudyCard(study.orthanc_study_id, str(tags.get("StudyDate", "")), contents.modalities,
                                   str(tags.get("StudyDescription", "")),
                                   tuple(instance for _series, instance in contents.previews[:MAX_PREVIEWS_PER_STUDY]),
                                   contents.report_instance is not None))
        self._read(visit, ip, path, now, "share.view", "studies page")
        return cards

    def preview(self, visit: Visit, instance_oid: str, ip: str, path: str) -> tuple[bytes, str]:
        """A preview image of an instance of the share's studies, rendered by Orthanc."""
        now = self._clock()
        located = self._locator.by_orthanc_id("instance", instance_oid) if ORTHANC_ID.match(instance_oid) else None
        if located is None or located.study_oid not in visit.study_oids:
            self._refuse(visit, ip, path, now, "share.preview", "not an instance of the shared studies")
            raise ShareUnknown("No such image")
        self._read(visit, ip, path, now, "view", "preview image", located.study_uid or "")
        try:
            return self._core.preview_image(instance_oid, PREVIEW_SIZE)
        except CoreError:
            raise ShareUnknown("No such image") from None

    def report(self, visit: Visit, study_oid: str, ip: str, path: str) -> bytes:
        now = self._clock()
        if study_oid not in visit.study_oids:
            self._refuse(visit, ip, path, now, "share.report", "not a shared study")
            raise ShareUnknown("No such report")
        instance = study_contents(self._core, study_oid).report_instance
        content = report_pdf(self._core, instance) if instance is not None else None
        if content is None:
            raise ShareUnknown("No such report")
        study = next(s for s in visit.studies if s.orthanc_study_id == study_oid)
        self._note(visit.share, ip, path, now, "share.report", "success", "report opened", durable=True,
                   study_uid=study.study_uid)
        return content

    def download(self, visit: Visit, ip: str, path: str) -> Download:
        """Count one download (ShareGone when none is left), then: a ticket for the core's archive
        route of exactly the shared studies, or (see the module's note) the ZIP."""
        now = self._clock()
        oids = [s.orthanc_study_id for s in visit.studies]
        target = archive_target(oids, self._core.archives_many())
        with self._store.transaction() as db:
            if not share_store.count_download(db, visit.share.id, now):
                raise ShareGone(self._state_now(visit.share.id, now))
            ticket = None
            if target is not None:
                ticket = new_secret()
                share_store.add_ticket(db, ShareTicket(ticket_hash=secret_hash(ticket), share_id=visit.share.id,
                                                       target=target, created_at=now, expires_at=now + TICKET_SECONDS))
        self._note(visit.share, ip, path, now, "share.download", "success",
                   f"download {visit.share.downloads + 1}" + (f" of {visit.share.max_downloads}"
                                                              if visit.share.max_downloads else ""), durable=True)
        if target is not None:
            return Download(target=target, ticket=ticket)
        return Download(archive=self._core.post_raw("/tools/create-archive", json.dumps({"Resources": oids})))

    def close(self, visit: Visit) -> None:
        with self._store.transaction() as db:
            share_store.end_session(db, visit.session_hash)

    def access_log(self, visit: Visit) -> list[AccessEntry] | None:
        """Who opened the shared studies' images, and when (POPIA section 23): None when the practice
        has not turned it on (Gate.Shares.PatientAccessLog)."""
        if not self._settings.patient_access_log:
            return None
        uids = [s.study_uid for s in visit.studies]
        entries = []
        with self._store.read() as db:
            events = share_store.image_reads(db, visit.share.patient_id, uids, ACCESS_LOG_ROWS)
            for event in events:
                if event.actor.startswith("share:"):
                    # This link, or another link the practice made for the same patient.
                    role = "patient" if event.actor == share_actor(visit.share.id) else "patient_link"
                    entries.append(AccessEntry(_epoch(event.ts), role, "", self._practice, _what(event.action)))
                    continue
                if event.actor.startswith("gate:") or event.actor == "anonymous" or not event.actor:
                    continue
                entries.append(self._clinician_entry(db, event))
        return entries

    # -- the ticket, at the gate -------------------------------------------------------------------

    def redeem(self, method: str, uri: str, query: Mapping[str, str], headers: Mapping[str, str],
               ip: str) -> bool | None:
        """The request filter's question: None when this request carries no download ticket for
        exactly what it asks (the usual checks decide it); True when its ticket opens it (spent
        now); False when the ticket is spent, late, or its share stopped."""
        ticket = cookie_value(headers.get("cookie", ""), TICKET_COOKIE)
        if not ticket or method != "GET":
            return None
        now = self._clock()
        ticket_hash = secret_hash(ticket)
        with self._store.read() as db:  # a cookie that names no ticket costs no write lock
            found = share_store.ticket_by_hash(db, ticket_hash)
        if found is None or not ticket_opens(found.target, method, uri, query):
            return None
        with self._store.transaction() as db:
            spent = share_store.redeem_ticket(db, ticket_hash, now)
            share = share_store.share_by_id(db, found.share_id)
        working = share is not None and share.revoked_at is None and share.expires_at > now
        if share is not None:
            outcome, reason = ("allow", "download ticket") if spent and working else \
                ("deny", "download ticket spent, late, or its share stopped")
            self._note(share, ip, uri, now, "download", outcome, reason, durable=True)
        return spent is not None and working

    # -- steps -------------------------------------------------------------------------------------

    def _share_of_token(self, token: str, ip: str, path: str, now: float, opening: bool = False) -> Share:
        wait = self._bad_link_wait(ip, now)
        if wait > 0:
            raise ShareThrottled(wait)
        share = None
        if looks_like_token(token):
            with self._store.read() as db:
                share = share_store.share_by_token_hash(db, secret_hash(token))
        # The store finds the row by the token's hash; the hash found is compared again here in
        # constant time, so no decision rests on how a database compares strings.
        if share is not None and not same_hash(share.token_hash, token):
            share = None
        if share is None:
            self._count_failure(f"share-ip:{ip}", self._bad_link_rule, now)
            record = AuditRecord(ts=iso_utc(now), actor="anonymous", action="share.landing", outcome="deny",
                                 reason="no share has this link", source_ip=ip, method="GET",
                                 path=redacted_path(path), route_class="share")
            self._audit.record_denial(("share bad link", ip), f"address {ip}", lambda: record, now)
            raise ShareUnknown("No such link")
        stopped = state(facts_of(share), now, opening=opening)
        if stopped is not State.ACTIVE:
            self._note(share, ip, path, now, "share.landing", "deny", f"link no longer works ({stopped.value})")
            raise ShareGone(stopped)
        return share

    def _bad_link_wait(self, ip: str, now: float) -> float:
        key = f"share-ip:{ip}"
        with self._store.read() as db:
            held = attempt_rows.load(db, [key]).get(key)
        return retry_after(held, now) if held else 0.0

    def _count_failure(self, key: str, rule: LockoutRule, now: float) -> bool:
        """Count one failure under `key`; True when it has just locked."""
        with self._store.transaction() as db:
            before = attempt_rows.load(db, [key]).get(key, Attempts(0, now, 0.0))
            after = after_failure(before, now, rule)
            attempt_rows.save(db, key, after)
        return after.locked_until > max(before.locked_until, now)

    def _state_now(self, share_id: int, now: float, opening: bool = False) -> State:
        with self._store.read() as db:
            share = share_store.share_by_id(db, share_id)
        return state(facts_of(share), now, opening) if share is not None else State.REVOKED

    def _clinician_entry(self, db: Any, event: Any) -> AccessEntry:
        roles = set(event.roles.split(","))
        role = ("admin" if Role.ADMIN in roles else "radiologist" if Role.RADIOLOGIST in roles
                else "doctor" if Role.REFERRING_DOCTOR in roles else "staff")
        doctor = doctor_by_username(db, event.actor)
        practice = (doctor.practice if doctor is not None and doctor.practice else self._practice)
        name = ""
        if self._settings.access_log_names:
            if doctor is not None:
                name = " ".join(p for p in (doctor.title, doctor.first_name, doctor.last_name) if p)
            else:
                user = accounts.user_by_name(db, event.actor)
                name = (user.display_name if user is not None and user.display_name else event.actor)
        return AccessEntry(_epoch(event.ts), role, name, practice, _what(event.action))

    def _read(self, visit: Visit, ip: str, path: str, now: float, action: str, reason: str,
              study_uid: str = "") -> None:
        """An image read: one durable row per study and coalescing window, repeats counted."""
        share = visit.share
        key = (share_actor(share.id), visit.session_hash, action, study_uid)
        window = self._audit.cover_read(key, lambda: self._record(share, ip, path, now, action, "allow", reason,
                                                                  study_uid), now)
        if window is None:
            raise StoreUnavailable("The audit could not be written; nothing is shown")

    def _refuse(self, visit: Visit, ip: str, path: str, now: float, action: str, reason: str) -> None:
        share = visit.share
        self._audit.record_denial(("share refused", share.id, path), share_actor(share.id),
                                  lambda: self._record(share, ip, path, now, action, "deny", reason), now)

    def _note(self, share: Share, ip: str, path: str, now: float, action: str, outcome: str, reason: str,
              durable: bool = False, study_uid: str = "") -> None:
        if not self._audit.record(self._record(share, ip, path, now, action, outcome, reason, study_uid),
                                  durable=durable) and durable:
            raise StoreUnavailable("The audit could not be written")

    @staticmethod
    def _record(share: Share, ip: str, path: str, now: float, action: str, outcome: str, reason: str,
                study_uid: str = "") -> AuditRecord:
        return AuditRecord(ts=iso_utc(now), actor=share_actor(share.id), action=action, outcome=outcome,
                           reason=reason, roles="patient", source_ip=ip, method="GET",
                           path=redacted_path(path)[:512], route_class="share", level="study",
                           patient_id=share.patient_id[:128], study_uid=study_uid[:128],
                           detail=json.dumps({"share": share.id}))


def _password_ok(stored: str, typed: str) -> bool:
    if not typed or len(typed) > MAX_PASSWORD or not encodable(typed):
        return False  # never hashed: a 10,000-character "password" costs nothing and is wrong
    return verify_password(stored, typed)


def _epoch(ts: str) -> float:
    try:
        return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _what(action: str) -> str:
    return "downloaded" if "download" in action else "viewed"
