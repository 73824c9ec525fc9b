"""The outbox worker: a background thread that sends queued messages, retries them, and gives up loudly.

Messages are written to the store in the transaction of what caused them (store/outbox.py enqueue);
this thread only moves them on. Every pass first returns messages a dead worker left claimed, then
claims due ones a few at a time, so several workers (nodes sharing the store) share the work and no
message is claimed twice.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from typing import Protocol

from cryptography.fernet import InvalidToken, MultiFernet

from plugin.audit.record import AuditRecord, iso_utc
from plugin.config import OutboxSettings
from plugin.notify.errors import SendFailed
from plugin.store import outbox
from plugin.store.db import Store
from plugin.store.models import OutboxMessage

SYSTEM_ACTOR = "gate:outbox"
ROUTE_CLASS = "outbox"
BATCH = 10
NO_SENDER = {"email": "no e-mail server configured", "sms": "no SMS gateway configured"}


class EmailSender(Protocol):
    def message_id(self, idempotency_key: str) -> str: ...

    def send(self, recipient: str, subject: str, text: str, html: str, message_id: str) -> None: ...


class SmsSender(Protocol):
    def send(self, to: str, text: str) -> None: ...


class OutboxWorker:
    """Sends every PollSeconds, or at once when woken (after a message was queued). A channel without
    a sender (no Smtp or Sms section) is not sent: its messages wait, saying why, until one is set up.
    A failure never ends the thread."""

    def __init__(self, store: Store, cipher: MultiFernet, settings: OutboxSettings, email_sender: EmailSender | None,
                 sms_sender: SmsSender | None, clock: Callable[[], float], warn: Callable[[str], None],
                 audit: Callable[[AuditRecord], object], jitter: Callable[[], float] = random.random,
                 batch: int = BATCH) -> None:
        self._store = store
        self._cipher = cipher
        self._settings = settings
        self._email = email_sender
        self._sms = sms_sender
        self._clock = clock
        self._warn = warn
        self._audit = audit
        self._jitter = jitter
        self._batch = batch
        self._stopping = threading.Event()
        self._woken = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def cipher(self) -> MultiFernet:
        """The contact cipher, for showing masked recipients (services/outbox.py)."""
        return self._cipher

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="gate-outbox", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Send now (or right after the pass in progress): call after a transaction that queued."""
        self._woken.set()

    def stop(self, timeout: float) -> None:
        """Stop after the message being sent, if any (a message not yet tried is given back). A send
        that outlasts `timeout` is left to finish on its own; if it never records, the next start
        releases it (store/outbox.py release_stale)."""
        self._stopping.set()
        self._woken.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def send_due_now(self) -> int:
        """One pass: release stale claims, send what is due; the number of messages sent."""
        senders = {"email": self._email, "sms": self._sms}
        ready = tuple(channel for channel, sender in senders.items() if sender is not None)
        with self._store.transaction() as db:
            outbox.release_stale(db, self._clock(), 2 * self._settings.send_timeout_seconds)
            for channel, sender in senders.items():
                if sender is None:
                    outbox.note_unsendable(db, channel, NO_SENDER[channel])
        sent = 0
        while ready and not self._stopping.is_set():
            with self._store.transaction() as db:
                claimed = outbox.claim_due(db, self._clock(), self._batch, ready)
            for index, row in enumerate(claimed):
                if self._stopping.is_set():
                    self._give_back(claimed[index:])
                    return sent
                sent += self._deliver(row)
            if len(claimed) < self._batch:
                break
        return sent

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._woken.clear()
            try:
                self.send_due_now()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one failure
                self._warn(f"Gate: sending queued messages failed ({type(exc).__name__})")
            self._woken.wait(self._settings.poll_seconds)

    def _deliver(self, row: OutboxMessage) -> int:
        """Send one claimed message and record the outcome; 1 if it was sent."""
        error = self._send(row)
        try:
            with self._store.transaction() as db:
                if error is None:
                    outbox.mark_sent(db, row, self._clock())
                    return 1
                status = outbox.mark_failed(db, row, error, self._clock(), self._settings, self._jitter())
        except Exception as exc:  # noqa: BLE001 - the row stays claimed; release_stale returns it
            self._warn(f"Gate: could not record the outcome of message {row.id} ({type(exc).__name__})")
            return 0
        if status == "dead":
            self._given_up(row, error)
        return 0

    def _send(self, row: OutboxMessage) -> str | None:
        """None when the server or gateway took the message, else why not (no recipient, no content)."""
        try:
            recipient = self._cipher.decrypt(row.recipient.encode()).decode()
            content = json.loads(self._cipher.decrypt(row.payload.encode()))
        except (InvalidToken, ValueError):
            return "cannot decrypt the message (was ContactKeyFile replaced?)"
        try:
            if row.channel == "email" and self._email is not None:
                self._email.send(recipient, content["subject"], content["text"], content["html"],
                                 self._email.message_id(row.idempotency_key))
            elif row.channel == "sms" and self._sms is not None:
                self._sms.send(recipient, content["text"])
            else:
                return NO_SENDER.get(row.channel, f"unknown channel {row.channel!r}")
        except SendFailed as exc:
            return exc.message
        except Exception as exc:  # noqa: BLE001 - a sender's bug must not end the thread or lose the row
            return f"unexpected failure ({type(exc).__name__})"
        return None

    def _give_back(self, rows: list[OutboxMessage]) -> None:
        try:
            with self._store.transaction() as db:
                for row in rows:
                    outbox.unclaim(db, row)
        except Exception as exc:  # noqa: BLE001 - stopping; release_stale returns them later
            self._warn(f"Gate: could not give back {len(rows)} claimed messages ({type(exc).__name__})")

    def _given_up(self, row: OutboxMessage, error: str) -> None:
        reason = (f"message {row.id} ({row.kind}, {row.channel}) given up after {row.attempts} attempts: "
                  f"{error}")[:512]
        self._warn(f"Gate: {reason}; an admin can retry it (POST /gate/api/outbox/{row.id}/retry)")
        try:
            self._audit(AuditRecord(ts=iso_utc(self._clock()), actor=SYSTEM_ACTOR, action="outbox.dead",
                                    outcome="failure", reason=reason, route_class=ROUTE_CLASS,
                                    study_uid=row.study_uid or ""))
        except Exception as exc:  # noqa: BLE001 - the audit log spools on its own; the rest of the batch goes on
            self._warn(f"Gate: could not audit giving up message {row.id} ({type(exc).__name__})")
