"""Builds the running Gate from its configuration: store, secrets, audit writer, authenticator, gate."""

from __future__ import annotations

import fcntl
import os
import secrets
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet

from plugin.audit.chain import ChainReport
from plugin.audit.log import AuditLog
from plugin.audit.record import AuditRecord
from plugin.audit.verify import verify_store
from plugin.config import GateConfig, ensure_secret_file
from plugin.errors import ConfigError, StoreUnavailable
from plugin.identity.attempts import SignInGuard
from plugin.identity.authenticate import Authenticator
from plugin.identity.directory import Directory
from plugin.identity.mfa import Mfa
from plugin.notify.cipher import contact_cipher
from plugin.notify.email import SmtpSender
from plugin.notify.outbox import OutboxWorker
from plugin.notify.sms import SmsSender
from plugin.policies.lockout import LockoutRule
from plugin.policies.network import client_address
from plugin.services.access import AccessService, ResourceLocator
from plugin.services.core import Core
from plugin.services.dicomweb import DicomWebSearches
from plugin.services.dicomweb_search import DicomWebSearchService
from plugin.services.directory_accounts import DirectoryRecheck
from plugin.services.explorer2 import Explorer2
from plugin.services.gate import GateService
from plugin.services.grants import GrantService
from plugin.services.notifications import Notifications
from plugin.services.periodic import Periodic
from plugin.services.referrals import ReferralService
from plugin.services.review import ReviewService
from plugin.services.search import SearchService
from plugin.services.server_admin import OrthancProcess
from plugin.services.server_status import SAMPLE_SECONDS, ServerStatus
from plugin.services.share_visits import ShareVisits
from plugin.services.shares import ShareService
from plugin.services.ui_pages import NO_PAGES, UiPages
from plugin.store.db import Store

# How often arrivals are looked for when no change callback woke the follower (a safety net).
FOLLOW_SECONDS = 5.0
# How long arrival waits after a new study before reading the change log (services/referrals.py):
# a burst of small studies is decided in one transaction (bench/ingest.py), well within the second.
ARRIVAL_SETTLE_SECONDS = 0.3


@dataclass
class Runtime:
    config: GateConfig
    store: Store
    audit: AuditLog
    authenticator: Authenticator
    gate: GateService
    mfa: Mfa
    clock: Callable[[], float]
    access: AccessService
    core: Core
    search: SearchService
    grants: GrantService
    dicomweb: DicomWebSearchService
    dicomweb_searches: DicomWebSearches
    referrals: ReferralService
    review: ReviewService
    follower: Periodic  # reads Orthanc's change log for arrivals (services/referrals.py); woken by changes
    notifications: Notifications
    outbox: OutboxWorker
    shares: ShareService  # patients' share links, the practice's side
    share_visits: ShareVisits  # ... and the patient's
    recheck: DirectoryRecheck | None = None
    ui_pages: UiPages = NO_PAGES  # the UIs' entry pages the Gate serves (services/ui_pages.py)
    explorer2: Explorer2 | None = None  # Orthanc Explorer 2's configuration per caller, when it is loaded
    server_status: ServerStatus | None = None  # the admin dashboard's figures (services/server_status.py)
    sampler: Periodic | None = None  # samples the server's size for the dashboard's plots
    process: OrthancProcess = OrthancProcess()  # the Orthanc the Gate runs in (its configuration, restart)

    def client_address(self, peer: str, headers: dict[str, str]) -> str:
        """The caller's address: the connection's, or what trusted proxies say (TrustedProxies)."""
        return client_address(peer, headers.get("x-forwarded-for"), self.config.trusted_proxies)

    def audit_now(self, record: AuditRecord) -> bool:
        """Write a record that must be durable before the caller answers (logins, admin changes)."""
        return self.audit.record(record, durable=True)

    def audit_read(self, key: Hashable, make_record: Callable[[], AuditRecord], now: float) -> bool:
        """Write a read's record durable before the caller answers; identical reads (`key`) inside
        the coalescing window share the first one's row and are counted (audit/log.py). False,
        and the read is refused, whenever the store is unhealthy, as the gate's own reads are."""
        return self.store.health.ok and self.audit.cover_read(key, make_record, now) is not None

    def audit_refusal(self, record: AuditRecord) -> bool:
        """Audit a refusal that repeats (sign-ins while locked out): coalesced like the gate's denials."""
        key = ("refusal", record.action, record.actor, record.source_ip)
        self.audit.record_denial(key, f"address {record.source_ip}", lambda: record)
        return True

    def stop(self) -> None:
        """Stop the threads, write what is queued, sign the head and close the store's connections.

        Called on ORTHANC_STOPPED, while Orthanc's HTTP server may still take requests (they are
        still checked and audited, see AuditLog.stop), and again at interpreter exit: safe to call
        more than once.
        """
        if self.recheck is not None:
            self.recheck.stop()
        if self.sampler is not None:
            self.sampler.stop(timeout=self.config.database_timeout_seconds * 2)
        self.follower.stop(timeout=self.config.database_timeout_seconds * 2)
        try:
            self.referrals.save_cursor()
        except StoreUnavailable:
            pass  # the changes since the last save are read again at the next start
        self.outbox.stop(timeout=self.config.outbox.send_timeout_seconds + 1)
        self.access.stop()
        self.audit.stop()
        self.store.dispose()


