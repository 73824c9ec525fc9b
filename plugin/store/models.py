"""SQLAlchemy models of everything the Gate keeps. Schema changes go through schema/ migrations."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    display_name: Mapped[str] = mapped_column(String(256), default="")
    email: Mapped[str] = mapped_column(String(256), default="")
    roles: Mapped[str] = mapped_column(Text, default="")  # comma-separated role names
    password_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    source: Mapped[str] = mapped_column(String(16), default="local")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    totp_secret: Mapped[str | None] = mapped_column(Text, nullable=True)  # Fernet token of the secret
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0)  # codes of this step or older are spent
    # A directory account is its directory entry (identity/directory.py entry_id), not a typed name.
    directory_id: Mapped[str | None] = mapped_column(String(512), unique=True, nullable=True)
    directory_checked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The doctor dashboard's visits: studies that became theirs after the previous one are "new".
    visit_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    previous_visit_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(r for r in self.roles.split(",") if r)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 hex of the key
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Session(Base):
    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 hex of the cookie
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    source_ip: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[float] = mapped_column(Float)
    last_seen_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)  # absolute lifetime
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    mfa_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # when a one-time code was last proved


class RecoveryCode(Base):
    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 hex of the code
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class AuditEvent(Base):
    """One audit row. Append-only: `row_hash` chains it to the row before (see audit/chain.py)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts: Mapped[str] = mapped_column(String(32), index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    roles: Mapped[str] = mapped_column(String(256))
    source_ip: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(512))
    route_class: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(16))
    orthanc_id: Mapped[str] = mapped_column(String(128))
    patient_id: Mapped[str] = mapped_column(String(128), index=True)
    study_uid: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(512))
    count: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The single row naming the chain's last event; appenders lock it to serialise the chain."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """An HMAC over (event id, its hash), made with a key kept outside the database."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audit_id: Mapped[int] = mapped_column(Integer)
    row_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[str] = mapped_column(String(32))
    mac: Mapped[str] = mapped_column(String(64))


class SignInAttempts(Base):
    """Failed sign-ins of one account ("user:<name>") or one address ("ip:<address>")."""

    __tablename__ = "sign_in_attempts"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[float] = mapped_column(Float)
    locked_until: Mapped[float] = mapped_column(Float)


class Doctor(Base):
    """A registered doctor: who referrals are matched to and grants can name."""

    __tablename__ = "doctors"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused (grants keep old ones)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hpcsa_number: Mapped[str] = mapped_column(String(16), unique=True)
    title: Mapped[str] = mapped_column(String(32), default="")
    first_name: Mapped[str] = mapped_column(String(128), default="")
    last_name: Mapped[str] = mapped_column(String(128))
    email: Mapped[str] = mapped_column(String(256), default="")
    mobile: Mapped[str] = mapped_column(String(20), default="")  # E.164
    practice: Mapped[str] = mapped_column(String(256), default="")
    aliases: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of other spellings in DICOM
    username: Mapped[str | None] = mapped_column(String(128), unique=True, nullable=True)
    # Neither a disabled doctor nor one whose HPCSA registration is inactive is linked to a study.
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    hpcsa_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class Grant(Base):
    """Who (a user, or a doctor and so the user tied to them) may do what with a patient or a study.

    Exactly one of subject_user / subject_doctor_id, and one of patient_id / study_uid, is set
    (`orthanc_id` only records the id the grant was asked for by). Rows are never deleted:
    a revoked grant keeps `revoked_at`, so "who could see this, when" stays answerable.
    """

    __tablename__ = "grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_user: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    subject_doctor_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    patient_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    study_uid: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    orthanc_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    level: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    source: Mapped[str] = mapped_column(String(16), default="manual")  # manual | bulk | referral
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(128))
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class GrantVersion(Base):
    """One row, bumped in the same transaction as every change that alters who may see what, so
    every node sharing the store notices (services/access.py polls it)."""

    __tablename__ = "grant_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class Referral(Base):
    """What arrival decided for one study: linked to a doctor (and the grant made), held for review,
    or nothing to link (no referring physician). One row per study, whichever node saw it first."""

    __tablename__ = "referrals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(128), unique=True)
    orthanc_study_id: Mapped[str] = mapped_column(String(64), index=True)
    patient_id: Mapped[str] = mapped_column(String(128), index=True)
    accession_number: Mapped[str] = mapped_column(String(64), default="")
    written_name: Mapped[str] = mapped_column(String(256), default="")  # the physician as the study names them
    status: Mapped[str] = mapped_column(String(16), index=True)  # linked | review | held | none | dismissed
    doctor_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    grant_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    matched_by: Mapped[str] = mapped_column(String(16), default="")  # hpcsa | name | alias | review
    reason: Mapped[str] = mapped_column(String(512), default="")
    created_at: Mapped[float] = mapped_column(Float)
    resolved_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class ReviewItem(Base):
    """A decision arrival left to a person: which doctor referred a study ("referral"), or whether a
    study's patient is the one seen before under its PatientID ("patient")."""

    __tablename__ = "review_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    study_uid: Mapped[str] = mapped_column(String(128), index=True)
    orthanc_study_id: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(String(128), index=True)
    reason: Mapped[str] = mapped_column(String(512))
    candidates: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of doctor ids
    status: Mapped[str] = mapped_column(String(16), index=True)  # open | resolved | dismissed
    created_at: Mapped[float] = mapped_column(Float)
    resolved_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    resolution: Mapped[str] = mapped_column(Text, default="{}")  # JSON: what the reviewer chose


