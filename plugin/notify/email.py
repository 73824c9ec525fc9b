"""Sends one e-mail through the configured SMTP server (Gate.Smtp), over TLS unless told otherwise."""

from __future__ import annotations

import hashlib
import smtplib
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate

from plugin.config import SmtpSettings
from plugin.notify.errors import SendFailed

__all__ = ["SendFailed", "SmtpSender", "message_id"]


def message_id(idempotency_key: str, sender: str) -> str:
    """The same Message-ID every time a message is sent, so a receiver can drop a second copy (a
    message whose sending was interrupted may go twice, see store/outbox.py release_stale)."""
    domain = sender.rpartition("@")[2].strip(" >") or "orthanc-gate.invalid"
    return f"<{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@{domain}>"


class SmtpSender:
    """security "tls": implicit TLS (port 465); "starttls": plain connection upgraded, and nothing is
    sent if the server does not offer STARTTLS; "none": no TLS (a relay on the same host only).
    The server's certificate is checked against the system's CAs, or CaFile's."""

    def __init__(self, settings: SmtpSettings, timeout: float, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._timeout = timeout
        self._clock = clock

    def message_id(self, idempotency_key: str) -> str:
        return message_id(idempotency_key, self.settings.sender)

    def send(self, recipient: str, subject: str, text: str, html: str, message_id: str) -> None:
        message = EmailMessage()
        message["From"] = self.settings.sender
        message["To"] = recipient
        message["Subject"] = subject
        message["Date"] = formatdate(self._clock())
        message["Message-ID"] = message_id
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        try:
            smtp = self._connect()
            try:
                if self.settings.username:
                    smtp.login(self.settings.username, self.settings.password or "")
                refused = smtp.send_message(message)
            finally:
                _hang_up(smtp)
        except SendFailed:
            raise
        except smtplib.SMTPRecipientsRefused:
            raise SendFailed("the SMTP server refused the recipient") from None
        except smtplib.SMTPAuthenticationError as exc:
            raise SendFailed(f"the SMTP server refused the login ({exc.smtp_code})") from None
        except smtplib.SMTPResponseException as exc:
            # Only the code: a server's text may quote the recipient back.
            raise SendFailed(f"the SMTP server answered {exc.smtp_code}") from None
        except smtplib.SMTPNotSupportedError:
            raise SendFailed("the SMTP server does not offer what is needed (AUTH over TLS?)") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise SendFailed(f"SMTP failure ({type(exc).__name__})") from None
        if refused:
            raise SendFailed("the SMTP server refused the recipient")

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        if settings.security == "none":
            return smtplib.SMTP(settings.host, settings.port, timeout=self._timeout)
        context = ssl.create_default_context(cafile=settings.ca_file)
        if settings.security == "tls":
            return smtplib.SMTP_SSL(settings.host, settings.port, timeout=self._timeout, context=context)
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=self._timeout)
        try:
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise SendFailed("the SMTP server does not offer STARTTLS: refusing to send without TLS")
            smtp.starttls(context=context)
            smtp.ehlo()
        except BaseException:
            smtp.close()
            raise
        return smtp


def _hang_up(smtp: smtplib.SMTP) -> None:
    """QUIT politely; a failure here must not turn a message the server took into a failed one."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