def ensure_secrets(config: GateConfig, log: Callable[[str], None]) -> None:
    """Generate the secrets nobody configured, root-only, beside the store; say where."""
    if config.audit_checkpoint_key_generated and ensure_secret_file(
            config.audit_checkpoint_key_file, lambda: secrets.token_hex(32).encode()):
        log(f"Gate: generated the audit checkpoint key at {config.audit_checkpoint_key_file}")
    if config.contact_key_generated and ensure_secret_file(config.contact_key_file, Fernet.generate_key):
        log(f"Gate: generated the contact-details encryption key at {config.contact_key_file}")


# The lock files this process holds (see hold_state_directory); closed, and so released, when the
# process ends or replaces itself (a restart), never before.
_held_locks: list[int] = []


def hold_state_directory(config: GateConfig) -> None:
    """One running node per StateDirectory: the audit spool there is one node's own, and two nodes
    replaying one spool would write its rows twice. Several nodes sharing a storage folder must
    each be given their own StateDirectory (docs/deploy.md); a second one is refused at start."""
    lock = config.state_directory / "gate-node.lock"
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return  # a folder that cannot be written: no lock to take; what needs the folder fails on its own
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        raise ConfigError(f"Gate.StateDirectory {config.state_directory} is used by another running Orthanc: "
                          "give each node its own (its audit spool is that node's alone; see docs/deploy.md)") from None
    _held_locks.append(handle)


def checkpoint_file(config: GateConfig) -> Path:
    """Checkpoints are also appended here, outside the database, beside their key."""
    return config.audit_checkpoint_key_file.with_suffix(".log")


def verify_audit(config: GateConfig, store: Store) -> ChainReport:
    """Prove the audit chain and its signed checkpoints (gatectl audit-verify, the API, the console)."""
    return verify_store(store, config.audit_checkpoint_key_file.read_bytes().strip(), checkpoint_file(config))


def open_store(config: GateConfig) -> Store:
    """Open the store and bring its schema up to date (raises StoreUnavailable)."""
    store = Store(config.database_url, config.database_timeout_seconds)
    store.upgrade()
    return store