class ChangeCursor(Base):
    """How far the Gate has read Orthanc's own change log (its durable record of new and stable
    studies): after a crash or a restart, arrival picks up where it stopped."""

    __tablename__ = "change_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer)


class OutboxMessage(Base):
    """One message to send (e-mail or SMS). Written in the transaction of what caused it, sent by
    the outbox worker, retried with backoff, never sent twice for one idempotency key, dead after
    the configured number of tries. Recipient and content are encrypted (Fernet, ContactKeyFile)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(256), unique=True)
    channel: Mapped[str] = mapped_column(String(8))  # email | sms
    kind: Mapped[str] = mapped_column(String(32))  # study_ready | welcome | ...
    recipient: Mapped[str] = mapped_column(Text)  # Fernet token
    payload: Mapped[str] = mapped_column(Text)  # Fernet token of the rendered message (JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending | sending | sent | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float, index=True)
    claimed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str] = mapped_column(String(512), default="")
    study_uid: Mapped[str | None] = mapped_column(String(128), nullable=True)
    doctor_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    sent_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class PasswordToken(Base):
    """A single-use, expiring link to set a local account's password (the welcome e-mail's)."""

    __tablename__ = "password_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 hex of the token
    username: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Share(Base):
    """A patient's link to some of their studies: only the SHA-256 of its token is kept. Stopped by
    expiry, revocation, its download limit, or (one-time links) its first opening; the recipient's
    contact details are Fernet tokens (ContactKeyFile)."""

    __tablename__ = "shares"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    patient_id: Mapped[str] = mapped_column(String(128), index=True)  # the DICOM PatientID of its studies
    created_by: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    password_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)  # argon2id
    max_downloads: Mapped[int | None] = mapped_column(Integer, nullable=True)
    downloads: Mapped[int] = mapped_column(Integer, default=0)
    one_time: Mapped[bool] = mapped_column(Boolean, default=False)
    opens: Mapped[int] = mapped_column(Integer, default=0)  # share sessions opened (a landing is not one)
    first_opened_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_opened_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    language: Mapped[str] = mapped_column(String(8), default="en")
    recipient_email: Mapped[str | None] = mapped_column(Text, nullable=True)  # Fernet token
    recipient_mobile: Mapped[str | None] = mapped_column(Text, nullable=True)  # Fernet token
    consent: Mapped[str] = mapped_column(Text, default="null")  # JSON: who recorded it, when, how
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class ShareStudy(Base):
    __tablename__ = "share_studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    share_id: Mapped[int] = mapped_column(ForeignKey("shares.id"), index=True)
    study_uid: Mapped[str] = mapped_column(String(128))
    orthanc_study_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)


class ShareSession(Base):
    """A browser's viewing session of a share (cookie scoped to /share/): checked against its share
    at every request, so revoking the share ends it at once."""

    __tablename__ = "share_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 hex of the cookie
    share_id: Mapped[int] = mapped_column(ForeignKey("shares.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    source_ip: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class ShareTicket(Base):
    """One counted download: a single-use ticket for exactly one archive route of the core, which
    streams the ZIP itself (a Python plugin on Orthanc 1.10 can only answer whole buffers)."""

    __tablename__ = "share_tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_hash: Mapped[str] = mapped_column(String(64), unique=True)
    share_id: Mapped[int] = mapped_column(ForeignKey("shares.id"), index=True)
    target: Mapped[str] = mapped_column(String(2048))  # the exact path (and query) it opens
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class ServerSample(Base):
    """The server's size at one moment (services/server_status.py takes one every few minutes)."""

    __tablename__ = "server_samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    taken_at: Mapped[float] = mapped_column(Float, index=True)
    instances: Mapped[int] = mapped_column(Integer)
    studies: Mapped[int] = mapped_column(Integer)
    disk_bytes: Mapped[int] = mapped_column(BigInteger)
