"""services/share_visits.py, the patient's side of a share link, with a real store, a fake Orthanc and a
recording audit: the landing page (counts nothing), wrong links (one answer, throttled per address),
stopped shares, the password and its lock, viewing sessions, previews, the report, counted downloads
and their single-use tickets, and the patient's access log."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from plugin.audit.log import append_now
from plugin.audit.record import AuditRecord, iso_utc
from plugin.config import load_gate_config
from plugin.errors import StoreUnavailable
from plugin.notify.cipher import contact_cipher
from plugin.policies.shares import MAX_PASSWORD, State, looks_like_token, new_secret
from plugin.policies.types import Principal
from plugin.services import share_visits as visits_module
from plugin.services.access import AccessService, ResourceLocator
from plugin.services.core import orthanc_id
from plugin.services.share_visits import (
    AccessEntry,
    Opened,
    PasswordRefused,
    SessionOver,
    ShareGone,
    ShareThrottled,
    ShareUnknown,
    ShareVisits,
)
from plugin.services.shares import ShareService
from plugin.store.models import Doctor, Share, ShareSession, ShareTicket, User
from tests.unit.conftest import T0
from tests.unit.fake_core import FakeCore, StudyIds

ADMIN = Principal("root1", frozenset({"admin"}), "session")
PRACTICE = "Umhlanga Radiology"
IP = "196.25.1.10"
PASSWORD = "correct horse battery"
PDF = b"%PDF-1.4 a report\n%%EOF"  # odd length: stored padded with one NUL


@pytest.fixture(autouse=True)
def _cheap(cheap_argon2) -> None:
    """Shares with a password are hashed and checked with argon2id at a tiny cost."""


@dataclass
class ShareCore(FakeCore):
    """The fake core, with POST /tools/create-archive (the in-memory ZIP) too."""

    archive_bodies: list[Any] = field(default_factory=list)

    def post_raw(self, path: str, body: bytes | str) -> bytes:
        if path == "/tools/create-archive":
            self.calls.append(("POST", path))
            self.archive_bodies.append(json.loads(body))
            return b"PK\x03\x04 the studies"
        return super().post_raw(path, body)


class RecordingAudit:
    """What ShareVisits asks of plugin.audit.log.AuditLog, writing each row to the store at once (so the
    access log and the share's events read them); `ok = False` is an audit that cannot write."""

    def __init__(self, store) -> None:
        self.store = store
        self.ok = True
        self.records: list[tuple[AuditRecord, bool]] = []
        self.reads: list[AuditRecord] = []
        self.denials: list[tuple[Hashable, str, AuditRecord]] = []
        self._windows: set[Hashable] = set()

    def record(self, record: AuditRecord, durable: bool = False) -> bool:
        self.records.append((record, durable))
        if not self.ok:
            return False
        append_now(self.store, record)
        return True

    def cover_read(self, key: Hashable, make_record: Callable[[], AuditRecord], now: float) -> object | None:
        if not self.ok:
            return None
        if key not in self._windows:  # one row per window, repeats only counted
            self._windows.add(key)
            record = make_record()
            self.reads.append(record)
            append_now(self.store, record)
        return key

    def record_denial(self, key: Hashable, source: str, make_record: Callable[[], AuditRecord], now: float) -> None:
        self.denials.append((key, source, make_record()))

    def actions(self) -> list[tuple[str, str, bool]]:
        return [(r.action, r.outcome, durable) for r, durable in self.records]

    def everything(self) -> list[AuditRecord]:
        return [r for r, _ in self.records] + self.reads + [r for _, _, r in self.denials]


class Setup:
    def __init__(self, store, clock, tmp_path: Path, **shares) -> None:
        self.store, self.clock = store, clock
        self.core = ShareCore()
        self.a = self.core.add_study("PAT-1", "1.2.3.1")
        self.b = self.core.add_study("PAT-1", "1.2.3.2", modality="MR")
        self.c = self.core.add_study("PAT-2", "2.1")
        self.locator = ResourceLocator(self.core)
        settings = {"PasswordFailures": 3, "PasswordLockMinutes": 15, "BadLinksPerAddress": 3, "BadLinkMinutes": 15,
                    "SessionMinutes": 30, **shares}
        self.config = load_gate_config({"Gate": {"PublicUrl": "https://pacs.example.co.za", "PracticeName": PRACTICE,
                                                 "Shares": settings}}, tmp_path)
        self.audit = RecordingAudit(store)
        self.shares = ShareService(store, AccessService(store, self.locator, clock=clock), self.config,
                                   contact_cipher(Fernet.generate_key()), lambda _record: True)
        self.visits = ShareVisits(store, self.core, self.locator, self.config, self.audit, clock)

    def share(self, studies: list[StudyIds] | None = None, **data) -> tuple[int, str]:
        """A share made by an admin now: (id, token)."""
        refs = [s.study for s in (studies or [self.a])]
        created = self.shares.create(ADMIN, {"studies": refs, **data}, self.clock(), "10.0.0.1")
        return created["id"], created["token"]

    def open(self, token: str, password: str = "", language: str = "en", ip: str = IP):
        return self.visits.open(token, password, language, ip, f"/share/{token}")

    def session(self, token: str, **kwargs) -> str:
        """Open the share: the browser's Cookie header."""
        opened = self.open(token, **kwargs)
        assert isinstance(opened, Opened), opened
        return f"theme=dark; gate_share={opened.cookie}"

    def landing(self, token: str, ip: str = IP):
        return self.visits.landing(token, ip, f"/share/{token}")

    def row(self, share_id: int) -> Share:
        with self.store.read() as db:
            return db.get(Share, share_id)

    def sessions(self) -> list[ShareSession]:
        with self.store.read() as db:
            return list(db.execute(select(ShareSession)).scalars())

    def tickets(self) -> list[ShareTicket]:
        with self.store.read() as db:
            return list(db.execute(select(ShareTicket)).scalars())


@pytest.fixture
def env(store, clock, tmp_path) -> Setup:
    return Setup(store, clock, tmp_path)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def gone(call: Callable[[], Any]) -> State:
    with pytest.raises(ShareGone) as caught:
        call()
    assert caught.value.status == 410
    return caught.value.reason


# -- the landing page ------------------------------------------------------------------------------

def test_the_landing_page_counts_nothing_and_is_audited_without_the_token(env):
    share_id, token = env.share([env.a, env.b])
    for _ in range(3):
        landing = env.landing(token)
    assert (landing.share.id, landing.study_count) == (share_id, 2)
    row = env.row(share_id)
    assert (row.opens, row.first_opened_at, row.downloads) == (0, None, 0)
    record, durable = env.audit.records[-1]
    assert (record.action, record.outcome, record.actor, record.patient_id) == (
        "share.landing", "allow", f"share:{share_id}", "PAT-1")
    assert record.path == "/share/(link)" and record.source_ip == IP


@pytest.mark.parametrize("token", ["never-issued", "short", "x" * 42 + "=", "../../studies", "view"])
def test_a_wrong_link_is_unknown_whatever_is_wrong_with_it(env, token):
    env.share()
    with pytest.raises(ShareUnknown) as caught:
        env.landing(token)
    assert caught.value.status == 404
    [(_key, source, record)] = env.audit.denials
    assert (record.actor, record.action, record.outcome, record.source_ip) == ("anonymous", "share.landing", "deny",
                                                                             IP)
    assert source == f"address {IP}"
    assert token not in record.path or token == "view"


def test_a_well_formed_token_that_was_never_issued_is_unknown(env):
    env.share()
    with pytest.raises(ShareUnknown):
        env.landing(new_secret())
    with pytest.raises(ShareUnknown):
        env.open(new_secret(), PASSWORD)


def test_wrong_links_from_one_address_are_throttled_for_a_while(env, clock):
    _share_id, token = env.share()
    for _ in range(3):
        with pytest.raises(ShareUnknown):
            env.landing(new_secret())
    with pytest.raises(ShareThrottled) as caught:
        env.landing(token)  # even the right link, from that address
    assert caught.value.status == 403 and caught.value.retry_after == 15 * 60
    with pytest.raises(ShareThrottled):
        env.open(token)
    assert env.landing(token, ip="196.25.1.11").study_count == 1  # another address is not held
    clock.advance(15 * 60)
    assert env.landing(token).study_count == 1


def test_wrong_posted_links_count_as_wrong_links_too(env):
    _share_id, token = env.share()
    for n in range(3):
        with pytest.raises(ShareUnknown):
            env.open(f"wrong-{n}")
    with pytest.raises(ShareThrottled):
        env.landing(token)


# -- stopped shares --------------------------------------------------------------------------------

def test_an_expired_share_is_gone(env, clock):
    share_id, token = env.share(valid_hours=1)
    clock.advance(3600)
    assert gone(lambda: env.landing(token)) is State.EXPIRED
    assert gone(lambda: env.open(token)) is State.EXPIRED
    record, _durable = env.audit.records[-1]
    assert (record.action, record.outcome, record.actor) == ("share.landing", "deny", f"share:{share_id}")


def test_a_revoked_share_is_gone(env):
    share_id, token = env.share()
    env.shares.revoke(ADMIN, share_id, T0, "10.0.0.1")
    assert gone(lambda: env.landing(token)) is State.REVOKED
    assert gone(lambda: env.open(token)) is State.REVOKED


def test_a_share_out_of_downloads_is_gone(env):
    _share_id, token = env.share(max_downloads=1)
    visit = env.visits.visit(env.session(token))
    env.visits.download(visit, IP, "/share/download")
    assert gone(lambda: env.landing(token)) is State.EXHAUSTED
    assert gone(lambda: env.open(token)) is State.EXHAUSTED


def test_a_one_time_link_opens_once_and_its_session_goes_on(env):
    share_id, token = env.share(one_time=True)
    first = env.session(token)
    assert gone(lambda: env.open(token)) is State.USED
    assert env.visits.visit(first).share.id == share_id
    assert env.row(share_id).opens == 1


def test_a_wrong_password_does_not_use_a_one_time_link(env):
    _share_id, token = env.share(one_time=True, password=PASSWORD)
    assert env.open(token, "wrong password") == PasswordRefused(False, 0.0)
    assert isinstance(env.open(token, PASSWORD), Opened)
    assert gone(lambda: env.open(token, PASSWORD)) is State.USED


# -- opening: the password and the viewing session -------------------------------------------------

def test_opening_a_share_without_a_password_starts_a_session_kept_as_a_hash(env):
    share_id, token = env.share()
    opened = env.open(token, language="af")
    assert isinstance(opened, Opened)
    assert len(opened.cookie) == 43 and looks_like_token(opened.cookie) and opened.cookie != token
    assert (opened.max_age, opened.language) == (30 * 60, "af")
    [session] = env.sessions()
    assert session.id == sha256(opened.cookie)
    assert (session.share_id, session.language, session.source_ip, session.created_at, session.expires_at) == (
        share_id, "af", IP, T0, T0 + 30 * 60)
    row = env.row(share_id)
    assert (row.opens, row.first_opened_at, row.last_opened_at) == (1, T0, T0)
    assert ("share.open", "success", True) in env.audit.actions()


def test_a_session_ends_no_later_than_its_share(env):
    _share_id, token = env.share(valid_hours=0.25)
    opened = env.open(token)
    assert opened.max_age == 15 * 60
    assert env.sessions()[0].expires_at == T0 + 15 * 60


def test_each_open_is_counted_and_the_first_kept(env, clock):
    share_id, token = env.share()
    env.open(token)
    clock.advance(600)
    env.open(token)
    row = env.row(share_id)
    assert (row.opens, row.first_opened_at, row.last_opened_at) == (2, T0, T0 + 600)
    assert len(env.sessions()) == 2


def test_wrong_passwords_lock_the_share_for_a_while(env, clock):
    share_id, token = env.share(password=PASSWORD)
    assert env.open(token, "wrong 1") == PasswordRefused(False, 0.0)
    assert env.open(token, "wrong 2") == PasswordRefused(False, 0.0)
    assert env.open(token, "wrong 3") == PasswordRefused(True, 15 * 60)
    assert env.open(token, PASSWORD) == PasswordRefused(True, 15 * 60)  # the right one too, while locked
    clock.advance(15 * 60 - 1)
    assert env.open(token, PASSWORD) == PasswordRefused(True, 1.0)
    clock.advance(1)
    assert isinstance(env.open(token, PASSWORD), Opened)
    assert env.row(share_id).opens == 1
    assert env.audit.actions()[-6:] == [("share.password", "failure", True)] * 3 + [
        ("share.password", "deny", True)] * 2 + [("share.open", "success", True)]
    assert env.open(token, "wrong 4") == PasswordRefused(False, 0.0)  # counted afresh after an open


def test_a_share_with_a_password_refuses_none(env):
    _share_id, token = env.share(password=PASSWORD)
    assert env.open(token, "") == PasswordRefused(False, 0.0)
    assert env.sessions() == []


def test_a_huge_password_is_wrong_without_being_hashed(env, monkeypatch):
    checked: list[int] = []
    real = visits_module.verify_password

    def spy(stored: str, typed: str) -> bool:
        checked.append(len(typed))
        return real(stored, typed)

    monkeypatch.setattr(visits_module, "verify_password", spy)
    _share_id, token = env.share(password=PASSWORD)
    assert env.open(token, "p" * 10_000) == PasswordRefused(False, 0.0)
    assert env.open(token, "p" * (MAX_PASSWORD + 1)) == PasswordRefused(False, 0.0)
    assert checked == []
    assert env.open(token, "p" * MAX_PASSWORD) == PasswordRefused(True, 15 * 60)
    assert checked == [MAX_PASSWORD]


def test_a_password_that_cannot_be_encoded_is_wrong_not_a_crash(env):
    """A JSON form body may carry a lone surrogate ("\\ud800"), which argon2 cannot encode."""
    _share_id, token = env.share(password=PASSWORD)
    assert env.open(token, "\ud800" + PASSWORD) == PasswordRefused(False, 0.0)


def test_no_session_without_its_audit(env):
    _share_id, token = env.share()
    env.audit.ok = False
    with pytest.raises(StoreUnavailable):
        env.open(token)


# -- the viewing session ---------------------------------------------------------------------------

# Fixed values (a well-formed cookie that was never issued): test ids must be the same in every
# collection, which pytest-xdist's workers compare.
UNISSUED = "Jx3VqPzWm8Rk2TfYb6NcLd0HsA4gE7uK9oQiXyZ1wBv"


@pytest.mark.parametrize("header", ["", "theme=dark", "gate_share=", f"gate_share={UNISSUED}",
                                    "gate_share=not-a-cookie", f"xgate_share={UNISSUED}"])
def test_no_session_without_a_known_cookie(env, header):
    _share_id, token = env.share()
    env.open(token)
    with pytest.raises(SessionOver) as caught:
        env.visits.visit(header)
    assert caught.value.status == 403


def test_a_visit_names_the_share_and_its_studies(env):
    share_id, token = env.share([env.b, env.a])
    visit = env.visits.visit(env.session(token, language="zu"))
    assert visit.share.id == share_id and visit.language == "zu"
    assert [s.orthanc_study_id for s in visit.studies] == [env.b.study, env.a.study]
    assert visit.study_oids == {env.a.study, env.b.study}
    assert visit.session_hash == env.sessions()[0].id and visit.csrf_token == env.sessions()[0].csrf_token


def test_a_session_times_out(env, clock):
    _share_id, token = env.share()
    header = env.session(token)
    clock.advance(30 * 60 - 1)
    env.visits.visit(header)
    clock.advance(1)
    with pytest.raises(SessionOver):
        env.visits.visit(header)


def test_revoking_ends_open_sessions_at_their_next_request(env):
    share_id, token = env.share()
    header = env.session(token)
    other = env.session(token)
    env.shares.revoke(ADMIN, share_id, T0, "10.0.0.1")
    assert gone(lambda: env.visits.visit(header)) is State.REVOKED
    assert len(env.sessions()) == 1  # that one ended; the other ends at its own next request
    assert gone(lambda: env.visits.visit(other)) is State.REVOKED
    assert env.sessions() == []
    with pytest.raises(SessionOver):
        env.visits.visit(header)


def test_the_last_download_ends_the_session(env):
    _share_id, token = env.share(max_downloads=1)
    header = env.session(token)
    env.visits.download(env.visits.visit(header), IP, "/share/download")
    assert gone(lambda: env.visits.visit(header)) is State.EXHAUSTED
    assert env.sessions() == []


def test_the_session_language_switches_and_stays(env):
    _share_id, token = env.share(language="af")
    header = env.session(token, language="af")
    assert env.visits.visit(header, "zu").language == "zu"
    assert env.sessions()[0].language == "zu"
    assert env.visits.visit(header).language == "zu"


def test_closing_ends_the_session(env):
    _share_id, token = env.share()
    header = env.session(token)
    env.visits.close(env.visits.visit(header))
    assert env.sessions() == []
    with pytest.raises(SessionOver):
        env.visits.visit(header)


# -- what a session shows --------------------------------------------------------------------------

def test_the_studies_page_shows_the_shared_studies_audited_once_per_window(env):
    env.core.add_report(env.a)
    share_id, token = env.share([env.a, env.b])
    visit = env.visits.visit(env.session(token))
    cards = env.visits.studies(visit, IP, "/share/view")
    env.visits.studies(visit, IP, "/share/view")
    assert [(c.orthanc_id, c.modalities, c.previews, c.has_report, c.study_date) for c in cards] == [
        (env.a.study, ("CT", "DOC"), (env.a.instance,), True, "20240101"),
        (env.b.study, ("MR",), (env.b.instance,), False, "20240101")]
    [read] = env.audit.reads
    assert (read.action, read.outcome, read.actor, read.patient_id, read.path) == (
        "share.view", "allow", f"share:{share_id}", "PAT-1", "/share/view")


def test_a_study_deleted_since_it_was_shared_is_left_out(env):
    _share_id, token = env.share([env.a, env.b])
    visit = env.visits.visit(env.session(token))
    env.core.remove_study(env.b)
    assert [c.orthanc_id for c in env.visits.studies(visit, IP, "/share/view")] == [env.a.study]


def test_nothing_is_shown_without_its_audit(env):
    _share_id, token = env.share()
    visit = env.visits.visit(env.session(token))
    env.audit.ok = False
    with pytest.raises(StoreUnavailable):
        env.visits.studies(visit, IP, "/share/view")
    with pytest.raises(StoreUnavailable):
        env.visits.preview(visit, env.a.instance, IP, f"/share/preview/{env.a.instance}")
    assert env.core.count("GET", f"/instances/{env.a.instance}/rendered") == 0


def test_a_preview_of_a_shared_instance_is_orthancs_rendering(env):
    share_id, token = env.share([env.a, env.b])
    visit = env.visits.visit(env.session(token))
    image, content_type = env.visits.preview(visit, env.b.instance, IP, f"/share/preview/{env.b.instance}")
    assert (image, content_type) == (f"jpeg of {env.b.instance} at 320".encode(), "image/jpeg")
    [read] = env.audit.reads
    assert (read.action, read.outcome, read.actor, read.study_uid) == ("view", "allow", f"share:{share_id}",
                                                                       "1.2.3.2")


@pytest.mark.parametrize("which", ["other_patient", "same_patient_not_shared", "a_study_id", "not_an_id", "missing"])
def test_a_preview_of_anything_else_is_unknown_and_audited_as_refused(env, which):
    share_id, token = env.share([env.a])
    visit = env.visits.visit(env.session(token))
    instance = {"other_patient": env.c.instance, "same_patient_not_shared": env.b.instance, "a_study_id": env.a.study,
                "not_an_id": "../../instances/x", "missing": orthanc_id("PAT-1", "1.2.3.1", "x", "y")}[which]
    with pytest.raises(ShareUnknown) as caught:
        env.visits.preview(visit, instance, IP, f"/share/preview/{instance}")
    assert caught.value.status == 404
    [(_key, source, record)] = env.audit.denials
    assert (record.action, record.outcome, record.actor, source) == ("share.preview", "deny", f"share:{share_id}",
                                                                     f"share:{share_id}")
    assert env.audit.reads == []
    assert not any(path.endswith("/rendered") for path in env.core.gets())


def test_the_report_of_a_shared_study_is_its_pdf(env):
    env.core.add_report(env.a)
    share_id, token = env.share([env.a, env.b])
    visit = env.visits.visit(env.session(token))
    assert env.visits.report(visit, env.a.study, IP, f"/share/report/{env.a.study}") == PDF
    record, durable = env.audit.records[-1]
    assert (record.action, record.outcome, record.study_uid, record.actor, durable) == (
        "share.report", "success", "1.2.3.1", f"share:{share_id}", True)
    with pytest.raises(ShareUnknown):
        env.visits.report(visit, env.b.study, IP, f"/share/report/{env.b.study}")  # no report in it


def test_the_report_of_another_study_is_unknown_and_audited_as_refused(env):
    env.core.add_report(env.c)
    _share_id, token = env.share([env.a])
    visit = env.visits.visit(env.session(token))
    with pytest.raises(ShareUnknown):
        env.visits.report(visit, env.c.study, IP, f"/share/report/{env.c.study}")
    [(_key, _source, record)] = env.audit.denials
    assert (record.action, record.outcome) == ("share.report", "deny")
    assert not any("/content/" in path for path in env.core.gets())


# -- downloads -------------------------------------------------------------------------------------

def test_a_download_of_one_study_is_counted_and_ticketed_for_its_archive(env):
    share_id, token = env.share([env.a], max_downloads=3)
    visit = env.visits.visit(env.session(token))
    started = env.visits.download(visit, IP, "/share/download")
    assert started.target == f"/studies/{env.a.study}/archive" and started.archive is None
    assert len(started.ticket) == 43 and looks_like_token(started.ticket)
    [ticket] = env.tickets()
    assert (ticket.ticket_hash, ticket.share_id, ticket.target, ticket.created_at, ticket.expires_at,
            ticket.used_at) == (sha256(started.ticket), share_id, started.target, T0, T0 + 60, None)
    assert env.row(share_id).downloads == 1
    record, durable = env.audit.records[-1]
    assert (record.action, record.outcome, record.reason, durable) == ("share.download", "success",
                                                                       "download 1 of 3", True)


def test_several_studies_go_to_create_archive_where_the_core_streams_it(env):
    env.core.streams_many_archives = True
    _share_id, token = env.share([env.b, env.a])
    started = env.visits.download(env.visits.visit(env.session(token)), IP, "/share/download")
    assert started.target == f"/tools/create-archive?resources={env.b.study},{env.a.study}"
    assert started.ticket and started.archive is None
    assert env.core.archive_bodies == []


def test_several_studies_on_an_older_core_are_zipped_in_memory(env):
    share_id, token = env.share([env.a, env.b])
    started = env.visits.download(env.visits.visit(env.session(token)), IP, "/share/download")
    assert (started.target, started.ticket, started.archive) == (None, None, b"PK\x03\x04 the studies")
    assert env.core.archive_bodies == [{"Resources": [env.a.study, env.b.study]}]
    assert env.tickets() == [] and env.row(share_id).downloads == 1


def test_no_download_past_the_limit(env):
    share_id, token = env.share(max_downloads=2)
    visit = env.visits.visit(env.session(token))  # read before the downloads: the count is the store's
    env.visits.download(visit, IP, "/share/download")
    env.visits.download(visit, IP, "/share/download")
    assert gone(lambda: env.visits.download(visit, IP, "/share/download")) is State.EXHAUSTED
    assert env.row(share_id).downloads == 2 and len(env.tickets()) == 2


# -- the ticket, at the gate -----------------------------------------------------------------------

@pytest.fixture
def ticketed(env):
    """A share of study a, opened and downloaded: (env, share id, target, headers with the ticket)."""
    share_id, token = env.share([env.a])
    header = env.session(token)
    started = env.visits.download(env.visits.visit(header), IP, "/share/download")
    return env, share_id, started.target, {"cookie": f"{header}; gate_download={started.ticket}"}


def test_a_ticket_opens_its_archive_once(ticketed):
    env, share_id, target, headers = ticketed
    assert env.visits.redeem("GET", target, {}, headers, IP) is True
    assert env.tickets()[0].used_at == T0
    record, durable = env.audit.records[-1]
    assert (record.action, record.outcome, record.actor, record.path, durable) == (
        "download", "allow", f"share:{share_id}", target, True)
    assert env.visits.redeem("GET", target, {}, headers, IP) is False
    record, _durable = env.audit.records[-1]
    assert (record.action, record.outcome) == ("download", "deny")


def test_a_request_without_a_ticket_is_not_the_tickets_business(ticketed):
    env, _share_id, target, headers = ticketed
    assert env.visits.redeem("GET", target, {}, {}, IP) is None
    assert env.visits.redeem("GET", target, {}, {"cookie": headers["cookie"].split("; gate_download")[0]}, IP) is None
    assert env.visits.redeem("GET", target, {}, {"cookie": f"gate_download={new_secret()}"}, IP) is None
    assert env.visits.redeem("POST", target, {}, headers, IP) is None


@pytest.mark.parametrize("request_", ["other_study", "trailing_slash", "extra_query", "media"])
def test_a_ticket_does_not_open_another_request_and_stays_unspent(ticketed, request_):
    env, _share_id, target, headers = ticketed
    uri, query = {"other_study": (f"/studies/{env.b.study}/archive", {}), "trailing_slash": (target + "/", {}),
                  "extra_query": (target, {"transcode": "1.2.840.10008.1.2.4.50"}),
                  "media": (target.replace("archive", "media"), {})}[request_]
    assert env.visits.redeem("GET", uri, query, headers, IP) is None
    assert env.visits.redeem("GET", target, {}, headers, IP) is True


def test_a_late_ticket_opens_nothing(ticketed):
    env, _share_id, target, headers = ticketed
    env.clock.advance(61)
    assert env.visits.redeem("GET", target, {}, headers, IP) is False


def test_a_ticket_of_a_revoked_share_opens_nothing(ticketed):
    env, share_id, target, headers = ticketed
    env.clock.advance(5)
    env.shares.revoke(ADMIN, share_id, env.clock(), "10.0.0.1")
    assert env.visits.redeem("GET", target, {}, headers, IP) is False


def test_a_ticket_of_a_share_that_expired_meanwhile_opens_nothing(env, clock):
    _share_id, token = env.share([env.a], valid_hours=30 / 3600)
    header = env.session(token)
    started = env.visits.download(env.visits.visit(header), IP, "/share/download")
    clock.advance(31)
    assert env.visits.redeem("GET", started.target, {}, {"cookie": f"gate_download={started.ticket}"}, IP) is False


def test_the_ticket_of_the_last_download_still_opens_it(env):
    _share_id, token = env.share([env.a], max_downloads=1)
    started = env.visits.download(env.visits.visit(env.session(token)), IP, "/share/download")
    assert env.visits.redeem("GET", started.target, {}, {"cookie": f"gate_download={started.ticket}"}, IP) is True


def test_a_ticket_for_several_studies_opens_exactly_its_query(env):
    env.core.streams_many_archives = True
    _share_id, token = env.share([env.a, env.b])
    started = env.visits.download(env.visits.visit(env.session(token)), IP, "/share/download")
    headers = {"cookie": f"gate_download={started.ticket}"}
    wanted = f"{env.a.study},{env.b.study}"
    assert env.visits.redeem("GET", "/tools/create-archive", {"resources": env.a.study}, headers, IP) is None
    assert env.visits.redeem("GET", "/tools/create-archive", {"resources": wanted}, headers, IP) is True


# -- the patient's access log ----------------------------------------------------------------------

def test_no_access_log_unless_the_practice_turns_it_on(env):
    _share_id, token = env.share()
    assert env.visits.access_log(env.visits.visit(env.session(token))) is None


def _clinician_reads(store) -> None:
    with store.transaction() as db:
        db.add(Doctor(hpcsa_number="MP0000001", title="Dr", first_name="Thandi", last_name="Nkosi",
                      practice="Nkosi Rooms", username="drnkosi", created_at=T0, updated_at=T0))
        db.add(User(username="clerk", display_name="Lindiwe Mokoena", roles="billing", created_at=T0, updated_at=T0))
    rows = [("root1", "admin", "view", "allow", "PAT-1", "1.2.3.1"),
            ("drrad", "radiologist", "view", "allow", "", "1.2.3.2"),  # found by its study
            ("drnkosi", "referring_doctor", "download", "allow", "PAT-1", ""),
            ("clerk", "billing", "view", "allow", "PAT-1", ""),
            ("boss", "admin,radiologist", "view", "allow", "PAT-1", ""),
            ("gate:referrals", "", "view", "allow", "PAT-1", ""),
            ("anonymous", "", "view", "allow", "PAT-1", ""),
            ("", "", "view", "allow", "PAT-1", ""),
            ("drnkosi", "referring_doctor", "view", "deny", "PAT-1", ""),
            ("drnkosi", "referring_doctor", "view", "allow", "PAT-2", "2.1"),
            ("drnkosi", "referring_doctor", "grant.create", "success", "PAT-1", ""),
            ("drnkosi", "referring_doctor", "view", "allow", "", "9.9.9"),
            ("share:999", "patient", "share.download", "success", "PAT-1", "")]  # another link of theirs
    for n, (actor, roles, action, outcome, patient, study) in enumerate(rows):
        append_now(store, AuditRecord(ts=iso_utc(T0 - 1000 + n), actor=actor, roles=roles, action=action,
                                      outcome=outcome, reason="", patient_id=patient, study_uid=study))


@pytest.mark.parametrize("names", [False, True])
def test_the_access_log_lists_who_opened_the_patients_images(store, clock, tmp_path, names):
    env = Setup(store, clock, tmp_path, PatientAccessLog=True, AccessLogNames=names)
    _clinician_reads(store)
    _share_id, token = env.share([env.a, env.b])
    entries = env.visits.access_log(env.visits.visit(env.session(token)))
    expected = [AccessEntry(T0, "patient", "", PRACTICE, "viewed"),  # the share.open just now
                AccessEntry(T0 - 988, "patient_link", "", PRACTICE, "downloaded"),
                AccessEntry(T0 - 996, "admin", "boss", PRACTICE, "viewed"),
                AccessEntry(T0 - 997, "staff", "Lindiwe Mokoena", PRACTICE, "viewed"),
                AccessEntry(T0 - 998, "doctor", "Dr Thandi Nkosi", "Nkosi Rooms", "downloaded"),
                AccessEntry(T0 - 999, "radiologist", "drrad", PRACTICE, "viewed"),
                AccessEntry(T0 - 1000, "admin", "root1", PRACTICE, "viewed")]
    if not names:
        expected = [dataclasses.replace(entry, name="") for entry in expected]
    assert entries == expected


# -- the token never reaches the audit -------------------------------------------------------------

def test_no_audit_row_of_a_whole_visit_holds_the_token_or_the_cookie(env):
    env.core.add_report(env.a)
    _share_id, token = env.share([env.a], password=PASSWORD)
    env.landing(token)
    env.open(token, "wrong password")
    opened = env.open(token, PASSWORD)
    visit = env.visits.visit(f"gate_share={opened.cookie}")
    env.visits.studies(visit, IP, "/share/view")
    env.visits.preview(visit, env.a.instance, IP, f"/share/preview/{env.a.instance}")
    env.visits.report(visit, env.a.study, IP, f"/share/report/{env.a.study}")
    started = env.visits.download(visit, IP, "/share/download")
    env.visits.redeem("GET", started.target, {}, {"cookie": f"gate_download={started.ticket}"}, IP)
    with pytest.raises(ShareUnknown):
        env.landing(token[:-1] + ("A" if token[-1] != "A" else "B"))
    written = json.dumps([dataclasses.asdict(r) for r in env.audit.everything()])
    for secret in (token, token[:-1], opened.cookie, started.ticket, PASSWORD):
        assert secret not in written


def test_a_wrong_password_is_audited_once_and_brings_back_the_landing_page(env):
    """The form shown again comes with the refusal: no second "landing" row per mistake."""
    _share_id, token = env.share([env.a, env.b], password=PASSWORD)
    refused = env.open(token, "not it")
    assert refused.landing is not None and refused.landing.study_count == 2
    assert [action for action, _outcome, _durable in env.audit.actions()] == ["share.password"]