def build_runtime(config: GateConfig, log: Callable[[str], None], core: Core,
                  clock: Callable[[], float] = time.time) -> Runtime:
    ensure_secrets(config, log)
    store = open_store(config)
    audit = AuditLog(store, config.audit_checkpoint_key_file.read_bytes().strip(), config.audit_spool_file,
                     checkpoint_file(config), coalesce_seconds=config.audit_coalesce_seconds,
                     checkpoint_seconds=config.audit_checkpoint_seconds,
                     # Longer than the writer can take to settle one record: a recovery probe, a
                     # spool replay and the batch itself, each bounded by the store's timeout.
                     wait_seconds=config.database_timeout_seconds * 4 + 1, clock=clock, warn=log)
    directory = Directory(config.ldap) if config.ldap is not None else None
    ldap = config.ldap
    authenticator = Authenticator(store, config.identity_cache_seconds, config.basic_credential_cache_seconds,
                                  config.session_idle_minutes * 60, clock, directory,
                                  ldap.group_roles if ldap is not None else None,
                                  config.mfa_required_roles, sign_in_guard(config, store),
                                  group_base=ldap.group_base if ldap is not None else None,
                                  directory_recheck_seconds=ldap.recheck_seconds if ldap is not None else 900.0)
    access = AccessService(store, ResourceLocator(core, config.resource_cache_entries), clock,
                           config.grant_poll_seconds, log)
    searches = DicomWebSearches(core, log)
    visits = ShareVisits(store, core, access.locator, config, audit, clock)
    gate = GateService(store, authenticator, audit, access, config.decision_cache_seconds, clock,
                       searches_trimmed=searches.trimmed, tickets=visits.redeem)
    recheck = None
    if directory is not None and ldap is not None:
        for warning in ldap.warnings:
            log(warning)
        recheck = DirectoryRecheck(store, directory, authenticator, lambda record: audit.record(record, durable=True),
                                   ldap.recheck_seconds, clock, log)
    audit.start()
    access.start()
    if recheck is not None:
        recheck.start()
    durable = lambda record: audit.record(record, durable=True)  # noqa: E731
    grants = GrantService(store, access, core, durable)
    search = SearchService(core, access)
    # One cipher: what Notifications encrypts into the outbox, the worker decrypts.
    cipher = configured_cipher(config)
    notifications = Notifications(config, cipher)
    outbox = open_outbox(config, store, cipher, clock, log, durable)
    # Arrival's audit rows describe no answer: queued, written in the writer's next batch.
    referrals = ReferralService(store, core, access, audit.record, config.referrals, config.hpcsa_prefixes, clock, log,
                                notify=notifications.study_ready, queued=outbox.wake,
                                settle_seconds=ARRIVAL_SETTLE_SECONDS)
    shares = ShareService(store, access, config, cipher, durable, outbox.wake)
    follower = Periodic("gate-arrivals", FOLLOW_SECONDS, referrals.follow, "reading new studies", log)
    follower.start()
    outbox.start()
    status = ServerStatus(store, core, config, clock, cipher)
    sampler = Periodic("gate-samples", SAMPLE_SECONDS, status.sample, "sampling the server's size", log)
    sampler.start()  # woken once Orthanc has started (entry.py), for a first sample
    return Runtime(config, store, audit, authenticator, gate, open_mfa(config, store), clock, access, core,
                   search, grants, DicomWebSearchService(core, search, config.dicomweb), searches,
                   referrals, ReviewService(store, referrals, access, durable), follower, notifications, outbox,
                   shares, visits, recheck, server_status=status, sampler=sampler)


def open_outbox(config: GateConfig, store: Store, cipher: MultiFernet, clock: Callable[[], float],
                log: Callable[[str], None], audit: Callable[[AuditRecord], object]) -> OutboxWorker:
    """The worker that sends queued e-mails and SMS through the configured servers (none: they wait)."""
    timeout = config.outbox.send_timeout_seconds
    return OutboxWorker(store, cipher, config.outbox,
                        SmtpSender(config.smtp, timeout) if config.smtp else None,
                        SmsSender(config.sms, timeout) if config.sms else None, clock, log, audit)


def sign_in_guard(config: GateConfig, store: Store) -> SignInGuard:
    """LockoutFailures failures within LockoutMinutes lock an account for LockoutMinutes; an address
    with SignInFailuresPerAddress failures in that time is refused as long."""
    span = config.lockout_minutes * 60
    return SignInGuard(store, LockoutRule(config.lockout_failures, span, span),
                       LockoutRule(config.sign_in_failures_per_address, span, span))


def open_mfa(config: GateConfig, store: Store) -> Mfa:
    """TOTP secrets are encrypted with the same key as contact details (ContactKeyFile); wrong codes
    count towards the same lockout and throttling as wrong passwords."""
    return Mfa(store, configured_cipher(config), config.mfa_issuer, sign_in_guard(config, store))


def configured_cipher(config: GateConfig) -> MultiFernet:
    """The contact-details cipher: ContactKeyFile first, then any ContactPreviousKeyFiles."""
    return contact_cipher(config.contact_key_file.read_bytes(),
                          [path.read_bytes() for path in config.contact_previous_key_files])
